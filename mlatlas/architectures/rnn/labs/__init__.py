"""Labs of topic 6 (rnn), one file each, in reading order:

adding: tanh RNN, LSTM and GRU on the adding problem at length 100, over seeds.
gradient_through_time: how fast ||dL/dh_t|| decays with distance, per cell at init.
exploding_and_clipping: spectral radius 3 makes gradients explode; clipping vs none, paired.
char_language_model: a character LSTM on Tiny Shakespeare against unigram and bigram models.
"""

# the import order is the labs' order
# isort: off
from mlatlas.architectures.rnn.labs import adding  # noqa: F401
from mlatlas.architectures.rnn.labs import gradient_through_time  # noqa: F401
from mlatlas.architectures.rnn.labs import exploding_and_clipping  # noqa: F401
from mlatlas.architectures.rnn.labs import char_language_model  # noqa: F401
# isort: on
