"""What an article says happened, as counted vocabularies: the story level's view of a text.

A story is every report of one news happening, however it is worded, so the story level compares
what reports of a happening share whoever wrote them: the vocabulary of the prose, the names (of
people, places, groups), the figures, and the headline. Names and figures survive translation,
which is what joins a report in another language to its story.

Words are weighted by how rare they are in general English (the ``wordfreq`` package's
frequencies, Apache-2.0; data from Wikipedia, subtitles, news, books, web text and more, 2021),
not by their frequency in the window: a fixed scale, the same for the first article of a quiet
window as for the ten-thousandth of a busy one, and known from the article alone — so a window
rebuilt from the changelog weighs every article exactly as before.

Pure and deterministic: the same text gives the same profile in every process.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import wordfreq

from services.dedup.similarity import (
    STOPWORDS,
    content_words,
    extract_names,
    extract_numbers,
    normalize,
    stable_hash,
    words,
)

# A line of prose has at least this many words and ends a sentence; shorter lines and lines with
# links are navigation, captions, video players and share buttons in crawled pages.
PROSE_MIN_WORDS = 10
LINK = re.compile(r"https?://|www\.", re.IGNORECASE)
SENTENCE_END = tuple(".!?\"”’'")
# Counts written as words are the same figures as digits ("four wounded", "4 wounded").
NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
        " fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
# Years name the period, not the happening (every 2025 story says "2025").
YEAR = re.compile(r"^(19|20)\d\d$")

# Each vocabulary hashes into its own namespace.
TERM, NAME, FIGURE = "t", "n", "d"
# A word's weight is how many orders of magnitude it is rarer than the commonest words (Zipf
# scale: log10 of its frequency per billion words, "the" 7.7); unknown words count as Zipf 0.
ZIPF_CEILING = 8.0
MIN_WEIGHT = 0.5


@functools.cache
def _frequencies() -> dict[str, float]:
    frequencies: dict[str, float] = wordfreq.get_frequency_dict("en", wordlist="large")
    return frequencies


def rarity(word: str) -> float:
    """The weight of a word (or figure) by its general frequency."""
    frequency = _frequencies().get(word)
    if frequency:
        zipf = math.log10(frequency * 1e9)
    elif word[:1].isdigit():  # figures are estimated from their number of digits
        zipf = wordfreq.zipf_frequency(word, "en")
    else:
        zipf = 0.0
    return max(ZIPF_CEILING - zipf, MIN_WEIGHT)


def key(namespace: str, item: str) -> int:
    return stable_hash(f"{namespace}\x00{item}")


def fold(word: str) -> str:
    """The word without its diacritics: "Rússia" and "Russia", "Zelenskyy" in any transliteration
    that differs only by accents, are one name."""
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


@dataclass(frozen=True)
class Profile:
    """Sorted hash arrays (``array('I')``), each with its weights (``array('f')``): a word's
    rarity, times 1 + the log of its count where counts matter."""

    terms: array[int]  # content words of the prose and the headline
    term_weights: array[float]
    names: array[int]  # the words of capitalised names
    name_weights: array[float]
    figures: array[int]  # numbers and counts written as words, years left out
    figure_weights: array[float]
    title: array[int]  # content words of the headline (hashed as terms)
    title_weights: array[float]

    def index_keys(self) -> set[int]:
        """What the article is filed under for story candidates: its names, figures and headline
        words. Chosen from the article alone (no weights from the window), so a window rebuilt
        from the changelog files every article as before."""
        return {*self.names, *self.figures, *self.title}


def prose(text: str) -> str:
    """The lines of ``text`` that read as sentences, or all of it when none does."""
    kept = []
    for line in text.split("\n"):
        stripped = line.strip()
        if (
            len(stripped.split()) >= PROSE_MIN_WORDS
            and stripped.endswith(SENTENCE_END)
            and not LINK.search(stripped)
        ):
            kept.append(stripped)
    return "\n".join(kept) if kept else text


def _weighted(
    namespace: str, items: Iterable[str], *, counted: bool = True
) -> tuple[array[int], array[float]]:
    counts = Counter(fold(item) for item in items)
    weights = {
        key(namespace, item): rarity(item) * ((1.0 + math.log(n)) if counted else 1.0)
        for item, n in counts.items()
    }
    hashes = sorted(weights)
    return array("I", hashes), array("f", (weights[h] for h in hashes))


def make_profile(title: str, text: str) -> Profile:
    title = normalize(title or "")
    body = f"{title}\n{prose(normalize(text))}"
    terms, term_weights = _weighted(TERM, content_words(body))
    name_words = [
        word
        for name in extract_names(body)
        for word in name.split()
        if word not in STOPWORDS and len(word) > 1
    ]
    names, name_weights = _weighted(NAME, name_words)
    figures = {n for n in extract_numbers(body) if not YEAR.match(n)}
    figures.update(NUMBER_WORDS[w] for w in words(body) if w in NUMBER_WORDS)
    figure_keys, figure_weights = _weighted(FIGURE, figures, counted=False)
    title_keys, title_weights = _weighted(TERM, set(content_words(title)), counted=False)
    return Profile(
        terms=terms,
        term_weights=term_weights,
        names=names,
        name_weights=name_weights,
        figures=figure_keys,
        figure_weights=figure_weights,
        title=title_keys,
        title_weights=title_weights,
    )
