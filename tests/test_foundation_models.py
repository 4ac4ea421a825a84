"""Topic 11, part A: the byte-level BPE equals `tokenizers`' (same merges -> same tokens, same
compression within 1%) and round-trips any bytes; BERT masking has its 15% / 80-10-10
statistics and the masked-LM loss equals torch's ignore_index cross-entropy (values and
gradients, float64); the sampling filters keep exactly what their definitions say."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import require_data
from hypothesis import given, settings
from hypothesis import strategies as st

from mlatlas.architectures.transformers import GPT, GPTConfig
from mlatlas.paradigms.foundation_models.bpe import (
    BPETokenizer,
    bytes_per_token,
    chunks,
    train_bpe,
)
from mlatlas.paradigms.foundation_models.mlm import (
    IGNORE,
    MaskedLM,
    mask_tokens,
    mlm_loss,
)
from mlatlas.paradigms.foundation_models.sampling import (
    apply_temperature,
    generate,
    sample,
    sampling_probs,
    top_k_filter,
    top_p_filter,
)

SMALL_TEXT = (
    "the cat sat on the mat; the cat ate the rat. 1234 + 5678 = 6912!\n  then the hat sat.\n"
) * 20


# ------------------------------------------------------------------------------------------
# byte-level BPE
# ------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
def test_chunks_cover_any_bytes(data):
    assert b"".join(chunks(data)) == data


TRAINED = train_bpe(SMALL_TEXT, 300)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
def test_round_trip_any_bytes(data):
    assert TRAINED.decode(TRAINED.encode(data)) == data
    own = train_bpe(data, 280)  # also a vocabulary trained on the bytes themselves
    assert own.decode(own.encode(data)) == data


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200))
def test_round_trip_any_text(text):
    assert TRAINED.decode_text(TRAINED.encode(text)) == text


def _naive_train(data: bytes, vocab_size: int) -> list[tuple[int, int]]:
    """The textbook loop: recount every pair of every chunk before each merge."""
    words = Counter(tuple(c) for c in chunks(data))
    merges = []
    while len(merges) < vocab_size - 256:
        counts: Counter = Counter()
        for w, k in words.items():
            for p in itertools.pairwise(w):
                counts[p] += k
        if not counts:
            break
        best_count = max(counts.values())
        if best_count < 2:
            break
        pair = min(p for p, c in counts.items() if c == best_count)  # the same tie rule
        new = 256 + len(merges)
        merges.append(pair)
        merged: Counter = Counter()
        for w, k in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == pair:
                    out.append(new)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] += k
        words = merged
    return merges


@pytest.mark.parametrize("text", [SMALL_TEXT, "aaaaaaa aaaa aaa bbb abab ababab " * 7])
def test_incremental_training_equals_full_recount(text):
    data = text.encode()
    assert train_bpe(data, 330).merges == _naive_train(data, 330)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-ins for the 256 bytes, which `tokenizers`' ByteLevel uses."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def _reference(tok: BPETokenizer):
    """Our merges loaded into a `tokenizers` byte-level BPE."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    b2u = _bytes_to_unicode()
    names = ["".join(b2u[b] for b in piece) for piece in tok.vocab]
    vocab = {name: i for i, name in enumerate(names)}
    merges = [(names[a], names[b]) for a, b in tok.merges]
    ref = Tokenizer(models.BPE(vocab, merges))
    ref.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return ref


def _shakespeare() -> str:
    require_data("tinyshakespeare")
    from mlatlas.core.data import load_tinyshakespeare

    return load_tinyshakespeare()


def test_encoding_equals_tokenizers_with_the_same_merges():
    text = _shakespeare()
    tok = train_bpe(text[:200_000], 600)
    ref = _reference(tok)
    probe = text[-50_000:]  # text the merges were not learned on
    assert tok.encode(probe) == ref.encode(probe).ids


@pytest.mark.parametrize("vocab_size", [512, 1024])
def test_compression_within_one_percent_of_tokenizers(vocab_size):
    """Bytes per token on Tiny Shakespeare, both trained on it at the same vocabulary size
    (256 bytes + merges; `min_frequency=2` as ours, which never merges a single pair)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    text = _shakespeare()
    ours = bytes_per_token(train_bpe(text, vocab_size), text)
    ref = Tokenizer(models.BPE())
    ref.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    ref.train_from_iterator([text], trainer)
    assert ref.get_vocab_size() == vocab_size
    theirs = len(text.encode()) / len(ref.encode(text).ids)
    assert ours > 1.5  # it compresses at all
    assert abs(ours / theirs - 1) < 0.01, (ours, theirs)


def test_training_is_fast_enough():
    import time

    text = _shakespeare()
    t = time.perf_counter()
    train_bpe(text, 1024)
    assert time.perf_counter() - t < 20  # the recount loop takes minutes at this size


# ------------------------------------------------------------------------------------------
# BERT masking and the masked-LM loss
# ------------------------------------------------------------------------------------------


def test_masking_statistics():
    vocab, mask_id, n = 50, 50, 400_000
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (n // 200, 200), generator=g)
    inputs, labels = mask_tokens(ids, mask_id, vocab, torch.Generator().manual_seed(1))
    chosen = labels != IGNORE
    m = int(chosen.sum())

    def close(count: int, total: int, p: float) -> bool:  # within 5 binomial standard errors
        return abs(count / total - p) < 5 * math.sqrt(p * (1 - p) / total)

    assert close(m, n, 0.15)
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(inputs[~chosen], ids[~chosen])  # unchosen positions are untouched
    to_mask = int((inputs[chosen] == mask_id).sum())
    unchanged = int((inputs[chosen] == ids[chosen]).sum())
    replaced = m - to_mask - unchanged
    # a random replacement draws the original token with probability 1/vocab
    assert close(to_mask, m, 0.8)
    assert close(unchanged, m, 0.1 + 0.1 / vocab)
    assert close(replaced, m, 0.1 * (1 - 1 / vocab))
    assert not (inputs[~chosen] == mask_id).any()


def test_masking_never_chooses_special_positions():
    ids = torch.randint(0, 20, (64, 32), generator=torch.Generator().manual_seed(2))
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = True
    special[:, -5:] = True
    inputs, labels = mask_tokens(ids, 20, 20, torch.Generator().manual_seed(3), special=special)
    assert (labels[special] == IGNORE).all()
    assert torch.equal(inputs[special], ids[special])


def test_mlm_loss_equals_ignore_index_cross_entropy_values_and_gradients():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(6, 9, 13, dtype=torch.float64, generator=g, requires_grad=True)
    labels = torch.randint(0, 13, (6, 9), generator=g)
    labels[torch.rand(6, 9, generator=g) > 0.3] = IGNORE
    ours = mlm_loss(logits, labels)
    (g_ours,) = torch.autograd.grad(ours, logits)
    ref = F.cross_entropy(logits.reshape(-1, 13), labels.reshape(-1), ignore_index=IGNORE)
    (g_ref,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-12, atol=1e-12)
    # only masked positions count: no gradient elsewhere, and changing them changes nothing
    assert (g_ours[labels == IGNORE] == 0).all()
    other = logits.detach().clone()
    other[labels == IGNORE] += torch.randn_like(other[labels == IGNORE]) * 10
    assert mlm_loss(other, labels).item() == pytest.approx(ours.item(), abs=1e-12)


def test_masked_lm_sees_both_sides():
    torch.manual_seed(5)
    model = MaskedLM(vocab=21, d=16, heads=2, layers=1, max_len=12).double().eval()
    x = torch.randint(0, 20, (1, 12))
    y = x.clone()
    y[0, -1] = (x[0, -1] + 1) % 20
    with torch.no_grad():
        assert (model(x)[0, 0] - model(y)[0, 0]).abs().max() > 1e-6  # a later token matters


# ------------------------------------------------------------------------------------------
# sampling
# ------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(b=st.integers(1, 4), v=st.integers(1, 40), k=st.integers(1, 45), seed=st.integers(0, 9999))
def test_top_k_keeps_exactly_the_k_largest(b, v, k, seed):
    z = torch.randn(b, v, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    kept = torch.isfinite(top_k_filter(z, k))
    assert (kept.sum(-1) == min(k, v)).all()
    for row, keep in zip(z, kept, strict=True):
        if keep.all():
            continue
        assert row[keep].min() > row[~keep].max()


def _nucleus_reference(z: np.ndarray, p: float) -> np.ndarray:
    """By definition: among the sets of top-ranked tokens with mass >= p, the smallest."""
    probs = np.exp(z - z.max())
    probs /= probs.sum()
    order = np.argsort(-probs, kind="stable")
    for size in range(1, len(z) + 1):
        if probs[order[:size]].sum() >= p:
            keep = np.zeros(len(z), dtype=bool)
            keep[order[:size]] = True
            return keep
    return np.ones(len(z), dtype=bool)


@settings(max_examples=100, deadline=None)
@given(
    v=st.integers(1, 30),
    p=st.floats(0.01, 1.0),
    scale=st.floats(0.1, 5.0),
    seed=st.integers(0, 9999),
)
def test_top_p_keeps_the_smallest_set_with_mass_p(v, p, scale, seed):
    z = scale * torch.randn(v, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    kept = torch.isfinite(top_p_filter(z[None], p))[0].numpy()
    ref = _nucleus_reference(z.numpy(), p)
    probs = torch.softmax(z, 0).numpy()
    # the cumulative sums of the two computations may differ in the last bit at the boundary
    if abs(np.sort(probs)[::-1].cumsum()[ref.sum() - 1] - p) > 1e-12:
        np.testing.assert_array_equal(kept, ref)
    assert probs[kept].sum() >= p - 1e-12
    if kept.sum() > 1:  # dropping its least likely token would fall short of p
        assert probs[kept].sum() - probs[kept].min() < p


def test_temperature_to_zero_is_argmax():
    z = torch.randn(8, 17, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    greedy = F.one_hot(z.argmax(-1), 17).double()
    torch.testing.assert_close(sampling_probs(z, 0.0), greedy)
    torch.testing.assert_close(sampling_probs(z, 1e-4), greedy, atol=1e-12, rtol=0)
    torch.testing.assert_close(apply_temperature(z, 2.0), z / 2)


@pytest.mark.parametrize(
    "temperature,top_k,top_p", [(1.0, None, None), (0.7, 5, None), (1.3, None, 0.8), (0.9, 6, 0.6)]
)
def test_sampling_distribution_equals_direct_computation(temperature, top_k, top_p):
    z = torch.randn(3, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    got = sampling_probs(z, temperature, top_k, top_p).numpy()
    for row, probs in zip(z.numpy(), got, strict=True):
        logits = row / temperature
        keep = np.ones(12, dtype=bool)
        if top_k is not None:
            keep &= logits >= np.sort(logits)[-top_k]
        if top_p is not None:
            masked = np.where(keep, logits, -np.inf)
            keep &= _nucleus_reference(masked, top_p)
        want = np.where(keep, np.exp(logits - logits.max()), 0.0)
        np.testing.assert_allclose(probs, want / want.sum(), rtol=1e-12, atol=1e-15)


def test_samples_follow_the_distribution():
    z = torch.randn(1, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    probs = sampling_probs(z, 0.8, None, 0.9)[0]
    n = 40_000
    draws = sample(z.expand(n, -1), torch.Generator().manual_seed(9), 0.8, None, 0.9)[:, 0]
    freq = torch.bincount(draws, minlength=8).double() / n
    assert (freq[probs == 0] == 0).all()  # nothing outside the nucleus is ever drawn
    se = (probs * (1 - probs) / n).sqrt()
    assert ((freq - probs).abs() <= 5 * se + 1e-12).all()


def test_generate_equals_topic_7_gpt_generate():
    """Same model, same generator, temperature + top-k: the same tokens as GPT.generate."""
    torch.manual_seed(10)
    model = GPT(GPTConfig(vocab=11, block_size=8, n_layer=1, n_head=2, n_embd=16)).eval()
    prompt = torch.randint(0, 11, (3, 4))
    ours = generate(model, prompt, 12, torch.Generator().manual_seed(11), 8, 0.7, top_k=4)
    theirs = model.generate(prompt, 12, 0.7, 4, generator=torch.Generator().manual_seed(11))
    assert torch.equal(ours, theirs)


# ------------------------------------------------------------------------------------------
# the batched GPT replicates and the labs' tasks
# ------------------------------------------------------------------------------------------


def test_gpt_ensemble_equals_separate_gpts_values_and_gradients():
    """The tied embedding/head survives stacking: each member's output and gradient equal
    those of the same GPT run alone (float64)."""
    from mlatlas.core.seeding import Replicate
    from mlatlas.paradigms.foundation_models.train import gpt_ensemble, member_lm_loss

    cfg = GPTConfig(vocab=13, block_size=9, n_layer=2, n_head=2, n_embd=16)
    reps = [Replicate(i, 100 + i) for i in range(3)]
    ens = gpt_ensemble(cfg, reps).double()
    g = torch.Generator().manual_seed(12)
    x = torch.randint(0, 13, (3, 4, 9), generator=g)
    y = torch.randint(0, 13, (3, 4, 9), generator=g)
    member_lm_loss(ens, x, y).sum().backward()
    with torch.no_grad():
        together = ens(x, per_member=True)
    names = ens.names
    for r, rep in enumerate(reps):
        rep.seed_torch("init")
        alone = GPT(cfg).double()
        logits = alone(x[r])
        torch.testing.assert_close(together[r], logits, rtol=1e-10, atol=1e-12)
        F.cross_entropy(logits.flatten(0, 1), y[r].flatten()).backward()
        params = dict(alone.named_parameters())
        for name, stacked in zip(names, ens.stacked, strict=True):
            torch.testing.assert_close(stacked.grad[r], params[name].grad, rtol=1e-10, atol=1e-12)


def test_addition_task_is_correct():
    from mlatlas.paradigms.foundation_models.tasks import addition

    x, y, mask = addition(50, 3, torch.Generator().manual_seed(13))
    seq = torch.cat([x, y[:, -1:]], 1)
    for row in seq.tolist():
        a = int("".join(map(str, row[0:3])))
        b = int("".join(map(str, row[4:7])))
        c = int("".join(map(str, row[8:12][::-1])))  # least significant digit first
        assert a + b == c
    assert (mask.sum(1) == 4).all() and mask[:, -4:].all()


def test_prompt_episodes_apply_the_task():
    from mlatlas.paradigms.foundation_models.tasks import (
        DIGITS,
        TASKS,
        apply_task,
        episodes,
    )

    x = torch.tensor([[3, 1, 2, 9]] * 4)
    out = apply_task(torch.arange(4), x).tolist()
    assert out == [[3, 1, 2, 9], [9, 2, 1, 3], [1, 2, 3, 9], [4, 2, 3, 0]]
    xs, ys, mask, task = episodes(64, torch.Generator().manual_seed(14), 3, True)
    seq = torch.cat([xs, ys[:, -1:]], 1)
    query = seq[:, -(2 * DIGITS + 1) : -(DIGITS + 1)]
    torch.testing.assert_close(apply_task(task, query), seq[:, -DIGITS:])
    assert (seq[:, 0] - 14 == task).all() and len(TASKS) == 4
    assert (mask.sum(1) == 4 * DIGITS).all()


# ------------------------------------------------------------------------------------------
# the test problems of emergence and prompting are absent from their training streams
# ------------------------------------------------------------------------------------------


class _Configured(Exception):
    pass


def _lab_settings(name: str, scale: str, tmp_path):
    """A lab's resolved settings at `scale`, read by running it up to its ctx.config."""
    from mlatlas.core.lab import Lab
    from mlatlas.core.runner import get_lab

    class ConfigOnly(Lab):
        def config(self, **settings):
            raise _Configured(super().config(**settings))

    spec = get_lab("foundation_models", name)
    with pytest.raises(_Configured) as stop:
        spec.fn(ConfigOnly(spec, scale, 0, torch.device("cpu"), tmp_path))
    return stop.value.args[0]


class _Stream(Exception):
    pass


def _lab_training_stream(name: str, scale: str, tmp_path, monkeypatch):
    """The batch stream and step count the lab itself hands to `train_lm` first (its own
    settings at `scale`, run seed 0): the lab runs up to that call, which is intercepted."""
    import importlib

    from mlatlas.core.lab import Lab
    from mlatlas.core.runner import get_lab

    module = importlib.import_module(f"mlatlas.paradigms.foundation_models.labs.{name}")

    def intercept(ens, batches, steps, *args, **kwargs):
        raise _Stream(batches, steps)

    monkeypatch.setattr(module, "train_lm", intercept)
    spec = get_lab("foundation_models", name)
    with pytest.raises(_Stream) as stop:
        spec.fn(Lab(spec, scale, 0, torch.device("cpu"), tmp_path))
    return stop.value.args


def _addition_stream_overlap(cfg, held_out, exclude: bool) -> int:
    """Training problems of every replicate (run seed 0) whose key is held out, drawn the
    lab's way with or without the exclusion: the negative control of the lab's own stream."""
    from mlatlas.core.seeding import replicate
    from mlatlas.paradigms.foundation_models.tasks import addition, addition_keys

    hits = 0
    for i in range(cfg.seeds):
        g = replicate(0, i).generator("batches")
        for _ in range(cfg.steps):
            x, _, _ = addition(cfg.batch, cfg.digits, g, held_out if exclude else None)
            hits += int(torch.isin(addition_keys(x, cfg.digits), held_out).sum())
    return hits


@pytest.mark.parametrize("scale", ["smoke", "default"])
def test_emergence_test_problems_are_absent_from_training(scale, tmp_path, monkeypatch):
    """Every training batch of the stream the lab builds (its settings at this scale, run seed
    0, all replicates), against the test problems in both orders: no overlap. The same draws
    without the exclusion overlap at the default scale, so the intersection does detect it."""
    from mlatlas.paradigms.foundation_models.tasks import (
        addition_keys,
        addition_test_set,
        operands,
    )

    cfg = _lab_settings("emergence", scale, tmp_path)
    x_te, _, _, held_out = addition_test_set(cfg.n_test, cfg.digits)
    a, b = operands(x_te, cfg.digits)
    assert torch.isin(a * 10**cfg.digits + b, held_out).all()
    assert torch.isin(b * 10**cfg.digits + a, held_out).all()
    stream, steps = _lab_training_stream("emergence", scale, tmp_path, monkeypatch)
    assert steps == cfg.steps
    drawn = hits = 0
    for _ in range(steps):
        x = next(stream)[0]  # (replicates, batch, length)
        assert x.shape[0] == cfg.seeds
        keys = addition_keys(x.flatten(0, 1), cfg.digits)
        drawn += keys.numel()
        hits += int(torch.isin(keys, held_out).sum())
    assert drawn == steps * cfg.seeds * cfg.batch and hits == 0
    if scale == "default":
        assert _addition_stream_overlap(cfg, held_out, exclude=False) > 0


def _episode_stream_overlap(cfg, held_out, exclude: bool) -> int:
    """Shown slots (demonstrations and queries) of every replicate's training episodes
    whose (task, digits) key is held out, drawn with or without the exclusion."""
    from mlatlas.core.seeding import replicate
    from mlatlas.paradigms.foundation_models.tasks import episodes, slot_keys

    hits = 0
    for i in range(cfg.seeds):
        g = replicate(0, i).generator("batches")
        for _ in range(cfg.steps):
            x, y, _, task = episodes(cfg.batch, g, held_out=held_out if exclude else None)
            keys, shown = slot_keys(x, y, task)
            hits += int((torch.isin(keys, held_out) & shown).sum())
    return hits


@pytest.mark.parametrize("scale", ["smoke", "default"])
def test_prompting_test_queries_are_absent_from_training(scale, tmp_path, monkeypatch):
    """As for addition: no episode of the stream the lab builds shows a test query's
    (task, digits) pair, as demonstration or query. The lab's batches drop the task ids, so
    `episodes` is wrapped to keep them (it still draws what the lab asks for); without the
    exclusion, most would overlap."""
    from mlatlas.paradigms.foundation_models import tasks
    from mlatlas.paradigms.foundation_models.labs import prompting
    from mlatlas.paradigms.foundation_models.tasks import DIGITS, prompt_test_sets, slot_keys

    cfg = _lab_settings("prompting", scale, tmp_path)
    sets, held_out = prompt_test_sets(cfg.n_test)
    for x, y, _, task in sets.values():  # every prompt asks the same held-out queries
        keys, shown = slot_keys(x, y, task)
        assert shown[:, -1].all() and torch.isin(keys[:, -1], held_out).all()
        torch.testing.assert_close(keys[:, -1] // 10**DIGITS, task)
    drawn_episodes = []

    def recording(*args, **kwargs):
        out = tasks.episodes(*args, **kwargs)
        drawn_episodes.append(out)
        return out

    monkeypatch.setattr(prompting, "episodes", recording)
    stream, steps = _lab_training_stream("prompting", scale, tmp_path, monkeypatch)
    drawn_episodes.clear()  # the test sets are not training episodes
    for _ in range(steps):
        batch = next(stream)
        assert batch[0].shape[0] == cfg.seeds
    assert len(drawn_episodes) == steps * cfg.seeds
    hits = 0
    for x, y, _, task in drawn_episodes:
        keys, shown = slot_keys(x, y, task)
        hits += int((torch.isin(keys, held_out) & shown).sum())
    assert hits == 0
    if scale == "default":
        assert _episode_stream_overlap(cfg, held_out, exclude=False) > 0


def test_slot_keys_read_the_episode_layout():
    """Keys read back from the token sequences equal those of the digits drawn."""
    from mlatlas.paradigms.foundation_models.tasks import (
        DIGITS,
        MAX_SHOTS,
        episodes,
        slot_keys,
    )

    x, y, _, task = episodes(32, torch.Generator().manual_seed(15), 3, False)
    keys, shown = slot_keys(x, y, task)
    assert shown.all() and keys.shape == (32, MAX_SHOTS + 1)
    seq = torch.cat([x, y[:, -1:]], 1)
    query = seq[:, -(2 * DIGITS + 1) : -(DIGITS + 1)]
    value = (query * 10 ** torch.arange(DIGITS - 1, -1, -1)).sum(1)
    torch.testing.assert_close(keys[:, -1], task * 10**DIGITS + value)
    x, y, _, task = episodes(32, torch.Generator().manual_seed(15), 0, False)
    assert not slot_keys(x, y, task)[1][:, :MAX_SHOTS].any()


def test_pretrain_finetune_compares_two_complete_schedules_from_one_init(tmp_path):
    """'Four times more pre-training steps' compares two runs with their own complete
    warmup-cosine schedules (each ends annealed, not mid-schedule near the peak) from the same
    initial weights."""
    from mlatlas.core.runner import get_lab, run_lab
    from mlatlas.core.shared import ensemble_weights, tensor_digest
    from mlatlas.paradigms.foundation_models import train as lm_train

    real, seen = lm_train.fit, []

    def spy(ens, opt, loss, batches, steps, **kw):
        seen.append((kw["desc"], steps, kw["schedule"], tensor_digest(ensemble_weights(ens))))
        return real(ens, opt, loss, batches, steps, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lm_train, "fit", spy)
        r = run_lab(get_lab("foundation_models", "pretrain_finetune"), "smoke", 0, out=tmp_path)
    assert r.ok, r.error
    pre = [s for s in seen if s[0].startswith("pretrain ")]
    assert len(pre) == 2
    (_, short, f_short, init_short), (_, full, f_full, init_full) = sorted(pre, key=lambda s: s[1])
    assert full == 4 * short
    assert init_short == init_full
    lr = r.config["lr"]
    for f, n in ((f_short, short), (f_full, full)):
        assert f(n - 1) < 0.3 * lr  # annealed at its own end
        assert f(n) == pytest.approx(lr / 10)  # the cosine's floor
    # the old snapshot: the full run's schedule a quarter of the way in is near its peak
    assert f_full(short) > 0.8 * lr
