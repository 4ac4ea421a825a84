"""The guide as data: complete, consistent with guide.md, acyclic, ordered."""

from __future__ import annotations

import re

import pytest
from conftest import IN_CI, SHARED

from mlatlas.guide import (
    LANDSCAPE,
    SECTIONS,
    TOPICS,
    TRACKS,
    TRENDS,
    CycleError,
    Prerequisite,
    Topic,
    UnknownNameError,
    get_topic,
    get_track,
    path,
    topological_order,
)


def test_counts_and_numbering():
    assert len(SECTIONS) == 6
    assert [t.number for t in TOPICS] == list(range(1, 23))
    assert len({t.slug for t in TOPICS}) == 22
    assert {t.section for t in TOPICS} == {s.slug for s in SECTIONS}
    assert [len([t for t in TOPICS if t.section == s.slug]) for s in SECTIONS] == [4, 4, 4, 3, 4, 3]
    assert len(TRACKS) == 5 and len(LANDSCAPE) == 4 and len(TRENDS) == 4


def test_every_topic_is_described_and_has_insights():
    for t in TOPICS:
        assert t.tagline and len(t.description) > 100, t.slug
        assert len(t.insights) >= 3, t.slug
        assert t.prerequisites, t.slug


def test_every_prerequisite_resolves_to_exactly_one_thing():
    slugs = {t.slug for t in TOPICS}
    for t in TOPICS:
        for p in t.prerequisites:
            assert (p.topic is None) != (p.subject is None), (t.slug, p)
            if p.topic is not None:
                assert p.topic in slugs, (t.slug, p.topic)


def test_guide_numbering_is_a_topological_order():
    for t in TOPICS:
        for pre in t.topic_prerequisites:
            assert get_topic(pre).number < t.number, (t.slug, pre)
    assert [t.slug for t in topological_order()] == [t.slug for t in TOPICS]


def test_cycle_is_detected():
    a = Topic(1, "a", "A", "foundations", "", "", ("x",), (Prerequisite("b", topic="b"),))
    b = Topic(2, "b", "B", "foundations", "", "", ("x",), (Prerequisite("a", topic="a"),))
    with pytest.raises(CycleError, match="a, b"):
        topological_order(topics=[a, b])


def test_tracks_and_landscape_name_real_topics():
    slugs = {t.slug for t in TOPICS}
    named = [s for group in (*TRACKS, *LANDSCAPE, *TRENDS) for s in group.topics]
    assert named and set(named) <= slugs, set(named) - slugs


@pytest.mark.parametrize("track", [t.slug for t in TRACKS])
def test_path_puts_prerequisites_first_and_marks_added(track):
    p = path(track)
    order = [s.topic.slug for s in p.steps]
    assert len(order) == len(set(order))
    position = {s: i for i, s in enumerate(order)}
    for step in p.steps:
        for pre in step.topic.topic_prerequisites:
            assert position[pre] < position[step.topic.slug]
        assert step.added == (step.topic.slug not in get_track(track).topics)
    assert set(get_track(track).topics) <= set(order)


def test_nlp_path_exact():
    p = path("nlp")
    assert p.slugs == (
        "backprop",
        "optim",
        "rnn",
        "transformers",
        "transfer",
        "selfsupervised",
        "foundation_models",
    )
    assert [s.added for s in p.steps] == [True, True, False, False, True, False, False]
    assert "sequence modeling" in p.subjects


def test_lookup_by_number_slug_alias_and_errors():
    assert get_topic(7).slug == get_topic("7").slug == get_topic("attention").slug == "transformers"
    assert get_topic("foundation-models").number == 11
    with pytest.raises(UnknownNameError, match="valid topics: 1 backprop"):
        get_topic("nope")
    with pytest.raises(UnknownNameError, match="valid tracks: cv, nlp"):
        get_track("nope")


def _parse_guide(text: str) -> dict[int, dict]:
    topics = {}
    blocks = re.split(r"^### (\d+)\. \*\*(.+?)\*\*", text, flags=re.M)
    for i in range(1, len(blocks), 3):
        body = blocks[i + 2]
        insights = re.search(r"\*\*Key insights:\*\* (.+)", body).group(1)
        prereq = re.search(r"\*\*Prerequisites:\*\* (.+)", body).group(1)
        topics[int(blocks[i])] = {
            "title": blocks[i + 1].strip(),
            "insights": [s.strip() for s in insights.split(",")],
            "prerequisites": [s.strip() for s in prereq.split(",")],
        }
    return topics


def test_catalog_matches_the_guide_text():
    guide = SHARED / "seed" / "guide.md"
    if not guide.exists():
        if IN_CI:
            pytest.fail(f"{guide} is missing")
        pytest.skip("guide.md not beside the repository")
    parsed = _parse_guide(guide.read_text())
    assert sorted(parsed) == list(range(1, 23))
    for t in TOPICS:
        g = parsed[t.number]
        assert (
            g["title"].replace("(CNNs)", "").replace("(VAEs)", "").replace("(GANs)", "").strip()
            == t.title
        )
        assert list(t.insights) == g["insights"], t.slug
        assert [p.as_written for p in t.prerequisites] == g["prerequisites"], t.slug
