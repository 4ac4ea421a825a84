"""Labs of topic 3 (losses), one file each, in reading order (smoke: scikit-learn digits;
default and full: MNIST from the dataset registry):

mse_vs_ce: the gradient when confidently wrong (check); CE vs MSE accuracy, lr chosen on validation.
focal_imbalanced: easy examples' share of the loss; focal and weighted CE on a 1:50 minority class.
contrastive_embedding: triplet and NT-Xent embeddings, judged by held-out 5-NN accuracy.
curriculum: easy-to-hard vs random ordering, clean and noisy labels, two step budgets.
"""

# the import order is the labs' order
# isort: off
from mlatlas.foundations.losses.labs import mse_vs_ce  # noqa: F401
from mlatlas.foundations.losses.labs import focal_imbalanced  # noqa: F401
from mlatlas.foundations.losses.labs import contrastive_embedding  # noqa: F401
from mlatlas.foundations.losses.labs import curriculum  # noqa: F401
# isort: on
