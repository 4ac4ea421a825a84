"""The curriculum as data: 6 sections, 22 topics, their insights and prerequisites,
5 learning tracks, the modern landscape and the trends.

Every topic keeps the guide's wording of its key insights (labs name them) and of each
prerequisite (`as_written`), next to what that prerequisite resolves to: another topic
(by slug) or a background subject. The guide's numbering is a topological order of the
topic prerequisites; `mlatlas.guide.paths` relies on it and a test checks it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Section:
    slug: str
    title: str
    number: int


@dataclass(frozen=True)
class Prerequisite:
    """One prerequisite as the guide writes it, resolved to a topic or a background subject."""

    as_written: str
    topic: str | None = None  # slug of a topic, or None for a background subject
    subject: str | None = None  # background subject, e.g. "calculus"

    @property
    def is_topic(self) -> bool:
        return self.topic is not None


@dataclass(frozen=True)
class Topic:
    number: int
    slug: str
    title: str
    section: str
    tagline: str
    description: str
    insights: tuple[str, ...]
    prerequisites: tuple[Prerequisite, ...]
    aliases: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        """Import path of the topic's package, e.g. ``mlatlas.foundations.backprop``."""
        return f"mlatlas.{self.section}.{self.slug}"

    @property
    def topic_prerequisites(self) -> tuple[str, ...]:
        return tuple(p.topic for p in self.prerequisites if p.topic is not None)

    @property
    def subjects(self) -> tuple[str, ...]:
        return tuple(p.subject for p in self.prerequisites if p.subject is not None)


@dataclass(frozen=True)
class Track:
    slug: str
    title: str
    topics: tuple[str, ...]
    focus: str
    note: str = ""


@dataclass(frozen=True)
class Combination:
    """A system of the modern landscape and the topics (plus non-topic ingredients) it combines."""

    name: str
    topics: tuple[str, ...]
    extra: tuple[str, ...] = ()
    summary: str = ""


@dataclass(frozen=True)
class Trend:
    name: str
    summary: str
    topics: tuple[str, ...] = field(default_factory=tuple)


def _t(slug: str, as_written: str) -> Prerequisite:
    return Prerequisite(as_written=as_written, topic=slug)


def _s(subject: str, as_written: str) -> Prerequisite:
    return Prerequisite(as_written=as_written, subject=subject)


SECTIONS: tuple[Section, ...] = (
    Section("foundations", "Neural Network Foundations", 1),
    Section("architectures", "Deep Learning Architectures", 2),
    Section("paradigms", "Modern AI Paradigms", 3),
    Section("generative", "Generative Models", 4),
    Section("specialized", "Specialized Topics", 5),
    Section("practice", "Practical Considerations", 6),
)

TOPICS: tuple[Topic, ...] = (
    Topic(
        1,
        "backprop",
        "Neural Networks and Backpropagation",
        "foundations",
        "Functions built from simple units, trained by the chain rule.",
        "A network is a composition of affine maps and elementwise nonlinearities. "
        "Backpropagation applies the chain rule from the loss back to every weight in one "
        "reverse sweep, at the cost of about one extra forward pass. One hidden layer can "
        "approximate any continuous function on a compact set, but depth can represent "
        "compositional functions with exponentially fewer units, and the product of "
        "per-layer Jacobians decides whether gradients survive the trip back.",
        ("Compositional function learning", "gradient flow", "vanishing/exploding gradients"),
        (
            _s("calculus", "Calculus"),
            _s("linear algebra", "linear algebra"),
            _s("optimization", "basic optimization"),
        ),
        aliases=("neural-networks", "backpropagation"),
    ),
    Topic(
        2,
        "activations",
        "Activation Functions",
        "foundations",
        "The nonlinearity decides how signal and gradient move.",
        "Without a nonlinearity a deep network collapses to one linear map. Sigmoid and tanh "
        "saturate, so their derivatives vanish for large inputs; ReLU keeps a unit gradient "
        "where it is active but can die; smooth variants such as ELU, SELU, Swish and GELU "
        "trade a little compute for better-behaved gradients. The choice shapes the function "
        "class too: ReLU networks are piecewise linear and extrapolate linearly.",
        ("Saturation problems", "gradient preservation", "inductive biases"),
        (_t("backprop", "Neural networks basics"), _s("calculus", "calculus")),
    ),
    Topic(
        3,
        "losses",
        "Loss Functions and Training Dynamics",
        "foundations",
        "The objective defines what 'better' means to the optimizer.",
        "A loss is a modelling choice: squared error assumes Gaussian noise, cross-entropy "
        "a categorical likelihood. Its gradients decide which examples drive learning: focal "
        "loss down-weights the easy majority, contrastive and triplet losses shape an "
        "embedding space by comparing pairs, and curricula change the order in which "
        "examples arrive.",
        (
            "Task-specific losses",
            "focal loss",
            "contrastive learning",
            "curriculum learning",
        ),
        (
            _s("optimization", "Optimization basics"),
            _s("probability theory", "probability theory"),
        ),
    ),
    Topic(
        4,
        "optim",
        "Gradient Descent and Optimization",
        "foundations",
        "Update rules that turn gradients into progress.",
        "Gradient descent converges at a rate set by the condition number; momentum improves "
        "the dependence from kappa to its square root. Adaptive methods such as AdaGrad, "
        "RMSprop and Adam rescale each coordinate; AdamW decouples weight decay from that "
        "rescaling. Noise helps escape saddle points, and the step-size schedule trades "
        "speed against the final noise floor.",
        (
            "Escape from saddle points",
            "learning rate scheduling",
            "convergence guarantees",
        ),
        (
            _s("calculus", "Calculus"),
            _s("optimization theory", "optimization theory"),
        ),
        aliases=("optimization", "optimizers"),
    ),
    Topic(
        5,
        "cnn",
        "Convolutional Neural Networks",
        "architectures",
        "Weight sharing over space.",
        "A convolution applies the same small filter at every position, so it is "
        "translation-equivariant and needs far fewer parameters than a dense layer. "
        "Stacking convolutions and pooling grows the receptive field and builds features "
        "from edges to parts to objects, the path from LeNet to ResNet.",
        (
            "Translation invariance",
            "hierarchical feature learning",
            "receptive fields",
        ),
        (
            _t("backprop", "Neural networks"),
            _s("linear algebra", "basic linear algebra"),
        ),
        aliases=("cnns", "convolution"),
    ),
    Topic(
        6,
        "rnn",
        "Recurrent Neural Networks and LSTMs",
        "architectures",
        "A state carried through time.",
        "A recurrent network reuses one cell at every time step, so gradients through time "
        "are products of many Jacobians and vanish or explode with distance. LSTM and GRU "
        "gates add a path whose derivative can stay near one, which lets them carry "
        "information across long gaps.",
        (
            "Temporal dependencies",
            "vanishing gradients in sequences",
            "gating mechanisms",
        ),
        (
            _t("backprop", "Neural networks"),
            _s("sequence modeling", "sequence modeling concepts"),
        ),
        aliases=("rnns", "lstm"),
    ),
    Topic(
        7,
        "transformers",
        "Attention Mechanisms and Transformers",
        "architectures",
        "Every position looks at every other, in parallel.",
        "Attention is a soft lookup: queries score keys, a softmax turns scores into weights, "
        "and the output is a weighted sum of values. Self-attention has no notion of order, "
        "so positions are injected by encodings; with no recurrence the whole sequence is "
        "processed in parallel, which is what made large language models and vision "
        "transformers trainable.",
        (
            "Query-key-value attention",
            "positional encoding",
            "parallelizable sequence modeling",
        ),
        (
            _s("linear algebra", "Linear algebra"),
            _t("rnn", "sequence models"),
        ),
        aliases=("attention", "transformer"),
    ),
    Topic(
        8,
        "residual",
        "Residual Networks and Skip Connections",
        "architectures",
        "Learn the change, not the whole map.",
        "A residual block computes x + F(x), so the identity is the default and each block "
        "learns a correction. The skip path gives gradients a route around every block, "
        "which is why networks with hundreds of layers train where plain ones of the same "
        "depth get worse.",
        ("Identity mappings", "gradient flow", "network depth vs width"),
        (
            _t("cnn", "CNNs"),
            _t("backprop", "gradient flow analysis"),
        ),
        aliases=("resnet", "skip-connections"),
    ),
    Topic(
        9,
        "transfer",
        "Transfer Learning and Fine-tuning",
        "paradigms",
        "Start from features someone else paid for.",
        "Features learned on a large source task are a strong starting point for a small "
        "target task: freeze them and fit a head, or fine-tune all weights. How far features "
        "transfer depends on layer depth and domain gap, and fine-tuning on a new task can "
        "erase the old one.",
        (
            "Feature transferability",
            "domain adaptation",
            "catastrophic forgetting",
        ),
        (_t("backprop", "Neural networks"), _t("optim", "optimization")),
        aliases=("transfer-learning", "fine-tuning"),
    ),
    Topic(
        10,
        "selfsupervised",
        "Self-Supervised Learning",
        "paradigms",
        "Labels made from the data itself.",
        "A pretext task such as predicting a masked part or telling augmented views of the same "
        "example apart from others produces supervision for free. What the pretext task "
        "forces the network to notice decides how useful the learned representation is for "
        "the tasks that come later.",
        (
            "Pretext task design",
            "contrastive objectives",
            "representation quality",
        ),
        (
            _t("backprop", "Neural networks"),
            _s("information theory", "information theory basics"),
        ),
        aliases=("self-supervised", "ssl"),
    ),
    Topic(
        11,
        "foundation_models",
        "Foundation Models and Pre-training",
        "paradigms",
        "Pre-train once at scale, adapt many times.",
        "A large model pre-trained on broad data with a generic objective (next token, masked "
        "token) is adapted to many tasks by fine-tuning or only by a prompt. Loss falls "
        "predictably with scale, and some abilities such as learning from examples in the "
        "context appear only past a certain size.",
        (
            "Scale effects",
            "emergence",
            "prompt engineering",
            "in-context learning",
        ),
        (_t("transformers", "Transformers"), _t("transfer", "transfer learning")),
        aliases=("foundation-models", "pretraining"),
    ),
    Topic(
        12,
        "multimodal",
        "Multi-modal Learning",
        "paradigms",
        "One space for images and words.",
        "Separate encoders map each modality into a shared embedding space, aligned by a "
        "contrastive loss on paired data as in CLIP, or fused by cross-attention. Alignment "
        "makes retrieval and zero-shot classification a nearest-neighbour lookup.",
        (
            "Cross-modal alignment",
            "shared representation spaces",
            "multi-modal fusion",
        ),
        (
            _t("cnn", "CNNs"),
            _t("transformers", "transformers"),
            _t("selfsupervised", "contrastive learning"),
        ),
        aliases=("multi-modal",),
    ),
    Topic(
        13,
        "vae",
        "Variational Autoencoders",
        "generative",
        "An autoencoder with a probabilistic latent space.",
        "A VAE maximizes a lower bound on the data likelihood: a reconstruction term plus a "
        "KL term that keeps the encoder's posterior close to the prior. The "
        "reparameterization trick makes the sampling step differentiable; the KL weight "
        "trades sharp reconstructions against a smooth latent space to sample from.",
        (
            "Latent space modeling",
            "KL divergence regularization",
            "generation vs reconstruction",
        ),
        (
            _s("probability theory", "Probability theory"),
            _s("bayesian statistics", "Bayesian statistics"),
        ),
        aliases=("vaes",),
    ),
    Topic(
        14,
        "gan",
        "Generative Adversarial Networks",
        "generative",
        "A generator and a critic in a two-player game.",
        "A generator learns to fool a discriminator that learns to tell real from fake. The "
        "equilibrium matches the data distribution, but simultaneous gradient play can "
        "oscillate or collapse to a few modes; much of GAN engineering is about stabilising "
        "that game.",
        (
            "Nash equilibria",
            "training instability",
            "progressive growing",
            "style transfer",
        ),
        (
            _s("game theory", "Game theory basics"),
            _t("backprop", "neural networks"),
        ),
        aliases=("gans",),
    ),
    Topic(
        15,
        "diffusion",
        "Diffusion Models",
        "generative",
        "Generate by learning to remove noise.",
        "A fixed forward process adds Gaussian noise step by step until the data is pure "
        "noise; a network learns to predict that noise, which is equivalent to learning the "
        "score. Sampling runs the reverse process from noise to data; the noise schedule "
        "and guidance decide quality and controllability.",
        (
            "Reverse diffusion process",
            "noise scheduling",
            "guidance techniques",
        ),
        (
            _s("probability theory", "Probability theory"),
            _s("stochastic processes", "stochastic processes"),
        ),
        aliases=("ddpm", "diffusion-models"),
    ),
    Topic(
        16,
        "rl",
        "Reinforcement Learning Fundamentals",
        "specialized",
        "Learning from reward instead of labels.",
        "An agent acts, the environment answers with a reward and a new state, and the goal is "
        "the most total reward. Value methods learn the Bellman fixed point and act greedily; "
        "policy-gradient methods push up the probability of actions that did well. Both must "
        "trade exploring against exploiting and assign delayed credit to earlier actions.",
        (
            "Bellman equations",
            "credit assignment",
            "policy vs value methods",
        ),
        (
            _s("probability theory", "Probability theory"),
            _t("optim", "optimization"),
        ),
        aliases=("reinforcement-learning",),
    ),
    Topic(
        17,
        "meta",
        "Meta-Learning and Few-Shot Learning",
        "specialized",
        "Learning how to learn from a handful of examples.",
        "Train across many small tasks so that a new one is solved from a few examples: "
        "MAML learns an initialization that adapts in a few gradient steps, prototypical "
        "networks learn an embedding where each class is its mean. What transfers is an "
        "inductive bias shared by the task distribution.",
        (
            "Fast adaptation",
            "task distributions",
            "inductive biases for few-shot learning",
        ),
        (_t("backprop", "Neural networks"), _t("optim", "optimization")),
        aliases=("meta-learning", "few-shot"),
    ),
    Topic(
        18,
        "representation",
        "Representation Learning and Embeddings",
        "specialized",
        "Geometry that carries meaning.",
        "Good representations put similar things close together. word2vec learns word "
        "vectors whose differences encode relations; metric learning trains distances "
        "directly; disentangled representations try to give each factor of variation its "
        "own axis.",
        (
            "Distributed representations",
            "metric learning",
            "disentangled representations",
        ),
        (_s("linear algebra", "Linear algebra"), _t("backprop", "neural networks")),
        aliases=("embeddings", "representation-learning"),
    ),
    Topic(
        19,
        "regularization",
        "Regularization in Deep Learning",
        "specialized",
        "Fitting the signal, not the noise.",
        "Large networks can memorise random labels, yet they generalise on real ones. Explicit "
        "regularizers (weight decay, dropout, data augmentation), normalisation layers and "
        "the implicit bias of SGD and early stopping all steer training toward solutions "
        "that hold up on new data.",
        (
            "Implicit regularization",
            "batch normalization effects",
            "early stopping",
        ),
        (_t("backprop", "Neural networks"), _t("optim", "optimization")),
        aliases=("regularisation",),
    ),
    Topic(
        20,
        "evaluation",
        "Model Evaluation and Benchmarking",
        "practice",
        "Measuring what matters, with error bars.",
        "One accuracy number hides a lot: the metric must fit the cost of errors, the test set "
        "must resemble deployment, and groups inside the data can fare very differently. "
        "Confidence intervals, calibration, shift tests and fairness metrics make an "
        "evaluation something to rely on.",
        (
            "Metric selection",
            "distribution shift",
            "fairness considerations",
        ),
        (_s("statistics", "Statistics"), _s("ethics in AI", "ethics in AI")),
        aliases=("benchmarking",),
    ),
    Topic(
        21,
        "interpretability",
        "Interpretability and Explainable AI",
        "practice",
        "Opening the box, and checking what we find.",
        "Post-hoc methods such as saliency maps and integrated gradients attribute a "
        "prediction to input features; attention weights are tempting explanations but are "
        "not always faithful; mechanistic interpretability reverse-engineers the circuits "
        "inside. Every explanation method needs its own sanity checks.",
        (
            "Post-hoc vs intrinsic interpretability",
            "attention as explanation",
            "feature attribution",
        ),
        (
            _t("backprop", "Neural networks"),
            _s("visualization", "visualization techniques"),
        ),
        aliases=("xai", "explainability"),
    ),
    Topic(
        22,
        "efficiency",
        "Efficient Training and Inference",
        "practice",
        "The same answers with less compute and memory.",
        "Quantization stores weights in fewer bits, pruning and distillation make smaller "
        "models, and mixed precision and efficient architectures cut the cost of training. "
        "Each trades some accuracy for speed or memory; the job is to find where on that "
        "curve a deployment should sit.",
        (
            "Compute-accuracy tradeoffs",
            "quantization effects",
            "architecture search",
        ),
        (
            _t("backprop", "Neural networks"),
            _s("computer systems", "computer systems basics"),
        ),
        aliases=("efficient", "quantization"),
    ),
)

TRACKS: tuple[Track, ...] = (
    Track(
        "cv",
        "Computer Vision Track",
        ("cnn", "residual", "transfer", "gan", "diffusion"),
        "Focus on CNNs (5), ResNets (8), Transfer Learning (9), GANs (14), Diffusion Models (15)",
    ),
    Track(
        "nlp",
        "Natural Language Processing Track",
        ("rnn", "transformers", "foundation_models", "selfsupervised"),
        "Emphasize RNNs (6), Transformers (7), Foundation Models (11), Self-Supervised Learning "
        "(10)",
    ),
    Track(
        "generative",
        "Generative AI Track",
        ("vae", "gan", "diffusion", "transformers", "foundation_models", "multimodal"),
        "Cover all generative models (13-15), Attention (7), Foundation Models (11), "
        "Multi-modal Learning (12)",
    ),
    Track(
        "research",
        "Research Track",
        ("meta", "interpretability", "transformers", "residual"),
        "Deep dive into Meta-Learning (17), Interpretability (21), and cutting-edge architectures",
        note="The guide names no topic for 'cutting-edge architectures'; this track reads it as "
        "transformers (7) and residual networks (8), the two architecture topics that modern "
        "models build on.",
    ),
    Track(
        "applied",
        "Applied Track",
        (
            "transfer",
            "regularization",
            "evaluation",
            "efficiency",
            "backprop",
            "activations",
            "losses",
            "optim",
            "cnn",
            "rnn",
            "transformers",
            "residual",
        ),
        "Focus on practical topics (9, 19, 20, 22) with solid architecture foundations (1-8)",
    ),
)

LANDSCAPE: tuple[Combination, ...] = (
    Combination(
        "Large Language Models",
        ("transformers", "foundation_models"),
        extra=("scale",),
        summary="A transformer pre-trained on next-token prediction, made large.",
    ),
    Combination(
        "Text-to-Image Generation",
        ("diffusion", "multimodal", "transformers"),
        summary="A diffusion model guided by a text embedding aligned with images, with "
        "attention connecting the two.",
    ),
    Combination(
        "ChatGPT",
        ("transformers", "rl", "foundation_models"),
        summary="A pre-trained transformer language model tuned with reinforcement learning "
        "from human preferences.",
    ),
    Combination(
        "Computer Vision",
        ("cnn", "transfer", "selfsupervised"),
        summary="Convolutional backbones pre-trained with or without labels and transferred "
        "to the task at hand.",
    ),
)

TRENDS: tuple[Trend, ...] = (
    Trend(
        "Scaling laws",
        "Loss falls as a power law in parameters, data and compute.",
        ("foundation_models", "efficiency"),
    ),
    Trend(
        "Emergence",
        "Some abilities appear only once a model passes a certain scale.",
        ("foundation_models",),
    ),
    Trend(
        "Multi-modal foundation models",
        "One pre-trained model that reads and writes several modalities.",
        ("multimodal", "foundation_models"),
    ),
    Trend(
        "Efficient architectures",
        "Keeping accuracy while cutting compute and memory.",
        ("efficiency", "transformers"),
    ),
)
