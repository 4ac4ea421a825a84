"""The datasets mlatlas knows: files, sizes, sha256 and verified sources.

The sha256 values are those of the canonical files, except Omniglot's two image zips,
which are repacks of the original PNGs (byte-identical members, different zip bytes):
no public URL serves those exact bytes, so they have no download source and must be
placed by hand.
"""

from __future__ import annotations

from mlatlas.core.data.registry import DataFile, DatasetInfo, register

_MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_GH = "https://raw.githubusercontent.com/"

register(
    DatasetInfo(
        "mnist",
        "MNIST handwritten digits",
        (
            DataFile(
                "train-images-idx3-ubyte.gz",
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                9912422,
                (_MNIST_MIRROR + "train-images-idx3-ubyte.gz",),
            ),
            DataFile(
                "train-labels-idx1-ubyte.gz",
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                28881,
                (_MNIST_MIRROR + "train-labels-idx1-ubyte.gz",),
            ),
            DataFile(
                "t10k-images-idx3-ubyte.gz",
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                1648877,
                (_MNIST_MIRROR + "t10k-images-idx3-ubyte.gz",),
            ),
            DataFile(
                "t10k-labels-idx1-ubyte.gz",
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                4542,
                (_MNIST_MIRROR + "t10k-labels-idx1-ubyte.gz",),
            ),
        ),
        source="http://yann.lecun.com/exdb/mnist/",
        license="no explicit license on the original site",
        citation="LeCun, Bottou, Bengio & Haffner 1998",
    )
)

register(
    DatasetInfo(
        "fashion-mnist",
        "Fashion-MNIST (Zalando)",
        (
            DataFile(
                "train-images-idx3-ubyte.gz",
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                26421880,
                (_FASHION + "train-images-idx3-ubyte.gz",),
            ),
            DataFile(
                "train-labels-idx1-ubyte.gz",
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                29515,
                (_FASHION + "train-labels-idx1-ubyte.gz",),
            ),
            DataFile(
                "t10k-images-idx3-ubyte.gz",
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                4422102,
                (_FASHION + "t10k-images-idx3-ubyte.gz",),
            ),
            DataFile(
                "t10k-labels-idx1-ubyte.gz",
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                5148,
                (_FASHION + "t10k-labels-idx1-ubyte.gz",),
            ),
        ),
        source="https://github.com/zalandoresearch/fashion-mnist",
        license="MIT",
        citation="Xiao, Rasul & Vollgraf 2017",
    )
)

register(
    DatasetInfo(
        "tinyshakespeare",
        "Tiny Shakespeare",
        (
            DataFile(
                "input.txt",
                "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
                1115394,
                (_GH + "karpathy/char-rnn/master/data/tinyshakespeare/input.txt",),
            ),
        ),
        source="https://github.com/karpathy/char-rnn",
        license="MIT (repository); the text is in the public domain",
    )
)

_WT2 = _GH + "pytorch/examples/main/word_language_model/data/wikitext-2/"
register(
    DatasetInfo(
        "wikitext-2",
        "WikiText-2 (tokenized; validation and test splits)",
        (
            DataFile(
                "valid.txt",
                "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8",
                1121681,
                (_WT2 + "valid.txt",),
            ),
            DataFile(
                "test.txt",
                "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0",
                1256449,
                (_WT2 + "test.txt",),
            ),
        ),
        source="https://github.com/pytorch/examples (word_language_model/data/wikitext-2)",
        license="CC BY-SA 3.0 as commonly cited (not verified)",
        citation="Merity, Xiong, Bradbury & Socher 2016",
    )
)

register(
    DatasetInfo(
        "omniglot",
        "Omniglot (105x105 binary character images)",
        (
            DataFile(
                "images_background.zip",
                "0bd52a6c3e9b67c37260b49aa0ef999a781ce200d5971ac765cf7a4dcab78b9f",
                8425668,
            ),
            DataFile(
                "images_evaluation.zip",
                "9d4a06435df3232e1e797949d03addc4bd9874ee5febcfbe49434c889d6f0a3e",
                5757624,
            ),
            DataFile(
                "all_runs.zip",
                "437c1eeab0af8484112e1b4cc0f3d541ec727f7c47b9b202da738af9dfd6c325",
                352787,
                (_GH + "brendenlake/omniglot/master/python/one-shot-classification/all_runs.zip",),
            ),
        ),
        source="https://github.com/brendenlake/omniglot",
        license="MIT",
        citation="Lake, Salakhutdinov & Tenenbaum 2015",
        note="The image zips registered here are repacks of the original PNGs; "
        "place the staged copies from the project's shared datasets folder.",
    )
)

_UCI = "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/"
register(
    DatasetInfo(
        "adult",
        "UCI Adult (Census Income)",
        (
            DataFile(
                "adult.data",
                "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
                3974305,
                (_UCI + "adult.data",),
            ),
            DataFile(
                "adult.test",
                "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
                2003153,
                (_UCI + "adult.test",),
            ),
        ),
        source="https://archive.ics.uci.edu/dataset/2/adult",
        license="CC BY 4.0 (UCI page)",
        citation="Kohavi 1996",
    )
)

register(
    DatasetInfo(
        "word2vec-questions",
        "word2vec analogy questions",
        (
            DataFile(
                "questions-words.txt",
                "8c29b3332afc46f3fb8be04cb5297bf96f39aa7131272dff57869b4485b22a36",
                603955,
                (_GH + "tmikolov/word2vec/master/questions-words.txt",),
            ),
        ),
        source="https://github.com/tmikolov/word2vec",
        license="Apache-2.0",
        citation="Mikolov, Chen, Corrado & Dean 2013",
    )
)
