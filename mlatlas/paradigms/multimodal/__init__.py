r"""Topic 12, multi-modal learning.

Two modalities, one space. A dual encoder maps an image $x$ with $f$ and a caption $t$ with
$g$ into the same $d$-dimensional space, and a contrastive loss on paired data pulls each
image toward its own caption and away from the other captions of the batch (CLIP, Radford et
al. 2021). With unit vectors and a learned temperature $\tau = e^{-s}$, the logits of a
batch of $N$ pairs are $L_{ij} = e^{s}\langle f(x_i), g(t_j)\rangle$ and the loss is
InfoNCE (Oord et al. 2018) in both directions:

$$\mathcal{L} = -\frac{1}{2N}\sum_{i}\Big[\log \frac{e^{L_{ii}}}{\sum_j e^{L_{ij}}}
 + \log \frac{e^{L_{ii}}}{\sum_j e^{L_{ji}}}\Big],\qquad e^{s} \le 100 .$$

Once the spaces are aligned, cross-modal tasks become nearest-neighbour lookups: zero-shot
classification embeds one caption per class ("a picture of a seven") and picks the nearest;
retrieval ranks captions for an image, or images for a caption. The alternative to
alignment is **fusion**: a model that reads both modalities at once, either late (separate
encoders whose summaries meet in a classifier) or early (one transformer over image patches
and words, as in ViLT, Kim et al. 2021).

Everything here runs on data the project generates from MNIST, Fashion-MNIST or
scikit-learn's digits (`captions`): a glyph shrunk to 14x14 and inked in red, green or blue
into one quadrant of a 28x28 RGB canvas, with a caption from templates that name some of
its class, colour and position. Some templates and some (class, colour) pairs are held out
of training. `vqa` asks yes/no questions about the same canvases. The image encoder is
topic 5's LeNet-5, the text encoder topic 7's pre-LN transformer, the loss built on topic 3's
cross-entropy.

The labs measure zero-shot classification with and without prompt ensembling, image-text
retrieval (Recall@1/5/10) with a learned against a fixed temperature, generalisation to
(class, colour) pairs never seen in training, and early against late fusion on the
question task.
"""

from mlatlas.paradigms.multimodal.captions import (
    COLOUR_NAMES,
    HELD_OUT_TEMPLATES,
    POSITIONS,
    TRAIN_TEMPLATES,
    Captioned,
    Vocab,
    compose,
    load_glyphs,
    make_captioned,
    unseen_combo,
)
from mlatlas.paradigms.multimodal.clip import CLIP, TextEncoder, clip_loss, image_encoder
from mlatlas.paradigms.multimodal.fusion import EarlyFusion, LateFusion, patchify
from mlatlas.paradigms.multimodal.retrieval import (
    ensemble_prompts,
    recall_at_k,
    zero_shot_predict,
)
from mlatlas.paradigms.multimodal.vqa import Questions, QuestionVocab, make_questions

__all__ = [
    "CLIP",
    "COLOUR_NAMES",
    "HELD_OUT_TEMPLATES",
    "POSITIONS",
    "TRAIN_TEMPLATES",
    "Captioned",
    "EarlyFusion",
    "LateFusion",
    "QuestionVocab",
    "Questions",
    "TextEncoder",
    "Vocab",
    "clip_loss",
    "compose",
    "ensemble_prompts",
    "image_encoder",
    "load_glyphs",
    "make_captioned",
    "make_questions",
    "patchify",
    "recall_at_k",
    "unseen_combo",
    "zero_shot_predict",
]
