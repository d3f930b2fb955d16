"""Decide where an article stands among the articles of the window: new story, copy or rewrite.

The pure core shared by the stream service (``app.py``), the offline command (``cli.py``) and the
benchmarks. It knows nothing of Kafka: it takes articles in arrival order and returns one
``Decision`` each, the same one every time the same article comes back.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from services.common.times import parse_timestamp
from services.dedup.index import Window, WindowEntry
from services.dedup.similarity import (
    Fingerprint,
    aligned_sentences,
    as_numpy,
    containment,
    fingerprint,
    found_in,
)

logger = logging.getLogger(__name__)

Outcome = str  # one of OUTCOMES
OUTCOMES = ("new_story", "copy", "rewrite")

# Below this share of common word 3-grams two articles tell different stories; the costlier
# signals are not computed.
MIN_SHARED_SHINGLES = 0.04


@dataclass(frozen=True)
class Thresholds:
    """Where the signals decide; documented with their measured effect in the README."""

    copy_shingles: float = 0.33  # share of the smaller text's word 3-grams found in the other
    copy_alignment: float = 0.75  # share of sentences with a counterpart (spun copies)
    copy_alignment_shingles: float = 0.15  # ... provided this much text is shared verbatim
    story_narrative: float = 0.07  # rarity-weighted share of the reporting outside quotes
    story_names: int = 3  # a rewrite must also name at least this many of the same names


@dataclass(frozen=True)
class Probe:
    """A new article's fingerprint with the rarity weights of its reporting, and its hashes as
    numpy arrays (made once per lookup, not once per candidate)."""

    fingerprint: Fingerprint
    narrative: npt.NDArray[np.uint32]  # sorted
    weights: npt.NDArray[np.float64]  # the rarity of each narrative 3-gram
    total: float
    shingles: npt.NDArray[np.uint32]
    quotes: npt.NDArray[np.uint32]
    names: frozenset[int] = frozenset()
    numbers: frozenset[int] = frozenset()


@dataclass(frozen=True)
class ArticleIn:
    """What the core needs of an article."""

    article_id: str
    title: str
    text: str
    event_time: float | None = None  # publication (else first seen), epoch seconds


@dataclass(frozen=True)
class Decision:
    article_id: str
    story_id: str
    copy_of: str | None
    is_first_in_story: bool
    outcome: Outcome
    similarity: float
    matched_article_id: str | None
    signals: tuple[str, ...] = field(default=())
    candidates: int = 0


@dataclass(frozen=True)
class PairSignals:
    """How an article compares with one earlier article."""

    shingles: float
    narrative: float
    alignment: float
    names: int
    numbers: int
    quotes: float

    def fired(self, thresholds: Thresholds) -> tuple[str, ...]:
        names = []
        if self.shingles >= thresholds.copy_shingles:
            names.append("shared_text")
        if self.alignment >= thresholds.copy_alignment:
            names.append("sentence_alignment")
        if self.narrative >= thresholds.story_narrative:
            names.append("shared_reporting")
        if self.names >= thresholds.story_names:
            names.append("shared_names")
        if self.quotes >= 0.5:
            names.append("shared_quotes")
        if self.numbers >= 2:
            names.append("shared_numbers")
        return tuple(names)


def parse_time(value: str | None) -> float | None:
    """Epoch seconds of an ISO 8601 date or date-time, None when absent or unreadable."""
    parsed = parse_timestamp(value)
    return parsed.timestamp() if parsed is not None else None


class Deduplicator:
    """Assigns story and copy to each article against a time-bounded window."""

    def __init__(
        self,
        *,
        window_seconds: float = 72 * 3600,
        thresholds: Thresholds | None = None,
        posting_limit: int = 48,
        candidate_limit: int = 24,
    ) -> None:
        self.thresholds = thresholds or Thresholds()
        self.window = Window(
            span_seconds=window_seconds,
            posting_limit=posting_limit,
            candidate_limit=candidate_limit,
        )
        self.decisions: dict[str, Decision] = {}

    def restore(self, entry: WindowEntry, decision: Decision) -> None:
        """Put back an article recovered from the changelog (no decision is made again)."""
        self.window.add(entry)
        self.decisions[entry.article_id] = decision

    def evict(self) -> list[str]:
        evicted = self.window.evict_expired()
        for article_id in evicted:
            self.decisions.pop(article_id, None)
        return evicted

    def decide(self, article: ArticleIn) -> tuple[Decision, WindowEntry | None]:
        """The decision for ``article`` and, when it is new, the window entry to persist."""
        known = self.decisions.get(article.article_id)
        if known is not None:
            return known, None
        event_time = article.event_time
        if event_time is None or math.isnan(event_time):
            event_time = self.window.watermark if math.isfinite(self.window.watermark) else 0.0
        fp = fingerprint(article.title, article.text)
        candidates = self.window.candidates(fp, event_time=event_time)
        decision = self._judge(article.article_id, fp, candidates)
        entry = WindowEntry(
            article_id=article.article_id,
            event_time=event_time,
            fingerprint=fp,
            story_id=decision.story_id,
            copy_root=decision.copy_of or article.article_id,
        )
        self.window.add(entry)
        self.decisions[article.article_id] = decision
        return decision, entry

    def probe(self, fp: Fingerprint) -> Probe:
        """What ``compare`` needs of the new article, computed once per lookup."""
        narrative = fp.narrative()
        weights = self._idf(narrative)
        return Probe(
            fp,
            narrative,
            weights,
            float(weights.sum()),
            shingles=as_numpy(fp.shingles),
            quotes=as_numpy(fp.quotes),
            names=frozenset(fp.names),
            numbers=frozenset(fp.numbers),
        )

    def compare(self, fp: Fingerprint | Probe, other: WindowEntry) -> PairSignals:
        """The signals between a new article and one earlier article.

        The expensive ones (rarity-weighted reporting, sentence alignment) are computed only
        when enough text is shared for them to matter.
        """
        probe = fp if isinstance(fp, Probe) else self.probe(fp)
        mine, theirs = probe.fingerprint, other.fingerprint
        shingles = containment(probe.shingles, as_numpy(theirs.shingles))
        narrative = alignment = 0.0
        if shingles >= MIN_SHARED_SHINGLES:
            narrative = self._weighted_containment(probe, theirs.narrative())
        if shingles >= self.thresholds.copy_alignment_shingles:
            alignment = aligned_sentences(mine, theirs)
        return PairSignals(
            shingles=shingles,
            narrative=narrative,
            alignment=alignment,
            names=len(probe.names.intersection(theirs.names)),
            numbers=len(probe.numbers.intersection(theirs.numbers)),
            quotes=containment(probe.quotes, as_numpy(theirs.quotes)),
        )

    def _idf(self, hashes: npt.NDArray[np.uint32]) -> npt.NDArray[np.float64]:
        size = len(self.window) + 1
        counts = self.window.frequencies.counts(hashes)
        weights: npt.NDArray[np.float64] = np.log((size + 1) / (counts + 1.0))
        return weights

    def _weighted_containment(self, probe: Probe, theirs: npt.NDArray[np.uint32]) -> float:
        """Shared reporting, each 3-gram weighted by how rare it is in the window (IDF).

        Phrases every article on a topic uses ("30-day ceasefire", "Secretary of State Marco
        Rubio") weigh little; the phrasing one wire story introduced weighs most.
        """
        if not probe.narrative.size or not theirs.size:
            return 0.0
        shared = probe.weights[found_in(probe.narrative, theirs)]
        if not shared.size:
            return 0.0
        denominator = min(probe.total, float(self._idf(theirs).sum()))
        return float(shared.sum()) / denominator if denominator > 0 else 0.0

    def _is_copy(self, signals: PairSignals) -> bool:
        t = self.thresholds
        return signals.shingles >= t.copy_shingles or (
            signals.alignment >= t.copy_alignment and signals.shingles >= t.copy_alignment_shingles
        )

    def _is_same_story(self, signals: PairSignals) -> bool:
        t = self.thresholds
        return signals.narrative >= t.story_narrative and signals.names >= t.story_names

    def _judge(self, article_id: str, fp: Fingerprint, candidates: list[WindowEntry]) -> Decision:
        probe = self.probe(fp)
        scored = [(entry, self.compare(probe, entry)) for entry in candidates]
        copies = [(e, s) for e, s in scored if self._is_copy(s)]
        if copies:
            roots = [self.window.get(e.copy_root) or e for e, _ in copies]
            original = min(roots, key=lambda e: (e.event_time, e.article_id))
            best_entry, best = max(copies, key=lambda item: _score(item[1]))
            return Decision(
                article_id=article_id,
                story_id=best_entry.story_id,
                copy_of=original.article_id,
                is_first_in_story=False,
                outcome="copy",
                similarity=_score(best),
                matched_article_id=best_entry.article_id,
                signals=best.fired(self.thresholds),
                candidates=len(candidates),
            )
        related = [(e, s) for e, s in scored if self._is_same_story(s)]
        if related:
            best_entry, best = max(related, key=lambda item: (_score(item[1]), item[0].article_id))
            return Decision(
                article_id=article_id,
                story_id=best_entry.story_id,
                copy_of=None,
                is_first_in_story=False,
                outcome="rewrite",
                similarity=_score(best),
                matched_article_id=best_entry.article_id,
                signals=best.fired(self.thresholds),
                candidates=len(candidates),
            )
        best_score, best_id = 0.0, None
        if scored:
            entry, signals = max(scored, key=lambda item: _score(item[1]))
            best_score, best_id = _score(signals), entry.article_id
        return Decision(
            article_id=article_id,
            story_id=article_id,
            copy_of=None,
            is_first_in_story=True,
            outcome="new_story",
            similarity=best_score,
            matched_article_id=best_id,
            signals=(),
            candidates=len(candidates),
        )


def _score(signals: PairSignals) -> float:
    """One number for reports: the strongest of the text-sharing signals, in [0, 1]."""
    return round(min(1.0, max(signals.shingles, signals.narrative, signals.alignment)), 4)
