"""Decide where an article stands among the articles of the window: copy, same story or new story.

The pure core shared by the stream service (``app.py``), the offline command (``cli.py``) and the
benchmarks. It knows nothing of Kafka: it takes articles in arrival order and returns one
``Decision`` each, the same one every time the same article comes back.

Two levels. A *copy* reuses the text of an earlier article (verbatim, edited, spun, partial):
word 3-grams and aligned sentences decide, as before. A *story* is every report of one news
happening, copies and independent reports alike: ``stories.py`` scores the candidate stories and
decides between joining the best one and starting a new one. A copy is in its original's story.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from services.common.times import parse_timestamp
from services.dedup.index import Window, WindowEntry
from services.dedup.profile import Profile, make_profile
from services.dedup.similarity import (
    Fingerprint,
    aligned_sentences,
    as_numpy,
    containment,
    fingerprint,
)
from services.dedup.stories import (
    Member,
    StoryChoice,
    StoryModel,
    StoryOption,
    choose,
    probe_vectors,
    ranked,
    story_features,
)

logger = logging.getLogger(__name__)

Outcome = str  # one of OUTCOMES
OUTCOMES = ("new_story", "copy", "same_story")


@dataclass(frozen=True)
class Thresholds:
    """Where the copy signals decide; documented with their measured effect in docs/."""

    copy_shingles: float = 0.33  # share of the smaller text's word 3-grams found in the other
    copy_alignment: float = 0.75  # share of sentences with a counterpart (spun copies)
    copy_alignment_shingles: float = 0.15  # ... provided this much text is shared verbatim
    sentence_overlap: float = 0.5  # share of a sentence's words that make it a counterpart
    story_candidates: int = 16  # stories scored per article


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
class CopySignals:
    """How an article's text compares with one earlier article's."""

    shingles: float
    alignment: float

    def fired(self, thresholds: Thresholds) -> tuple[str, ...]:
        names = []
        if self.shingles >= thresholds.copy_shingles:
            names.append("shared_text")
        if self.alignment >= thresholds.copy_alignment:
            names.append("sentence_alignment")
        return tuple(names)

    @property
    def score(self) -> float:
        return round(min(1.0, max(self.shingles, self.alignment)), 4)


@dataclass(frozen=True)
class Probe:
    """What is looked up for an arriving article, computed once."""

    article_id: str
    event_time: float
    fingerprint: Fingerprint
    profile: Profile


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
        model: StoryModel | None = None,
        posting_limit: int = 48,
        candidate_limit: int = 24,
    ) -> None:
        self.thresholds = thresholds or Thresholds()
        self.model = model or StoryModel.bundled()
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

    def probe(self, article: ArticleIn) -> Probe:
        event_time = article.event_time
        if event_time is None or math.isnan(event_time):
            event_time = self.window.watermark if math.isfinite(self.window.watermark) else 0.0
        return Probe(
            article.article_id,
            event_time,
            fingerprint(article.title, article.text),
            make_profile(article.title, article.text),
        )

    def decide(self, article: ArticleIn) -> tuple[Decision, WindowEntry | None]:
        """The decision for ``article`` and, when it is new, the window entry to persist."""
        known = self.decisions.get(article.article_id)
        if known is not None:
            return known, None
        probe = self.probe(article)
        decision = self._judge(probe)
        return decision, self.file(probe, decision)

    def file(self, probe: Probe, decision: Decision) -> WindowEntry:
        """Add a decided article to the window (the fitting script files its gold story)."""
        entry = WindowEntry(
            article_id=probe.article_id,
            event_time=probe.event_time,
            fingerprint=probe.fingerprint,
            story_id=decision.story_id,
            copy_root=decision.copy_of or probe.article_id,
            profile=probe.profile,
        )
        self.window.add(entry)
        self.decisions[probe.article_id] = decision
        return entry

    def compare(self, fp: Fingerprint, other: WindowEntry) -> CopySignals:
        """The copy signals between a new article and one earlier article (sentence alignment
        only when enough text is shared for it to matter)."""
        shingles = containment(as_numpy(fp.shingles), as_numpy(other.fingerprint.shingles))
        alignment = 0.0
        if shingles >= self.thresholds.copy_alignment_shingles:
            alignment = aligned_sentences(
                fp, other.fingerprint, threshold=self.thresholds.sentence_overlap
            )
        return CopySignals(shingles=shingles, alignment=alignment)

    def story_options(self, probe: Probe) -> list[StoryOption]:
        """The candidate stories of ``probe`` with their features and rank scores, best first."""
        story_ids = self.window.story_candidates(
            probe.profile,
            event_time=probe.event_time,
            horizon_seconds=self.model.horizon_seconds,
            limit=self.thresholds.story_candidates,
        )
        if not story_ids:
            return []
        vectors = probe_vectors(probe.profile, probe.event_time)
        options = []
        for story_id in story_ids:
            members = [Member(e.event_time, e.profile) for e in self.window.story_members(story_id)]
            features = story_features(vectors, members)
            options.append(StoryOption(story_id, features, self.model.rank(features)))
        return ranked(options)

    def choose_story(self, probe: Probe) -> StoryChoice:
        return choose(self.model, self.story_options(probe))

    def _is_copy(self, signals: CopySignals) -> bool:
        t = self.thresholds
        return signals.shingles >= t.copy_shingles or (
            signals.alignment >= t.copy_alignment and signals.shingles >= t.copy_alignment_shingles
        )

    def _judge(self, probe: Probe) -> Decision:
        candidates = self.window.candidates(probe.fingerprint, event_time=probe.event_time)
        scored = [(entry, self.compare(probe.fingerprint, entry)) for entry in candidates]
        copies = [(e, s) for e, s in scored if self._is_copy(s)]
        if copies:
            roots = [self.window.get(e.copy_root) or e for e, _ in copies]
            original = min(roots, key=lambda e: (e.event_time, e.article_id))
            best_entry, best = max(copies, key=lambda item: (item[1].score, item[0].article_id))
            return Decision(
                article_id=probe.article_id,
                story_id=best_entry.story_id,
                copy_of=original.article_id,
                is_first_in_story=False,
                outcome="copy",
                similarity=best.score,
                matched_article_id=best_entry.article_id,
                signals=best.fired(self.thresholds),
                candidates=len(candidates),
            )
        choice = self.choose_story(probe)
        best_id = choice.best.story_id if choice.best is not None else None
        similarity = round(choice.probability, 4)
        if choice.story_id is not None:
            return Decision(
                article_id=probe.article_id,
                story_id=choice.story_id,
                copy_of=None,
                is_first_in_story=False,
                outcome="same_story",
                similarity=similarity,
                matched_article_id=best_id,
                signals=("same_happening",),
                candidates=len(candidates),
            )
        return Decision(
            article_id=probe.article_id,
            story_id=probe.article_id,
            copy_of=None,
            is_first_in_story=True,
            outcome="new_story",
            similarity=similarity,
            matched_article_id=best_id,
            signals=(),
            candidates=len(candidates),
        )
