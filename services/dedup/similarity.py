"""Compare two articles: the cheap signals that tell a copy (text reuse) from an independent report.

Everything here is pure and deterministic (no model, no randomness, stable hashes), so the stream
service, the offline CLI and the benchmarks compute the same fingerprint and the same decision, and
a reprocessed article gets the same answer.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from array import array
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

WORD = re.compile(r"\w+", re.UNICODE)
# A capitalised word sequence (optionally joined by "of"/"al"/"bin" style particles).
NAME = re.compile(
    r"(?<![\w.])(?:[A-Z][\w'’\-]*\.?)(?:\s+(?:(?:of|al|bin|de|da|von|van|the)\s+)?[A-Z][\w'’\-]*)*"
)
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?:\s*(?:%|percent|per cent))?")
QUOTE = re.compile(r"“([^”]{12,}?)”|\"([^\"]{12,}?)\"|«([^»]{12,}?)»|(?<!\w)‘([^’]{12,}?)’(?!\w)")
SENTENCE_BREAK = re.compile(r"(?<=[.!?…])[\"”’)]?\s+|\n+")

# Function words of English (and the few Portuguese/Spanish/French ones that are also frequent in
# news), removed before comparing vocabulary: they say nothing about which story a text tells.
STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself said says
    say told tell one two new also would could may might must shall us mr ms mrs
    o os as um uma de do da dos das em no na nos nas por para com que se ao à é foi ser e ou
    el la los las un una del y en con por para que es
    le les des du et est pour dans sur au aux
    """.split()
)

# Sentence words this short carry no alignment evidence on their own.
MIN_SENTENCE_WORDS = 5
SHINGLE_SIZE = 3


def stable_hash(text: str) -> int:
    """A 32-bit hash that is the same in every process (``hash()`` is salted per process)."""
    return zlib.crc32(text.encode("utf-8"))


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def content_words(text: str) -> list[str]:
    return [w for w in words(text) if w not in STOPWORDS and not w.isdigit() and len(w) > 1]


def _hashes(items: set[str]) -> array[int]:
    return array("I", sorted({stable_hash(item) for item in items}))


@dataclass(frozen=True)
class Fingerprint:
    """What is kept of an article to compare it with later ones: sorted 32-bit hash arrays.

    Arrays of hashes rather than sets of strings keep a 100k-article window in memory (a few KB
    an article) and serialise compactly into the changelog.
    """

    shingles: array[int]  # word 3-grams of the whole text (copy evidence)
    quotes: array[int]  # the word 3-grams that lie inside quotation marks
    names: array[int]  # capitalised name sequences
    numbers: array[int]  # figures, counts, percentages, years
    sentences: tuple[array[int], ...] = field(default=())  # content words of each sentence


def extract_quotes(text: str) -> list[str]:
    return [next(g for g in match.groups() if g) for match in QUOTE.finditer(text)]


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_BREAK.split(text) if s and s.strip()]


def extract_names(text: str) -> set[str]:
    """Capitalised sequences; a lone capitalised function word ("The", "But") is not a name."""
    found: set[str] = set()
    for sentence in split_sentences(text):
        for match in NAME.finditer(sentence):
            tokens = words(match.group(0))
            if not tokens or (len(tokens) == 1 and tokens[0] in STOPWORDS):
                continue
            found.add(" ".join(tokens))
    return found


def extract_numbers(text: str) -> set[str]:
    return {re.sub(r"[\s,]", "", n.lower()).replace("percent", "%") for n in NUMBER.findall(text)}


def article_body(title: str, text: str) -> str:
    """The text compared: the title is read as the first line unless the text already opens
    with it."""
    return normalize(
        f"{title}\n{text}" if title and title not in text[: len(title) + 200] else text
    )


def fingerprint(title: str, text: str) -> Fingerprint:
    """The fingerprint of an article (of its ``article_body``)."""
    body = article_body(title, text)
    tokens = words(body)
    shingles = {" ".join(tokens[i : i + SHINGLE_SIZE]) for i in range(len(tokens) - 2)}
    quote_grams: set[str] = set()
    for quote in extract_quotes(body):
        qwords = words(quote)
        quote_grams.update(" ".join(qwords[i : i + 3]) for i in range(len(qwords) - 2))
    sentences = []
    for sentence in split_sentences(body):
        vocab = set(content_words(sentence))
        if len(vocab) >= MIN_SENTENCE_WORDS:
            sentences.append(_hashes(vocab))
    return Fingerprint(
        shingles=_hashes(shingles),
        quotes=_hashes(quote_grams & shingles),
        names=_hashes(extract_names(body)),
        numbers=_hashes(extract_numbers(body)),
        sentences=tuple(sentences),
    )


def as_numpy(values: array[int]) -> npt.NDArray[np.uint32]:
    """A fingerprint's hash array seen as numpy (no copy)."""
    return np.frombuffer(values, dtype=np.uint32)


def found_in(
    values: npt.NDArray[np.uint32], sorted_other: npt.NDArray[np.uint32]
) -> npt.NDArray[np.bool_]:
    """For each of ``values``, whether it is in ``sorted_other`` (sorted, distinct)."""
    if not sorted_other.size:
        return np.zeros(values.size, dtype=bool)
    at = np.searchsorted(sorted_other, values)
    at[at == sorted_other.size] = 0
    hit: npt.NDArray[np.bool_] = sorted_other[at] == values
    return hit


def containment(a: npt.NDArray[np.uint32], b: npt.NDArray[np.uint32]) -> float:
    """Share of the smaller set found in the larger one (1.0 when one is inside the other).

    Both are sorted arrays of distinct hashes: one binary search per element of the smaller,
    instead of hashing every element of both into sets.
    """
    if not a.size or not b.size:
        return 0.0
    small, large = (a, b) if a.size <= b.size else (b, a)
    return int(np.count_nonzero(found_in(small, large))) / small.size


@dataclass(frozen=True)
class SentenceWords:
    """An article's sentence words as flat arrays sorted by word, for pairwise alignment."""

    words: npt.NDArray[np.uint32]  # every sentence's content-word hashes, sorted
    sentence: npt.NDArray[np.int64]  # the sentence each of those words is in
    lengths: npt.NDArray[np.int64]  # words per sentence


def sentence_words(fp: Fingerprint) -> SentenceWords:
    lengths = np.fromiter((len(s) for s in fp.sentences), dtype=np.int64, count=len(fp.sentences))
    flat = np.frombuffer(b"".join(s.tobytes() for s in fp.sentences), dtype=np.uint32)
    owner = np.repeat(np.arange(len(fp.sentences), dtype=np.int64), lengths)
    order = np.argsort(flat, kind="stable")
    return SentenceWords(flat[order], owner[order], lengths)


def aligned_sentences(a: Fingerprint, b: Fingerprint, *, threshold: float = 0.5) -> float:
    """Share of the shorter article's sentences that have a counterpart in the other one.

    A counterpart shares at least ``threshold`` of the sentence's content words — which survives
    synonym spinning and light edits that break word n-grams. Counted with arrays (every pair
    of sentences sharing a word at once): this runs for every candidate that shares some text.
    """
    short, long_ = (a, b) if len(a.sentences) <= len(b.sentences) else (b, a)
    if not short.sentences or not long_.sentences:
        return 0.0
    mine, theirs = sentence_words(short), sentence_words(long_)
    first = np.searchsorted(theirs.words, mine.words, side="left")
    matches = np.searchsorted(theirs.words, mine.words, side="right") - first
    total = int(matches.sum())
    if total == 0:
        return 0.0
    # Each of my words against each occurrence of it in the other article.
    starts = np.repeat(first - (np.cumsum(matches) - matches), matches)
    where = starts + np.arange(total)
    rows = np.repeat(mine.sentence, matches)
    columns = theirs.sentence[where]
    width = len(theirs.lengths)
    shared = np.bincount(rows * width + columns, minlength=len(mine.lengths) * width).reshape(
        len(mine.lengths), width
    )
    share = shared / np.minimum(mine.lengths[:, None], theirs.lengths[None, :])
    aligned = int(np.count_nonzero(share.max(axis=1) >= threshold))
    return aligned / len(short.sentences)
