"""Path planning over the prerequisite graph.

A learning track names a few topics; studying them needs their prerequisites first, and
those need theirs. `path` closes a track over topic prerequisites and orders the result so
that every prerequisite comes before the topics that need it (a topological order, ties
broken by the guide's numbering, so the path reads in guide order wherever it can).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from mlatlas.guide.catalog import TOPICS, Topic, Track
from mlatlas.guide.lookup import get_topic, get_track


class CycleError(ValueError):
    """The prerequisite graph has a cycle."""


@dataclass(frozen=True)
class Step:
    topic: Topic
    added: bool  # True when the track does not name it: it is there as a prerequisite
    needed_by: tuple[str, ...]  # slugs of path topics that list it as a prerequisite


@dataclass(frozen=True)
class Path:
    track: Track
    steps: tuple[Step, ...]
    subjects: tuple[str, ...]  # background subjects the path needs, first-seen order

    @property
    def slugs(self) -> tuple[str, ...]:
        return tuple(s.topic.slug for s in self.steps)


def prerequisite_closure(slugs: list[str] | tuple[str, ...]) -> set[str]:
    """All topics reachable from `slugs` through topic prerequisites, `slugs` included."""
    seen: set[str] = set()
    stack = list(slugs)
    while stack:
        slug = stack.pop()
        if slug in seen:
            continue
        seen.add(slug)
        stack.extend(get_topic(slug).topic_prerequisites)
    return seen


def topological_order(
    slugs: set[str] | None = None, topics: Sequence[Topic] = TOPICS
) -> list[Topic]:
    """Kahn's algorithm over the topic-prerequisite edges among `slugs` (default: all).

    Among the topics ready at each point the lowest guide number goes first.
    Raises CycleError when no order exists.
    """
    chosen = {t.slug: t for t in topics if slugs is None or t.slug in slugs}
    indegree = {s: 0 for s in chosen}
    dependents: dict[str, list[str]] = {s: [] for s in chosen}
    for topic in chosen.values():
        for pre in topic.topic_prerequisites:
            if pre in chosen:
                indegree[topic.slug] += 1
                dependents[pre].append(topic.slug)
    ready = [(chosen[s].number, s) for s, d in indegree.items() if d == 0]
    heapq.heapify(ready)
    order: list[Topic] = []
    while ready:
        _, slug = heapq.heappop(ready)
        order.append(chosen[slug])
        for nxt in dependents[slug]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                heapq.heappush(ready, (chosen[nxt].number, nxt))
    if len(order) != len(chosen):
        stuck = sorted(s for s, d in indegree.items() if d > 0)
        raise CycleError(f"prerequisite cycle among: {', '.join(stuck)}")
    return order


def path(track: str | Track) -> Path:
    """The track's topics plus their transitive prerequisites, prerequisites first."""
    tr = get_track(track) if isinstance(track, str) else track
    named = set(tr.topics)
    closure = prerequisite_closure(tr.topics)
    order = topological_order(closure)
    steps = []
    subjects: list[str] = []
    for topic in order:
        needed_by = tuple(
            t.slug for t in order if topic.slug in t.topic_prerequisites and t.slug in closure
        )
        steps.append(Step(topic, added=topic.slug not in named, needed_by=needed_by))
        for subject in topic.subjects:
            if subject not in subjects:
                subjects.append(subject)
    return Path(tr, tuple(steps), tuple(subjects))
