"""Synthetic token tasks for small GPTs, with their test problems held out of training.

Two generators of token sequences the labs of this topic train on: `addition` (``a + b = c``
with the sum written least significant digit first) and `episodes` (digit-string tasks
shown with 0-3 demonstrations and an optional task token). Both draw from a small space of
problems (10^6 ordered pairs of 3-digit numbers; 4 x 10^4 task-and-input pairs), so a
training stream of some ten thousand draws would repeat a good share of any fixed test set.
Every problem therefore has an integer key, and a generator given a set of held-out keys
redraws every problem whose key is in it (`redraw_held_out`) before it builds the
sequences: the test problems are then absent from the training stream, not just unlikely
in it. For addition the held-out set holds both orders, ``a + b`` and ``b + a``, of every
test problem, so a test sum is never seen in training in either order.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mlatlas.core import fixed_generator

# ------------------------------------------------------------------------------------------
# keys and the redraw
# ------------------------------------------------------------------------------------------


def digits_value(x: torch.Tensor) -> torch.Tensor:
    """The integer whose decimal digits, most significant first, are the last axis of x."""
    place = 10 ** torch.arange(x.shape[-1] - 1, -1, -1, device=x.device)
    return (x.long() * place).sum(-1)


def redraw_held_out(
    x: torch.Tensor,
    key: Callable[[torch.Tensor], torch.Tensor],
    held_out: torch.Tensor,
    gen: torch.Generator,
) -> torch.Tensor:
    """Redraw, in place, every problem of x (..., width) of uniform digits whose key is in
    `held_out`, until none is: the result is uniform over the problems not held out.
    ``key(x)`` gives one integer per problem, shape x.shape[:-1]."""
    bad = torch.isin(key(x), held_out)
    while bad.any():
        x[bad] = torch.randint(0, 10, (int(bad.sum()), x.shape[-1]), generator=gen).to(x)
        bad = torch.isin(key(x), held_out)
    return x


# ------------------------------------------------------------------------------------------
# addition
# ------------------------------------------------------------------------------------------

PLUS, EQUALS, ADDITION_VOCAB = 10, 11, 12


def addition(n: int, digits: int, gen: torch.Generator, held_out: torch.Tensor | None = None):
    """Sequences ``a + b = c`` of `digits`-digit numbers with the sum's digits least
    significant first (so each digit needs only the carry from the one before it), as inputs,
    next-token targets and a mask of the answer positions (digits + 1 of them). Problems
    whose key ``a * 10^digits + b`` is in `held_out` are redrawn."""
    a = torch.randint(0, 10, (n, digits), generator=gen)
    b = torch.randint(0, 10, (n, digits), generator=gen)
    if held_out is not None:
        ab = redraw_held_out(torch.cat([a, b], 1), digits_value, held_out, gen)
        a, b = ab[:, :digits], ab[:, digits:]
    total = digits_value(a) + digits_value(b)
    c = torch.stack([(total // 10**i) % 10 for i in range(digits + 1)], 1)
    seq = torch.cat([a, torch.full((n, 1), PLUS), b, torch.full((n, 1), EQUALS), c], 1)
    mask = torch.zeros(n, seq.shape[1] - 1, dtype=torch.bool)
    mask[:, -(digits + 1) :] = True
    return seq[:, :-1], seq[:, 1:], mask


def operands(x: torch.Tensor, digits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The numbers a and b of each problem, read from the inputs `addition` returns."""
    return digits_value(x[:, :digits]), digits_value(x[:, digits + 1 : 2 * digits + 1])


def addition_keys(x: torch.Tensor, digits: int) -> torch.Tensor:
    """Key ``a * 10^digits + b`` of each problem of the inputs `addition` returns."""
    a, b = operands(x, digits)
    return a * 10**digits + b


def addition_test_set(n: int, digits: int):
    """The fixed test problems (the same for every --seed) and the held-out keys they imply:
    both orders of each, sorted. Returns inputs, targets, answer mask and the keys."""
    x, y, mask = addition(n, digits, fixed_generator("addition-test"))
    a, b = operands(x, digits)
    keys = torch.unique(torch.cat([a * 10**digits + b, b * 10**digits + a]))
    return x, y, mask, keys


# ------------------------------------------------------------------------------------------
# digit-string tasks with demonstrations
# ------------------------------------------------------------------------------------------

DIGITS, ARROW, SEP, NEW_SEP, PAD, TASK0 = 4, 10, 11, 12, 13, 14
TASKS = ("copy", "reverse", "sort", "add one")
EPISODE_VOCAB = TASK0 + len(TASKS)
DEMO = 2 * DIGITS + 2  # x > f(x) ;
MAX_SHOTS = 3
LENGTH = 1 + MAX_SHOTS * DEMO + 2 * DIGITS + 1  # [task] demos query > answer


def apply_task(task: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """f(x) for each row's task: copy, reverse, sort ascending, add one to each digit mod 10."""
    outs = torch.stack([x, x.flip(-1), x.sort(-1).values, (x + 1) % 10])  # (4, ..., DIGITS)
    index = task.view(1, *task.shape, *([1] * (x.dim() - task.dim()))).expand(1, *x.shape)
    return outs.gather(0, index)[0]


def task_keys(task: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Key ``task * 10^DIGITS + x`` of each (task, input) pair; task broadcasts over x's
    leading axes beyond its own."""
    t = task.view(*task.shape, *([1] * (x.dim() - 1 - task.dim())))
    return t * 10**DIGITS + digits_value(x)


def episodes(
    n: int,
    gen: torch.Generator,
    shots: int | None = None,
    instruction: bool | None = None,
    sep: int = SEP,
    held_out: torch.Tensor | None = None,
):
    """Sequences ``[task] x1 > f(x1) ; ... x > f(x)`` for a random task per row: the number of
    demonstrations (0-3) and whether the task token is shown are random unless given; unused
    slots are PAD, so the query is always at the end. Returns inputs, targets and a mask of
    the answer positions that are scored in training (every shown answer; the query's answer
    is the last DIGITS targets), and the tasks. Every slot (demonstration or query) whose
    (task, input) key is in `held_out` is redrawn."""
    task = torch.randint(0, len(TASKS), (n,), generator=gen)
    x = torch.randint(0, 10, (n, MAX_SHOTS + 1, DIGITS), generator=gen)
    if held_out is not None:
        redraw_held_out(x, lambda v: task_keys(task, v), held_out, gen)
    fx = apply_task(task[:, None].expand(-1, MAX_SHOTS + 1), x)
    arrow = torch.full((n, MAX_SHOTS + 1, 1), ARROW)
    tail = torch.full((n, MAX_SHOTS + 1, 1), sep)
    parts = torch.cat([x, arrow, fx, tail], -1)  # (n, 4, DEMO)
    k = (
        torch.randint(0, MAX_SHOTS + 1, (n,), generator=gen)
        if shots is None
        else torch.full((n,), shots)
    )
    show = (
        torch.rand(n, generator=gen) < 0.5 if instruction is None else torch.full((n,), instruction)
    )
    absent = torch.arange(MAX_SHOTS)[None] < (MAX_SHOTS - k)[:, None]  # leading slots are empty
    parts[:, :MAX_SHOTS][absent] = PAD
    head = torch.where(show, TASK0 + task, torch.full((n,), PAD))[:, None]
    seq = torch.cat([head, parts.flatten(1)[:, :-1]], 1)  # the query ends with its answer
    answer = torch.zeros(MAX_SHOTS + 1, DEMO, dtype=torch.bool)
    answer[:, DIGITS + 1 : 2 * DIGITS + 1] = True
    mask = torch.cat([torch.zeros(1, dtype=torch.bool), answer.flatten()[:-1]])[None] & (seq != PAD)
    return seq[:, :-1], seq[:, 1:], mask[:, 1:], task


def slot_keys(x: torch.Tensor, y: torch.Tensor, task: torch.Tensor):
    """The (task, input) key of every slot of episodes (inputs x, targets y as `episodes`
    returns them) and whether the slot is shown: two tensors of shape (n, MAX_SHOTS + 1),
    the query last."""
    seq = torch.cat([x, y[:, -1:], torch.full_like(y[:, -1:], PAD)], 1)  # + the last SEP
    slots = seq[:, 1:].reshape(len(seq), MAX_SHOTS + 1, DEMO)[..., :DIGITS]
    shown = (slots != PAD).all(-1)
    return task_keys(task, torch.where(shown[..., None], slots, 0)), shown


PROMPTS = {  # name: (shots, instruction, separator)
    "bare query": (0, False, SEP),
    "instruction": (0, True, SEP),
    "1 demonstration": (1, False, SEP),
    "3 demonstrations": (3, False, SEP),
    "3 demos, unseen delimiter": (3, False, NEW_SEP),
    "instruction + 3 demos": (3, True, SEP),
}


def prompt_test_sets(n: int):
    """The fixed test episodes under every prompt of `PROMPTS` and the held-out keys.

    Each prompt's set comes from the same fixed stream, so the tasks, queries and
    demonstrations are the same for every prompt (the prompt's own choices are drawn after
    them, or not at all). The held-out keys are the test queries' (task, input) pairs,
    sorted. Returns ({name: (x, y, mask, task)}, keys)."""
    sets = {
        name: episodes(n, fixed_generator("prompts"), shots, instruction, sep)
        for name, (shots, instruction, sep) in PROMPTS.items()
    }
    x, y, _, task = next(iter(sets.values()))
    keys, _ = slot_keys(x, y, task)
    return sets, torch.unique(keys[:, -1])
