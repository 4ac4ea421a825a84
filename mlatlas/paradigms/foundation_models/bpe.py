"""Byte-level byte-pair encoding: a tokenizer trained by merging frequent adjacent pairs.

BPE (Gage 1994; for subword units Sennrich et al. 2016) starts from an alphabet and repeats

    (a, b) = argmax_{pairs} count(a, b);   add the token ab;   replace every a b by ab

until the vocabulary has the size asked for. Byte-level BPE (GPT-2, Radford et al. 2019)
takes the 256 byte values as the alphabet, so every input, text or not, is representable and
``decode(encode(x)) == x`` exactly. As in GPT-2, the text is first split into chunks (words
with their leading space, runs of digits, of punctuation, of spaces) and merges never cross a
chunk boundary; the split below is GPT-2's pattern restricted to ASCII classes, so that it is
defined on arbitrary bytes.

Training keeps the pair counts up to date incrementally: a merge touches only the chunks that
contain the merged pair (found through an index pair -> chunks), so its cost is proportional
to those chunks, not to the corpus (the recount-everything loop is quadratic in practice).
"""

from __future__ import annotations

import heapq
import itertools
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

# GPT-2's pre-tokenizer (Radford et al. 2019) with \p{L} -> [A-Za-z] and \p{N} -> [0-9]: every
# byte matches one of the alternatives, so the chunks concatenate back to the input.
CHUNK = re.compile(rb"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+")

Pair = tuple[int, int]


def chunks(data: bytes) -> list[bytes]:
    """The pre-tokenized pieces of `data`; ``b"".join(chunks(data)) == data``."""
    return CHUNK.findall(data)


def _pairs(word: list[int]) -> Counter[Pair]:
    return Counter(itertools.pairwise(word))


def _merge_word(word: list[int], pair: Pair, new: int) -> list[int]:
    out: list[int] = []
    i = 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == pair[0] and word[i + 1] == pair[1]:
            out.append(new)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


@dataclass
class BPETokenizer:
    """A byte-level BPE vocabulary: ``merges[i]`` made token ``256 + i``."""

    merges: list[Pair] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.vocab: list[bytes] = [bytes([b]) for b in range(256)]
        for a, b in self.merges:
            self.vocab.append(self.vocab[a] + self.vocab[b])
        self.ranks: dict[Pair, int] = {p: i for i, p in enumerate(self.merges)}
        self._cache: dict[bytes, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges)

    def _encode_chunk(self, chunk: bytes) -> list[int]:
        """Apply the merges in the order they were learned: at each step the adjacent pair
        with the lowest rank (the earliest merge) is merged, as GPT-2's encoder does."""
        word = list(chunk)
        while len(word) > 1:
            best = min(itertools.pairwise(word), key=lambda p: self.ranks.get(p, 1 << 30))
            if best not in self.ranks:
                break
            word = _merge_word(word, best, 256 + self.ranks[best])
        return word

    def encode(self, data: bytes | str) -> list[int]:
        """Token ids of `data` (a str is UTF-8 encoded first)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        ids: list[int] = []
        for c in chunks(data):
            got = self._cache.get(c)
            if got is None:
                got = self._encode_chunk(c)
                if len(self._cache) < 1_000_000:
                    self._cache[c] = got
            ids.extend(got)
        return ids

    def decode(self, ids: list[int]) -> bytes:
        return b"".join(self.vocab[i] for i in ids)

    def decode_text(self, ids: list[int]) -> str:
        """UTF-8 text of `ids`; a sequence cut inside a character decodes with U+FFFD."""
        return self.decode(ids).decode("utf-8", errors="replace")


def train_bpe(data: bytes | str, vocab_size: int) -> BPETokenizer:
    """Learn ``vocab_size - 256`` merges on `data` (fewer if no pair occurs twice).

    Ties between equally frequent pairs go to the smallest pair of ids, so training is
    deterministic.
    """
    if vocab_size < 256:
        raise ValueError(f"a byte-level vocabulary has at least 256 tokens, got {vocab_size}")
    if isinstance(data, str):
        data = data.encode("utf-8")
    freq = Counter(chunks(data))
    words: list[list[int]] = [list(w) for w in freq]
    counts: list[int] = list(freq.values())

    pair_count: Counter[Pair] = Counter()
    where: dict[Pair, set[int]] = defaultdict(set)  # pair -> indices of words that hold it
    for i, w in enumerate(words):
        for p, k in _pairs(w).items():
            pair_count[p] += k * counts[i]
            where[p].add(i)
    # a max-heap of (-count, pair) with lazy deletion: stale entries are skipped when popped
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)

    merges: list[Pair] = []
    while len(merges) < vocab_size - 256 and heap:
        neg, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -neg:
            continue  # stale
        if -neg < 2:
            break
        new = 256 + len(merges)
        merges.append(pair)
        changed: Counter[Pair] = Counter()
        for i in where.pop(pair, set()):
            old = words[i]
            merged = _merge_word(old, pair, new)
            if len(merged) == len(old):
                continue
            for p, k in _pairs(old).items():
                changed[p] -= k * counts[i]
            for p, k in _pairs(merged).items():
                changed[p] += k * counts[i]
                where[p].add(i)
            words[i] = merged
        for p, d in changed.items():
            if d == 0:
                continue
            pair_count[p] += d
            if pair_count[p] <= 0:
                del pair_count[p]
            else:
                heapq.heappush(heap, (-pair_count[p], p))
        pair_count.pop(pair, None)
    return BPETokenizer(merges)


def bytes_per_token(tok: BPETokenizer, data: bytes | str) -> float:
    """Compression: input bytes per output token (1.0 for the bare byte alphabet)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return len(data) / max(1, len(tok.encode(data)))
