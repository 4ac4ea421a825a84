"""Labs of topic 12 (multimodal), one file each, in reading order:

zero_shot: zero-shot classification from class captions, with and without prompt ensembling.
retrieval: image-to-text and text-to-image Recall@1/5/10 in the shared space.
compositional: (class, colour) pairs never seen in training.
fusion: early against late fusion on generated yes/no questions.
"""

# the import order is the labs' order
# isort: off
from mlatlas.paradigms.multimodal.labs import zero_shot  # noqa: F401
from mlatlas.paradigms.multimodal.labs import retrieval  # noqa: F401
from mlatlas.paradigms.multimodal.labs import compositional  # noqa: F401
from mlatlas.paradigms.multimodal.labs import fusion  # noqa: F401
# isort: on
