"""Finding sections, topics and tracks by number, slug or alias, with clear errors."""

from __future__ import annotations

from mlatlas.guide.catalog import SECTIONS, TOPICS, TRACKS, Section, Topic, Track


class UnknownNameError(LookupError):
    """A name that matches no topic, track or lab; the message lists the valid choices."""


def _norm(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def get_topic(name: str | int) -> Topic:
    """A topic by number (``7``, ``"7"``), slug (``"transformers"``) or alias (``"attention"``)."""
    key = _norm(str(name))
    for topic in TOPICS:
        if key in (str(topic.number), topic.slug) or key in {_norm(a) for a in topic.aliases}:
            return topic
    choices = ", ".join(f"{t.number} {t.slug}" for t in TOPICS)
    raise UnknownNameError(f"unknown topic {name!r}; valid topics: {choices}")


def get_track(name: str) -> Track:
    key = _norm(name)
    for track in TRACKS:
        if key == track.slug:
            return track
    raise UnknownNameError(
        f"unknown track {name!r}; valid tracks: {', '.join(t.slug for t in TRACKS)}"
    )


def get_section(slug: str) -> Section:
    for section in SECTIONS:
        if section.slug == slug:
            return section
    raise UnknownNameError(
        f"unknown section {slug!r}; valid sections: {', '.join(s.slug for s in SECTIONS)}"
    )


def topics_in(section: str) -> tuple[Topic, ...]:
    get_section(section)
    return tuple(t for t in TOPICS if t.section == section)
