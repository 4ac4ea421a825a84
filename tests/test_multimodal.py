"""Topic 12: the symmetric InfoNCE loss equals its definition written with loops (values and
gradients, float64) and PyTorch's cross-entropy; the temperature is clamped as in CLIP;
retrieval metrics equal scikit-learn's; the caption and question generators are
deterministic and really apply the attributes they name; the models read what they should."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import top_k_accuracy_score

from mlatlas.architectures.transformers import ViT
from mlatlas.core.ensemble import Ensemble
from mlatlas.paradigms.multimodal import (
    CLIP,
    COLOUR_NAMES,
    HELD_OUT_TEMPLATES,
    POSITIONS,
    TRAIN_TEMPLATES,
    EarlyFusion,
    LateFusion,
    QuestionVocab,
    TextEncoder,
    Vocab,
    clip_loss,
    compose,
    ensemble_prompts,
    image_encoder,
    make_captioned,
    make_questions,
    patchify,
    recall_at_k,
    unseen_combo,
    zero_shot_predict,
)
from mlatlas.paradigms.multimodal.captions import CELL, DIGIT_WORDS, EOS, PAD, mentions

TOL = {"rtol": 1e-10, "atol": 1e-12}  # float64, same operations up to summation order


def loop_clip_loss(logits: torch.Tensor) -> torch.Tensor:
    """The definition, one term at a time: -1/(2N) sum_i [log softmax_j(L_ij)_i +
    log softmax_j(L_ji)_i]."""
    n = logits.shape[0]
    total = logits.new_zeros(())
    for i in range(n):
        row = torch.stack([logits[i, j] for j in range(n)])
        col = torch.stack([logits[j, i] for j in range(n)])
        total = total + (row[i] - torch.log(torch.exp(row).sum()))
        total = total + (col[i] - torch.log(torch.exp(col).sum()))
    return -total / (2 * n)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 9), scale=st.floats(0.1, 20.0), seed=st.integers(0, 10_000))
def test_clip_loss_equals_its_definition_and_torch(n, scale, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, n, generator=g, dtype=torch.float64) * scale
    ours, loops, ref = (z.clone().requires_grad_() for _ in range(3))
    a = clip_loss(ours)
    b = loop_clip_loss(loops)
    target = torch.arange(n)
    c = (F.cross_entropy(ref, target) + F.cross_entropy(ref.T, target)) / 2
    torch.testing.assert_close(a, b, **TOL)
    torch.testing.assert_close(a, c, **TOL)
    for v in (a, b, c):
        v.backward()
    torch.testing.assert_close(ours.grad, loops.grad, **TOL)
    torch.testing.assert_close(ours.grad, ref.grad, **TOL)


def test_clip_loss_gradient_matches_finite_differences():
    z = torch.randn(5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert torch.autograd.gradcheck(clip_loss, (z.requires_grad_(),), eps=1e-6, atol=1e-8)


def _tiny_clip(seed: int = 0, learn: bool = True) -> tuple[CLIP, Vocab]:
    torch.manual_seed(seed)
    vocab = Vocab(DIGIT_WORDS)
    return CLIP(
        image_encoder("lenet", 8), TextEncoder(len(vocab), vocab.max_len, 8), 0.07, learn
    ), vocab


def test_clip_logits_are_scaled_cosine_similarities():
    model, vocab = _tiny_clip()
    model = model.double()
    x = torch.rand(4, 3, 2 * CELL, 2 * CELL, dtype=torch.float64)
    tok = vocab.encode(["a red one", "a picture of a two", "a blue three in the top left", "a"])
    got = model(x, tok)
    f, g = model.image(x), model.text(tok)
    assert float(model.scale().detach()) == pytest.approx(1 / 0.07, rel=1e-6)  # float32 init of s
    want = model.scale() * F.cosine_similarity(f[:, None], g[None], dim=-1)
    torch.testing.assert_close(got, want, **TOL)


def test_temperature_is_clamped_at_scale_100_and_can_be_frozen():
    model, vocab = _tiny_clip()
    with torch.no_grad():
        model.logit_scale.fill_(math.log(500.0))
    assert float(model.scale().detach()) == pytest.approx(100.0, rel=1e-6)
    x = torch.rand(3, 3, 2 * CELL, 2 * CELL)
    tok = vocab.encode(["a red one", "a blue two", "a green three"])
    clip_loss(model(x, tok)).backward()
    assert float(model.logit_scale.grad) == 0.0  # past the bound nothing pushes it further
    frozen, _ = _tiny_clip(learn=False)
    clip_loss(frozen(x, tok)).backward()
    assert float(frozen.logit_scale.grad) == 0.0
    free, _ = _tiny_clip(learn=True)
    clip_loss(free(x, tok)).backward()
    assert float(free.logit_scale.grad) != 0.0


def test_text_encoder_ignores_padding():
    model, vocab = _tiny_clip()
    tok = vocab.encode(["a red one", "the zero is green and sits in the bottom right"])
    longer = torch.cat([tok, torch.full((2, 5), PAD)], dim=1)
    enc = model.text
    wide = TextEncoder(len(vocab), vocab.max_len + 5, 8)
    state = enc.state_dict()
    state["encoder.pos.table"] = torch.cat([state["encoder.pos.table"], torch.zeros(5, 64)])
    wide.load_state_dict(state)
    torch.testing.assert_close(enc(tok), wide(longer), rtol=1e-5, atol=1e-6)


def test_clip_in_an_ensemble_equals_its_members():
    models, vocab = zip(*(_tiny_clip(seed=s) for s in range(3)), strict=True)
    ens = Ensemble(list(models))
    x = torch.rand(3, 5, 3, 2 * CELL, 2 * CELL)
    tok = torch.stack([vocab[0].encode(["a red one", "a two", "a", "one", "a blue four"])] * 3)
    batched = ens.call(lambda f, xx, tt: clip_loss(f(xx, tt)), x, tok, per_member=True)
    for r, m in enumerate(models):
        torch.testing.assert_close(batched[r], clip_loss(m(x[r], tok[r])), rtol=1e-5, atol=1e-6)


def test_prompt_ensembling_is_the_normalised_mean_of_unit_vectors():
    g = torch.Generator().manual_seed(1)
    e = torch.randn(4, 6, 5, dtype=torch.float64, generator=g)
    got = ensemble_prompts(e).numpy()
    a = e.numpy()
    unit = a / np.linalg.norm(a, axis=-1, keepdims=True)
    m = unit.mean(1)
    np.testing.assert_allclose(got, m / np.linalg.norm(m, axis=-1, keepdims=True), rtol=1e-12)
    img = F.normalize(torch.randn(7, 5, dtype=torch.float64, generator=g), dim=-1)
    want = np.argmax(img.numpy() @ got.T, axis=1)
    np.testing.assert_array_equal(zero_shot_predict(img, torch.from_numpy(got)).numpy(), want)


@settings(max_examples=30, deadline=None)
@given(q=st.integers(1, 30), gallery=st.integers(3, 40), seed=st.integers(0, 10_000))
def test_recall_at_k_equals_sklearn_top_k_accuracy(q, gallery, seed):
    g = torch.Generator().manual_seed(seed)
    sim = torch.randn(q, gallery, dtype=torch.float64, generator=g)  # no ties
    match = torch.randint(0, gallery, (q,), generator=g)
    got = recall_at_k(sim, match, [1, 2, 5])
    for k, value in got.items():
        want = top_k_accuracy_score(
            match.numpy(), sim.numpy(), k=min(k, gallery - 1), labels=np.arange(gallery)
        )
        if k < gallery:
            assert value == pytest.approx(want, abs=1e-12)
        else:
            assert value == 1.0


def _glyphs(n: int, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    g = torch.Generator().manual_seed(seed)
    glyphs = torch.zeros(n, CELL, CELL)
    glyphs[:, 3:11, 5:9] = 0.5 + 0.5 * torch.rand(n, 8, 4, generator=g)  # a stroke
    return glyphs, np.arange(n) % 10


def test_compose_inks_the_named_colour_into_the_named_quadrant():
    glyphs, _ = _glyphs(24)
    colour = torch.arange(24) % 3
    position = (torch.arange(24) // 3) % 4
    x = compose(glyphs, colour, position)
    assert x.shape == (24, 3, 2 * CELL, 2 * CELL)
    for i in range(24):
        ink = x[i].sum(dim=(1, 2))
        assert int(ink.argmax()) == int(colour[i])
        assert float(ink.sum() - ink.max()) == 0.0  # the other channels stay black
        quad = x[i].sum(0).unfold(0, CELL, CELL).unfold(1, CELL, CELL).sum(dim=(2, 3))
        assert int(quad.flatten().argmax()) == int(position[i])
        assert float(quad.sum() - quad.max()) == 0.0
        r0, c0 = (int(position[i]) // 2) * CELL, (int(position[i]) % 2) * CELL
        torch.testing.assert_close(x[i, colour[i], r0 : r0 + CELL, c0 : c0 + CELL], glyphs[i])


@pytest.mark.parametrize("combos", ["seen", "unseen", "all"])
def test_captions_are_deterministic_and_name_the_applied_attributes(combos):
    glyphs, labels = _glyphs(300)
    vocab = Vocab(DIGIT_WORDS)
    a = make_captioned(glyphs, labels, DIGIT_WORDS, vocab, np.random.default_rng(5), combos)
    b = make_captioned(glyphs, labels, DIGIT_WORDS, vocab, np.random.default_rng(5), combos)
    c = make_captioned(glyphs, labels, DIGIT_WORDS, vocab, np.random.default_rng(6), combos)
    assert a.texts == b.texts and torch.equal(a.images, b.images)
    assert a.texts != c.texts
    held = unseen_combo(a.cls.numpy(), a.colour.numpy())
    if combos == "seen":
        assert not held.any()
    elif combos == "unseen":
        assert held.all()
    else:
        assert 0 < held.mean() < 1
    for i in range(len(a)):
        t = TRAIN_TEMPLATES[int(a.template[i])]
        has_cls, has_colour, has_pos = mentions(t)
        words = f" {a.texts[i]} "
        assert (f" {DIGIT_WORDS[int(a.cls[i])]} " in words) == has_cls
        assert (f" {COLOUR_NAMES[int(a.colour[i])]} " in words) == has_colour
        assert (f" {POSITIONS[int(a.position[i])]} " in words) == has_pos
        ink = a.images[i].sum(dim=(1, 2))
        assert int(ink.argmax()) == int(a.colour[i])
        ids = a.tokens[i].tolist()
        assert ids[len(a.texts[i].split())] == EOS and ids.count(EOS) == 1


def test_held_out_pairs_leave_every_class_and_colour_seen():
    pairs = np.array([[unseen_combo(c, k) for k in range(3)] for c in range(10)])
    assert (pairs.sum(1) == 1).all()  # each class has exactly one unseen colour
    assert (pairs.sum(0) < 10).all() and (pairs.sum(0) > 0).all()
    assert not set(HELD_OUT_TEMPLATES) & set(TRAIN_TEMPLATES)
    assert all(all(mentions(t)) for t in HELD_OUT_TEMPLATES)


def test_questions_are_balanced_true_and_deterministic():
    glyphs, labels = _glyphs(3000)
    vocab = QuestionVocab(DIGIT_WORDS)
    q = make_questions(glyphs, labels, DIGIT_WORDS, vocab, np.random.default_rng(2))
    q2 = make_questions(glyphs, labels, DIGIT_WORDS, vocab, np.random.default_rng(2))
    assert q.texts == q2.texts and torch.equal(q.answer, q2.answer)
    assert abs(float(q.answer.double().mean()) - 0.5) < 0.05
    for i in range(len(q)):
        ink = q.images[i].sum(dim=(1, 2))
        colour = COLOUR_NAMES[int(ink.argmax())]
        quad = q.images[i].sum(0).unfold(0, CELL, CELL).unfold(1, CELL, CELL).sum(dim=(2, 3))
        position = POSITIONS[int(quad.flatten().argmax())]
        truth = {"colour": colour, "position": position, "class": DIGIT_WORDS[labels[i]]}
        kind = ("colour", "position", "class")[int(q.kind[i])]
        asks = f" {truth[kind]} " in f" {q.texts[i]} "
        assert asks == bool(q.answer[i]), (q.texts[i], truth, int(q.answer[i]))


def test_patchify_equals_the_vit_patches():
    x = torch.randn(2, 3, 28, 28)
    torch.testing.assert_close(patchify(x, 7), ViT(28, 7, 3, 16, 2, 1, 4).patches(x))


@pytest.mark.parametrize("model_cls", [EarlyFusion, LateFusion])
def test_fusion_models_ignore_padding_and_read_both_modalities(model_cls):
    torch.manual_seed(0)
    vocab = QuestionVocab(DIGIT_WORDS)
    model = model_cls(len(vocab), vocab.max_len, d=16, layers=1).double().eval()
    x = torch.rand(2, 3, 28, 28, dtype=torch.float64)
    tok = vocab.encode(["is it red ?", "is it in the top left ?"])
    out = model(x, tok)
    assert out.shape == (2, 2)
    assert not torch.allclose(out, model(x.flip(-1), tok))  # the image matters
    swapped = vocab.encode(["is it blue ?", "is it in the top left ?"])
    assert not torch.allclose(out[0], model(x, swapped)[0])  # the question matters
    torch.testing.assert_close(out[1], model(x, swapped)[1], **TOL)  # rows are independent


@pytest.mark.parametrize("kind", ["lenet", "vit"])
def test_image_encoders_map_a_canvas_to_the_shared_dimension(kind):
    torch.manual_seed(0)
    enc = image_encoder(kind, 12)
    assert enc(torch.rand(3, 3, 2 * CELL, 2 * CELL)).shape == (3, 12)
    with pytest.raises(ValueError):
        image_encoder("resnet", 12)


# -- the CLIPs the caption labs share (multimodal.shared) ---------------------------------
def test_labs_give_the_same_claims_with_trained_or_loaded_clips(tmp_path):
    """zero_shot then retrieval into one run tree (retrieval loads the CLIPs zero_shot
    trained) against retrieval alone in another (it trains them): the same claims."""
    from mlatlas.core.runner import get_lab, run_lab

    shared_tree, alone = tmp_path / "shared", tmp_path / "alone"
    first = run_lab(get_lab("multimodal", "zero_shot"), scale="smoke", seed=0, out=shared_tree)
    loaded = run_lab(get_lab("multimodal", "retrieval"), scale="smoke", seed=0, out=shared_tree)
    trained = run_lab(get_lab("multimodal", "retrieval"), scale="smoke", seed=0, out=alone)
    assert first.ok and loaded.ok and trained.ok, (first.error, loaded.error, trained.error)
    assert first.metrics["shared_models"]["status"] == "trained"
    assert loaded.metrics["shared_models"]["status"] == "loaded"
    assert trained.metrics["shared_models"]["status"] == "trained"
    assert loaded.metrics["shared_models"]["key"] == trained.metrics["shared_models"]["key"]
    assert any("share their CLIPs" in n and "loaded" in n for n in loaded.notes)
    assert loaded.claims == trained.claims
    assert loaded.tables == trained.tables
    entry = shared_tree / "multimodal" / "_shared"
    assert {p.suffix for p in entry.glob("clip-*")} == {".safetensors", ".json"}


def test_a_shared_entry_loads_only_under_its_own_key_and_intact_weights(tmp_path):
    from safetensors.torch import load_file, save_file

    from mlatlas.core.checkpoint import save_checkpoint
    from mlatlas.paradigms.multimodal.shared import (
        key_sha,
        load_entry,
        shared_folder,
        tensor_digest,
    )

    key = {"format": 1, "settings": {"steps": 20}, "replicates": [[0, 7]]}
    weights = {"stacked.0": torch.arange(6.0).view(2, 3)}
    stem = tmp_path / f"clip-{key_sha(key)}"
    assert load_entry(stem, key) is None  # nothing written yet
    record = {"key": key, "weights_sha256": tensor_digest(weights)}
    save_checkpoint(stem, weights, record)
    got = load_entry(stem, key)
    assert got is not None and torch.equal(got[0]["stacked.0"], weights["stacked.0"])
    other = {**key, "settings": {"steps": 21}}
    assert key_sha(other) != key_sha(key)
    assert load_entry(stem, other) is None  # another key: train, never reuse
    tampered = load_file(str(stem.with_suffix(".safetensors")))
    tampered["stacked.0"][0, 0] += 1
    save_file(tampered, str(stem.with_suffix(".safetensors")))
    assert load_entry(stem, key) is None  # weights that do not match their digest
    stem.with_suffix(".safetensors").write_bytes(b"not safetensors")
    assert load_entry(stem, key) is None
    run = tmp_path / "out" / "multimodal" / "retrieval" / "20260101-smoke-s0"
    assert shared_folder(run, "multimodal", "retrieval") == tmp_path / "out/multimodal/_shared"
    assert shared_folder(tmp_path / "elsewhere", "multimodal", "retrieval") is None


def test_the_shared_key_changes_with_the_training_code(monkeypatch):
    """An edit to a module that trains the CLIPs is a new key: the entry is not reused."""
    import inspect

    from mlatlas.paradigms.multimodal import shared

    before = shared.code_digest()
    assert before == shared.code_digest()
    real = inspect.getsource

    def edited(obj):
        text = real(obj)
        return (
            text + "\n# edited\n" if obj.__name__ == "mlatlas.paradigms.multimodal.train" else text
        )

    monkeypatch.setattr(inspect, "getsource", edited)
    assert shared.code_digest() != before
    assert "mlatlas.paradigms.multimodal.train" in shared.TRAINING_CODE
