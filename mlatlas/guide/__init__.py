"""The guide as data: sections, topics, insights, prerequisites, tracks, landscape, trends."""

from mlatlas.guide.catalog import (
    LANDSCAPE,
    SECTIONS,
    TOPICS,
    TRACKS,
    TRENDS,
    Combination,
    Prerequisite,
    Section,
    Topic,
    Track,
    Trend,
)
from mlatlas.guide.lookup import UnknownNameError, get_section, get_topic, get_track, topics_in
from mlatlas.guide.paths import (
    CycleError,
    Path,
    Step,
    path,
    prerequisite_closure,
    topological_order,
)

__all__ = [
    "LANDSCAPE",
    "SECTIONS",
    "TOPICS",
    "TRACKS",
    "TRENDS",
    "Combination",
    "CycleError",
    "Path",
    "Prerequisite",
    "Section",
    "Step",
    "Topic",
    "Track",
    "Trend",
    "UnknownNameError",
    "get_section",
    "get_topic",
    "get_track",
    "path",
    "prerequisite_closure",
    "topics_in",
    "topological_order",
]
