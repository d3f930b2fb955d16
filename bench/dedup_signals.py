"""How well each single signal tells same-story pairs from independent same-event reports.

A measurement, not a decision: for every signal, the neardup dev pairs that are duplicates
(strong + weak) are scored against the ``hard_negative_same_topic`` pairs, and the threshold is
put just above the highest hard negatives so that at most 2 % of them pass (the issue's limit).
What is printed is the share of duplicate pairs a signal alone still catches there: a signal
worth adding to the decision must catch pairs the current ones miss at that cost. Pairs are
scored one by one (no clustering, so no chaining), each text against the window of all 29 pages.

Besides the signals the engine computes (``PairSignals``), two candidates suggested for telling
which report a text derives from are measured here, and were not adopted (see README, Dedup):
attributed statements (a sentence with a reporting verb, its speakers and its content words) and
the ordered sentence alignment (the longest run of aligned sentences in the same order).
The baseline is word 5-shingle Jaccard, as in ``bench.dedup_quality``.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable
from typing import Any

from bench.dedup_quality import NEARDUP
from bench.evaldata import REPO_ROOT
from services.dedup.engine import ArticleIn, Deduplicator, PairSignals
from services.dedup.index import WindowEntry
from services.dedup.offline import load_seed_articles
from services.dedup.similarity import (
    QUOTE,
    WORD,
    Fingerprint,
    aligned_sentences,
    article_body,
    content_words,
    extract_names,
    fingerprint,
    normalize,
    split_sentences,
)

HARD_NEGATIVE_LIMIT = 0.02
REPORTING = re.compile(
    r"\b(said|says|told|added|according to|stated|announced|wrote|posted|noted|urged|warned|"
    r"insisted|confirmed|denied)\b",
    re.IGNORECASE,
)


def attributions(title: str, text: str) -> list[tuple[set[str], set[str]]]:
    """(speaker surnames, content words) of each sentence that reports what someone said."""
    found = []
    for sentence in split_sentences(normalize(f"{title}\n{text}")):
        if not REPORTING.search(sentence):
            continue
        speakers = {name.split()[-1] for name in extract_names(sentence)}
        said = set(content_words(sentence)) - speakers
        if speakers and len(said) >= 4:
            found.append((speakers, said))
    return found


def shared_attributions(
    a: list[tuple[set[str], set[str]]], b: list[tuple[set[str], set[str]]], threshold: float = 0.4
) -> float:
    """Share of the shorter text's attributed statements restated in the other (same speaker)."""
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    if not short:
        return 0.0
    hits = sum(
        any(
            speakers & other_speakers
            and len(said & other_said) / min(len(said), len(other_said)) >= threshold
            for other_speakers, other_said in long_
        )
        for speakers, said in short
    )
    return hits / len(short)


def ordered_alignment(a: Fingerprint, b: Fingerprint, threshold: float = 0.4) -> float:
    """Longest in-order run of aligned sentences, as a share of the shorter text's sentences."""
    short, long_ = (a, b) if len(a.sentences) <= len(b.sentences) else (b, a)
    if not short.sentences:
        return 0.0
    matches = []
    for sentence in short.sentences:
        words = set(sentence)
        best, where = 0.0, -1
        for index, other in enumerate(long_.sentences):
            share = len(words.intersection(other)) / min(len(words), len(other))
            if share > best:
                best, where = share, index
        if best >= threshold:
            matches.append(where)
    tails: list[int] = []
    for position in matches:
        slot = bisect.bisect_left(tails, position)
        tails[slot : slot + 1] = [position]
    return len(tails) / len(short.sentences)


PASSAGE_WINDOW = 30  # words: about two sentences


def ordered_grams(title: str, text: str) -> list[tuple[str, bool]]:
    """The text's word 3-grams in order, each with whether it touches a quotation."""
    body = article_body(title, text)
    quoted = [match.span() for match in QUOTE.finditer(body)]
    tokens = [
        (match.group(0).lower(), any(start <= match.start() < end for start, end in quoted))
        for match in WORD.finditer(body)
    ]
    return [
        (
            " ".join(word for word, _ in tokens[i : i + 3]),
            any(inside for _, inside in tokens[i : i + 3]),
        )
        for i in range(len(tokens) - 2)
    ]


def passage_reuse(a: list[tuple[str, bool]], b: list[tuple[str, bool]]) -> float:
    """The densest run of PASSAGE_WINDOW 3-grams of one text's own reporting (outside
    quotations) found anywhere in the other: a passage taken over (partial copies, rewrites
    that keep a paragraph), which a share of the whole text dilutes."""
    best = 0.0
    for mine, theirs in ((a, b), (b, a)):
        found = {gram for gram, _ in theirs}
        hits = [not quoted and gram in found for gram, quoted in mine]
        for start in range(max(1, len(hits) - PASSAGE_WINDOW + 1)):
            best = max(best, sum(hits[start : start + PASSAGE_WINDOW]) / PASSAGE_WINDOW)
    return best


def jaccard5(a: str, b: str) -> float:
    def grams(text: str) -> set[str]:
        tokens = re.findall(r"\w+", text.lower())
        return {" ".join(tokens[i : i + 5]) for i in range(len(tokens) - 4)}

    sa, sb = grams(a), grams(b)
    return len(sa & sb) / len(sa | sb) if sa and sb else 0.0


def recall_at_limit(scored: list[tuple[float, bool]]) -> tuple[float, float]:
    """(threshold, share of positives strictly above it) with <= 2 % of negatives above it."""
    negatives = sorted((s for s, positive in scored if not positive), reverse=True)
    allowed = int(HARD_NEGATIVE_LIMIT * len(negatives))
    threshold = negatives[allowed] if allowed < len(negatives) else 0.0
    positives = [s for s, positive in scored if positive]
    return threshold, sum(s > threshold for s in positives) / len(positives)


def main() -> None:
    rows = {
        row["id"]: row
        for row in map(json.loads, (NEARDUP / "news_pages_dev.jsonl").open(encoding="utf-8"))
    }
    pairs = [
        p
        for p in map(json.loads, (NEARDUP / "news_pages_dev_pairs.jsonl").open(encoding="utf-8"))
        if p["kind"] != "easy_negative_other_topic"
    ]
    table = PairTable(dev_texts(rows))
    signals: dict[str, Callable[[str, str], float]] = {
        "shared 3-grams (copy)": lambda a, b: table.engine_signals(a, b).shingles,
        "rarity-weighted reporting (rewrite)": lambda a, b: table.engine_signals(a, b).narrative,
        "sentence alignment": lambda a, b: table.engine_signals(a, b).alignment,
        "shared names": lambda a, b: float(table.engine_signals(a, b).names),
        "shared quotations": lambda a, b: table.engine_signals(a, b).quotes,
        "attributed statements (tried)": lambda a, b: shared_attributions(
            table.said[a], table.said[b]
        ),
        "ordered sentence alignment (tried)": lambda a, b: ordered_alignment(
            table.prints[a], table.prints[b]
        ),
        "passage reuse (tried)": lambda a, b: passage_reuse(table.grams[a], table.grams[b]),
    }
    positives = sum(p["kind"].startswith("duplicate") for p in pairs)
    print(
        f"neardup dev: {positives} duplicate pairs (strong+weak) against"
        f" {len(pairs) - positives} hard negatives; threshold lets <= 2% of hard negatives pass"
    )
    base_threshold, base_recall = recall_at_limit(
        [
            (
                jaccard5(rows[p["id1"]]["text"], rows[p["id2"]]["text"]),
                p["kind"] != "hard_negative_same_topic",
            )
            for p in pairs
        ]
    )
    for name, signal in signals.items():
        threshold, recall = recall_at_limit(
            [(signal(p["id1"], p["id2"]), p["kind"] != "hard_negative_same_topic") for p in pairs]
        )
        ratio = f"{recall / base_recall:.2f}x" if base_recall else "n/a (baseline 0)"
        print(
            f"  {name:38s} duplicate pairs caught {recall:6.1%} (threshold {threshold:.3f})"
            f"   baseline 5-shingle Jaccard {base_recall:.1%}   ratio {ratio}"
        )
    hard_pairs = [(p["id1"], p["id2"]) for p in pairs if p["kind"] == "hard_negative_same_topic"]
    seed_bound(rows, hard_pairs)


# The dev pages are excerpts of at most this many characters; the seeds are cut to it too, so
# that counts (shared names, numbers) compare texts of the same length.
DEV_PAGE_LENGTH = 2000
BOUND_SIGNALS = (
    "3-grams",
    "reporting",
    "alignment",
    "names",
    "names share",
    "quotes",
    "numbers",
    "attributed",
    "ordered alignment",
    "passage",
)


def dev_texts(rows: dict[str, dict[str, Any]]) -> dict[str, tuple[str, str]]:
    return {i: (r.get("title") or "", r["text"]) for i, r in rows.items()}


class PairTable:
    """Texts in one window (the engine has decided each), with what every signal needs of them."""

    def __init__(self, texts: dict[str, tuple[str, str]]) -> None:
        self.engine = Deduplicator()
        for article_id, (title, text) in texts.items():
            self.engine.decide(ArticleIn(article_id, title, text))
        self.prints = {i: fingerprint(title, text) for i, (title, text) in texts.items()}
        self.said = {i: attributions(title, text) for i, (title, text) in texts.items()}
        self.grams = {i: ordered_grams(title, text) for i, (title, text) in texts.items()}

    def engine_signals(self, a: str, b: str) -> PairSignals:
        return self.engine.compare(self.prints[a], WindowEntry(b, 0.0, self.prints[b], b, b))

    def vector(self, a: str, b: str) -> tuple[float, ...]:
        """Every measured signal of a pair (BOUND_SIGNALS, in that order).

        Alignment is computed whatever the shared text (the engine skips it below 15 %), so that
        no signal is lost to the engine's shortcuts.
        """
        mine, theirs = self.prints[a], self.prints[b]
        pair = self.engine_signals(a, b)
        fewer_names = max(1, min(len(mine.names), len(theirs.names)))
        return (
            pair.shingles,
            pair.narrative,
            aligned_sentences(mine, theirs),
            float(pair.names),
            pair.names / fewer_names,
            pair.quotes,
            float(pair.numbers),
            shared_attributions(self.said[a], self.said[b]),
            ordered_alignment(mine, theirs),
            passage_reuse(self.grams[a], self.grams[b]),
        )


def seed_bound(rows: dict[str, dict[str, Any]], hard_pairs: list[tuple[str, str]]) -> None:
    """How many hard negatives a rule must merge to put each seed in one story with the others.

    A rule that judges a pair on these signals and is monotone (a pair that scores at least as
    high on every signal is judged the same story too) and that joins two seeds also joins every
    hard negative pair scoring at least as high on all of them. Each seed needs one such edge to
    another seed; the fewest hard negatives any of its edges brings is a lower bound for that
    seed, whatever the thresholds or weights.
    """
    seeds = load_seed_articles(REPO_ROOT / "services" / "demo" / "seeds")
    texts = dev_texts(rows)
    names = [f"seed{n}" for n in range(len(seeds))]
    for name, seed in zip(names, seeds, strict=True):
        texts[name] = (seed.title, seed.text[:DEV_PAGE_LENGTH])
    vector = PairTable(texts).vector
    hard = [vector(a, b) for a, b in hard_pairs]
    limit = int(HARD_NEGATIVE_LIMIT * len(hard))
    print(
        f"seeds (cut to {DEV_PAGE_LENGTH} characters, like the dev pages) in one window with the"
        f" dev pages, on all {len(BOUND_SIGNALS)} signals ({', '.join(BOUND_SIGNALS)}):"
    )
    print(
        f"  fewest hard negatives a monotone rule must merge to join each seed to another"
        f" (the limit is {limit} of {len(hard)}):"
    )
    for name in names:
        fewest = min(
            sum(all(h >= s for h, s in zip(negative, edge, strict=True)) for negative in hard)
            for edge in (vector(name, other) for other in names if other != name)
        )
        verdict = "over the limit" if fewest > limit else "within it"
        print(f"  {name}: {fewest} ({fewest / len(hard):.1%}), {verdict}")


if __name__ == "__main__":
    main()
