"""The window of recent articles and its candidate index.

Looking an article up must not scan the window: each article is filed under a few keys (its
names and a deterministic sample of its word 3-grams for copies; its names, figures and headline
words for stories), every key keeps only its most recent postings, and an article is compared
only with the few earlier articles (or stories) that share the most keys. Document frequencies
of the copy level's phrases come from a count-min sketch, so memory stays fixed however many
distinct phrases pass through.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.dedup.profile import Profile
from services.dedup.similarity import Fingerprint

# Keep one 3-gram in SHINGLE_SAMPLE as an index key; the choice depends on the hash only, so two
# copies of a passage sample the same 3-grams (the idea behind winnowing).
SHINGLE_SAMPLE = 8
SKETCH_DEPTH = 3
SKETCH_WIDTH = 1 << 21
_PRIME = (1 << 61) - 1
_SKETCH_SEEDS = ((0x9E3779B1, 0x7F4A7C15), (0x85EBCA77, 0xC2B2AE3D), (0x27D4EB2F, 0x165667B1))


@dataclass
class WindowEntry:
    """An article in the window with what was decided about it."""

    article_id: str
    event_time: float
    fingerprint: Fingerprint
    story_id: str
    copy_root: str  # the article it copies (its copy_of), or itself
    profile: Profile


def index_keys(fingerprint: Fingerprint) -> set[int]:
    keys = {h for h in fingerprint.shingles if h % SHINGLE_SAMPLE == 0}
    keys.update(h ^ 0x5BD1E995 for h in fingerprint.names)
    return keys


class FrequencySketch:
    """Count-min sketch of how many window articles contain each phrase hash (add and remove)."""

    def __init__(self, *, width: int = SKETCH_WIDTH, depth: int = SKETCH_DEPTH) -> None:
        self.width = width
        self.table = np.zeros((depth, width), dtype=np.int32)
        self.seeds = _SKETCH_SEEDS[:depth]

    def _columns(self, hashes: npt.NDArray[np.uint64]) -> list[npt.NDArray[np.uint64]]:
        return [((hashes * a + b) % _PRIME) % self.width for a, b in self.seeds]

    def update(self, hashes: array[int] | npt.NDArray[np.uint32], delta: int) -> None:
        values = np.asarray(hashes, dtype=np.uint64)
        for row, columns in enumerate(self._columns(values)):
            # Two hashes may share a column: each counts (what np.add.at does, only faster).
            unique, times = np.unique(columns.astype(np.intp), return_counts=True)
            self.table[row, unique] += (delta * times).astype(np.int32)

    def counts(self, hashes: array[int] | npt.NDArray[np.uint32]) -> npt.NDArray[np.int32]:
        values = np.asarray(hashes, dtype=np.uint64)
        if values.size == 0:
            return np.zeros(0, dtype=np.int32)
        rows = [self.table[r][c.astype(np.intp)] for r, c in enumerate(self._columns(values))]
        result: npt.NDArray[np.int32] = np.minimum.reduce(rows)
        return result


class Window:
    """Articles of the last ``span_seconds`` (by their own time), with a bounded key index."""

    def __init__(
        self, *, span_seconds: float, posting_limit: int = 48, candidate_limit: int = 24
    ) -> None:
        self.span_seconds = span_seconds
        self.posting_limit = posting_limit
        self.candidate_limit = candidate_limit
        self.entries: dict[str, WindowEntry] = {}
        # Plain lists, trimmed by hand: a deque costs ~600 bytes even when nearly empty, and most
        # keys hold one or two articles.
        self.postings: dict[int, list[str]] = {}
        self.frequencies = FrequencySketch()
        # The story level's index.
        self.story_postings: dict[int, list[str]] = {}
        self.stories: dict[str, list[str]] = {}  # story id -> its members, in arrival order
        self._by_time: list[tuple[float, str]] = []
        self.watermark = -math.inf

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, article_id: object) -> bool:
        return article_id in self.entries

    def get(self, article_id: str) -> WindowEntry | None:
        return self.entries.get(article_id)

    def add(self, entry: WindowEntry) -> None:
        if entry.article_id in self.entries:
            return
        self.entries[entry.article_id] = entry
        heapq.heappush(self._by_time, (entry.event_time, entry.article_id))
        for key in index_keys(entry.fingerprint):
            self._post(self.postings, key, entry.article_id)
        for key in entry.profile.index_keys():
            self._post(self.story_postings, key, entry.article_id)
        self.frequencies.update(entry.fingerprint.shingles, 1)
        self.stories.setdefault(entry.story_id, []).append(entry.article_id)
        self.watermark = max(self.watermark, entry.event_time)

    def evict_expired(self) -> list[str]:
        """Drop the articles older than the window behind the newest article time seen."""
        horizon = self.watermark - self.span_seconds
        evicted = []
        while self._by_time and self._by_time[0][0] < horizon:
            _, article_id = heapq.heappop(self._by_time)
            entry = self.entries.pop(article_id, None)
            if entry is None:
                continue
            self.frequencies.update(entry.fingerprint.shingles, -1)
            for key in index_keys(entry.fingerprint):
                _unpost(self.postings, key, article_id)
            for key in entry.profile.index_keys():
                _unpost(self.story_postings, key, article_id)
            members = self.stories.get(entry.story_id)
            if members is not None and article_id in members:
                members.remove(article_id)
                if not members:
                    del self.stories[entry.story_id]
            evicted.append(article_id)
        return evicted

    def _post(self, postings: dict[int, list[str]], key: int, article_id: str) -> None:
        posting = postings.get(key)
        if posting is None:
            postings[key] = [article_id]
            return
        posting.append(article_id)
        if len(posting) > self.posting_limit:
            del posting[0]

    def story_candidates(
        self, profile: Profile, *, event_time: float, horizon_seconds: float, limit: int
    ) -> list[str]:
        """The stories whose articles share the most index keys with ``profile``, among the
        articles within ``horizon_seconds`` of ``event_time``."""
        shared: Counter[str] = Counter()
        for key in profile.index_keys():
            posting = self.story_postings.get(key)
            if posting is not None:
                shared.update(posting)
        ranked = heapq.nsmallest(8 * limit, shared.items(), key=lambda item: (-item[1], item[0]))
        found: dict[str, None] = {}
        for article_id, _ in ranked:
            entry = self.entries.get(article_id)
            if entry is None or abs(entry.event_time - event_time) > horizon_seconds:
                continue
            found.setdefault(entry.story_id)
            if len(found) >= limit:
                break
        return list(found)

    def story_members(self, story_id: str) -> list[WindowEntry]:
        return [self.entries[a] for a in self.stories.get(story_id, ()) if a in self.entries]

    def candidates(self, fingerprint: Fingerprint, *, event_time: float) -> list[WindowEntry]:
        """The earlier articles sharing the most index keys, within the window of ``event_time``."""
        shared: Counter[str] = Counter()
        for key in index_keys(fingerprint):
            posting = self.postings.get(key)
            if posting is not None:
                shared.update(posting)
        found = []
        ranked = heapq.nsmallest(
            4 * self.candidate_limit, shared.items(), key=lambda item: (-item[1], item[0])
        )
        for article_id, count in ranked:
            if count < 2:
                break
            entry = self.entries.get(article_id)
            if entry is None or abs(entry.event_time - event_time) > self.span_seconds:
                continue
            found.append(entry)
            if len(found) >= self.candidate_limit:
                break
        return found

    def iter_entries(self) -> Iterator[WindowEntry]:
        return iter(self.entries.values())


def _unpost(postings: dict[int, list[str]], key: int, article_id: str) -> None:
    posting = postings.get(key)
    if posting is not None and article_id in posting:
        posting.remove(article_id)
        if not posting:
            del postings[key]
