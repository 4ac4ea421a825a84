r"""Topic 11, foundation models and pre-training.

A foundation model is one network pre-trained once on broad data with a generic,
self-supervised objective and then adapted to many tasks (Bommasani et al. 2021).
Two objectives dominate. A decoder (GPT; Radford et al. 2018, 2019) is trained to predict the
next token, $\mathcal{L} = -\sum_t \log p_\theta(x_t \mid x_{<t})$; an encoder (BERT; Devlin
et al. 2019) is trained to fill in masked tokens, $\mathcal{L} = -\sum_{t \in M} \log
p_\theta(x_t \mid \tilde x)$, where $M$ is a random 15% of the positions and $\tilde x$ the
input with 80% of them replaced by `[MASK]`, 10% by a random token and 10% left as they were.

Text reaches the model as tokens. Byte-level byte-pair encoding (Sennrich et al. 2016;
Radford et al. 2019) starts from the 256 bytes, so any string round-trips exactly, and
repeatedly merges the most frequent adjacent pair into a new token until the vocabulary has
the size asked for.

A trained decoder generates by sampling from $p_\theta(\cdot \mid x_{<t})$ reshaped by a
temperature $T$ ($\mathrm{softmax}(z/T)$; $T \to 0$ is greedy decoding), by top-$k$ (keep the
$k$ most likely tokens) or by nucleus / top-$p$ sampling (keep the smallest set whose mass is
at least $p$; Holtzman et al. 2020).

Adaptation happens either by fine-tuning the weights on the downstream task or with no
weight update at all, by a prompt: instructions and demonstrations placed in the context
(Brown et al. 2020). Abilities said to appear suddenly with scale ("emergence"; Wei et al.
2022) may be an effect of the metric: a thresholded score such as exact match can jump
where a smooth one such as per-token log-likelihood improves steadily (Schaeffer et al. 2023).

Loss improves predictably with scale. Kaplan et al. (2020) fit the test loss as a power law
in the non-embedding parameter count, $L(N) = (N_c/N)^{\alpha_N}$ with $\alpha_N \approx 0.076$;
Hoffmann et al. (2022) model parameters and training tokens together,
$L(N, D) = E + A/N^{\alpha} + B/D^{\beta}$, and with the compute $C \approx 6ND$ find that the
compute-optimal model grows about as $\sqrt{C}$, with about 20 tokens per parameter.
A trained transformer can also learn from its context alone: trained on prompts
$(x_1, f(x_1), \dots, x_k, f(x_k), x_{k+1})$ of random linear functions, it predicts
$f(x_{k+1})$ about as well as least squares on the same $k$ examples (Garg et al. 2022).

`scaling` fits both laws by least squares, with a profile interval for the exponent and the
compute-optimal split; `incontext` builds the in-context regressor and its baselines
(least squares, nearest neighbours, averaging); two labs fit the laws to tiny character
GPTs and compare in-context regression with those baselines.

`bpe` trains and applies a byte-level BPE tokenizer (proven to give the same tokens as the
`tokenizers` library with the same merges, and the same compression within 1% when each
learns its own); `mlm` builds BERT's masking, its masked-LM loss and a small BERT on topic
7's encoder; `sampling` holds temperature, top-$k$ and top-$p$ decoding; `train` trains
GPT replicates as one batched ensemble; `tasks` generates the synthetic addition and
digit-string tasks, with their test problems held out of the training streams. The labs
measure what pre-training on WikiText-2 buys a small Shakespeare task, whether an ability
looks emergent under exact match and smooth under per-digit scores of the same models, and
how much the prompt alone changes a small model's accuracy.
"""

from mlatlas.paradigms.foundation_models.bpe import BPETokenizer, bytes_per_token, train_bpe
from mlatlas.paradigms.foundation_models.incontext import (
    InContextRegressor,
    averaging,
    least_squares,
    nearest_neighbours,
    sample_prompts,
)
from mlatlas.paradigms.foundation_models.mlm import IGNORE, MaskedLM, Masking, mask_tokens, mlm_loss
from mlatlas.paradigms.foundation_models.sampling import (
    apply_temperature,
    generate,
    sample,
    sampling_probs,
    top_k_filter,
    top_p_filter,
)
from mlatlas.paradigms.foundation_models.scaling import (
    compute_optimal,
    fit_chinchilla,
    fit_power_law,
    non_embedding_params,
    profile_interval_alpha,
)

__all__: list[str] = [
    "IGNORE",
    "BPETokenizer",
    "InContextRegressor",
    "MaskedLM",
    "Masking",
    "apply_temperature",
    "averaging",
    "bytes_per_token",
    "compute_optimal",
    "fit_chinchilla",
    "fit_power_law",
    "generate",
    "least_squares",
    "mask_tokens",
    "mlm_loss",
    "nearest_neighbours",
    "non_embedding_params",
    "profile_interval_alpha",
    "sample",
    "sample_prompts",
    "sampling_probs",
    "top_k_filter",
    "top_p_filter",
    "train_bpe",
]
