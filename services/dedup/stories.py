"""Which story an article joins: a learned article-to-story score and a learned new-story decision.

After Miranda et al. 2018 ("Multilingual clustering of streaming news"): an arriving article is
compared with each candidate story of the window (a story is every report of one happening) on
a handful of similarities — the prose vocabulary against the story's members (the mean, so one
loose member does not chain the story into its neighbours, and the best), names, figures, the
headline, rare shared names, and the time apart. A logistic model ranks the stories; a second
one, given the best story's features and how far ahead it is of the next, decides between
joining it and starting a new story. Both are fitted on the development data by
``bench/fit_story_model.py``; their weights are data (``data/story_model.yaml``).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from services.dedup.profile import Profile

FloatArray = npt.NDArray[np.float64]
HashArray = npt.NDArray[np.uint32]

# The similarities of an article to a story, in the order the model's weights follow.
FEATURES = (
    "mean_cosine",  # prose vocabulary (weighted by rarity) against each member, averaged
    "max_cosine",  # ... against the closest member
    "names_cosine",  # name words against the story's, scaled down below NAMES_TRUSTED shared
    "figures_cosine",  # numbers and counts against the story's
    "days_apart",  # to the nearest member in time
    "title_cosine",  # headline words against the story's headlines
    "rare_names",  # log(1 + summed rarity of the name words shared with the closest member)
)
# What the new-story decision adds: the rank score of the best story. (Its lead over the next
# story was tried: with no rival the lead is undefined, and any stand-in made a lone candidate
# in a quiet window look certain.)
DECISION_FEATURES = (*FEATURES, "score")
# A story is compared through at most its latest members (a big story costs no more than this).
MEMBERS_COMPARED = 12
# A cosine over two or three names is high by chance ("AI", "US"): the names feature counts in
# full only from this many shared name words.
NAMES_TRUSTED = 3

MODEL_FILE = "story_model.yaml"


@dataclass(frozen=True)
class StoryModel:
    """The fitted weights (intercept first) and where the decision is cut."""

    rank_weights: tuple[float, ...]
    decision_weights: tuple[float, ...]
    threshold: float  # join the best story when the decision's probability reaches this
    horizon_hours: float  # a story is a candidate while a member is this close in time

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> StoryModel:
        rank = tuple(float(w) for w in data["rank_weights"])
        decision = tuple(float(w) for w in data["decision_weights"])
        if len(rank) != len(FEATURES) + 1 or len(decision) != len(DECISION_FEATURES) + 1:
            raise ValueError(
                f"{MODEL_FILE}: expected {len(FEATURES) + 1} rank and"
                f" {len(DECISION_FEATURES) + 1} decision weights"
            )
        return cls(rank, decision, float(data["threshold"]), float(data["horizon_hours"]))

    @classmethod
    def bundled(cls) -> StoryModel:
        text = resources.files("services.dedup").joinpath("data", MODEL_FILE).read_text("utf-8")
        return cls.from_mapping(yaml.safe_load(text))

    @property
    def horizon_seconds(self) -> float:
        return self.horizon_hours * 3600

    def rank(self, features: FloatArray) -> float:
        return _linear(self.rank_weights, features)

    def join_probability(self, decision_features: FloatArray) -> float:
        return 1.0 / (1.0 + math.exp(-_linear(self.decision_weights, decision_features)))


def _linear(weights: Sequence[float], features: FloatArray) -> float:
    return float(weights[0] + np.dot(np.asarray(weights[1:]), features))


@dataclass(frozen=True)
class Vector:
    """A sparse, L2-normalised vector: sorted keys and their weights."""

    keys: HashArray
    weights: FloatArray

    def cosine(self, other: Vector) -> float:
        if not self.keys.size or not other.keys.size:
            return 0.0
        _, mine, theirs = np.intersect1d(
            self.keys, other.keys, assume_unique=True, return_indices=True
        )
        return float(np.dot(self.weights[mine], other.weights[theirs]))


def vector(keys: HashArray, weights: FloatArray) -> Vector:
    norm = float(np.sqrt(np.dot(weights, weights)))
    return Vector(keys, weights / norm if norm > 0 else weights)


def _hashes(values: array[int]) -> HashArray:
    return np.frombuffer(values, dtype=np.uint32)


def _weights(values: array[float]) -> FloatArray:
    return np.frombuffer(values, dtype=np.float32).astype(np.float64)


def _summed(pairs: list[tuple[array[int], array[float]]]) -> Vector:
    """The sum of several members' vocabularies, as one vector."""
    keys, inverse = np.unique(np.concatenate([_hashes(k) for k, _ in pairs]), return_inverse=True)
    totals: FloatArray = np.bincount(
        inverse, weights=np.concatenate([_weights(w) for _, w in pairs])
    ).astype(np.float64)
    return vector(keys, totals)


@dataclass(frozen=True)
class Member:
    """What the story level needs of an earlier article."""

    event_time: float
    profile: Profile


@dataclass(frozen=True)
class ProbeVectors:
    """The arriving article's vectors, made once per lookup."""

    event_time: float
    terms: Vector
    names: Vector
    figures: Vector
    title: Vector
    name_keys: HashArray
    name_rarity: FloatArray


def probe_vectors(profile: Profile, event_time: float) -> ProbeVectors:
    names = _hashes(profile.names)
    return ProbeVectors(
        event_time=event_time,
        terms=vector(_hashes(profile.terms), _weights(profile.term_weights)),
        names=vector(names, _weights(profile.name_weights)),
        figures=vector(_hashes(profile.figures), _weights(profile.figure_weights)),
        title=vector(_hashes(profile.title), _weights(profile.title_weights)),
        name_keys=names,
        name_rarity=_weights(profile.name_weights),
    )


def story_features(probe: ProbeVectors, members: Sequence[Member]) -> FloatArray:
    """The ``FEATURES`` of an article against a story (its latest ``MEMBERS_COMPARED``)."""
    compared = members[-MEMBERS_COMPARED:]
    cosines = [
        probe.terms.cosine(vector(_hashes(m.profile.terms), _weights(m.profile.term_weights)))
        for m in compared
    ]
    names = _summed([(m.profile.names, m.profile.name_weights) for m in compared])
    figures = _summed([(m.profile.figures, m.profile.figure_weights) for m in compared])
    titles = _summed([(m.profile.title, m.profile.title_weights) for m in compared])
    # Against each member rather than the story's union of names, which grows with the story.
    rare_names = max(
        float(probe.name_rarity[np.isin(probe.name_keys, _hashes(m.profile.names))].sum())
        for m in compared
    )
    shared_names = int(np.isin(probe.name_keys, names.keys, assume_unique=True).sum())
    days_apart = min(abs(probe.event_time - m.event_time) for m in members) / 86400
    return np.array(
        [
            sum(cosines) / len(cosines),
            max(cosines),
            probe.names.cosine(names) * min(1.0, shared_names / NAMES_TRUSTED),
            probe.figures.cosine(figures),
            days_apart,
            probe.title.cosine(titles),
            math.log1p(rare_names),
        ]
    )


@dataclass(frozen=True)
class StoryOption:
    story_id: str
    features: FloatArray
    score: float


@dataclass(frozen=True)
class StoryChoice:
    story_id: str | None  # None: a new story
    probability: float  # of joining the best story (0 when there was none)
    best: StoryOption | None


def decision_features(options: Sequence[StoryOption]) -> FloatArray:
    """The best option's features with its rank score."""
    best = options[0]
    return np.concatenate([best.features, [best.score]])


def ranked(options: list[StoryOption]) -> list[StoryOption]:
    return sorted(options, key=lambda o: (-o.score, o.story_id))


def choose(model: StoryModel, options: list[StoryOption]) -> StoryChoice:
    """Join the best-ranked story, or start a new one (``options`` ranked best first)."""
    if not options:
        return StoryChoice(None, 0.0, None)
    probability = model.join_probability(decision_features(options))
    story_id = options[0].story_id if probability >= model.threshold else None
    return StoryChoice(story_id, probability, options[0])
