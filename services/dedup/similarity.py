"""Compare two articles: the cheap signals that tell a copy or a rewrite from an independent report.

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

    def narrative(self) -> set[int]:
        """The shingles outside quotations: what the outlet wrote rather than whom it quoted.

        Independent reports of one event quote the same remarks; copies and rewrites share the
        reporting around them.
        """
        return set(self.shingles).difference(self.quotes)


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


def fingerprint(title: str, text: str) -> Fingerprint:
    """The fingerprint of an article; the title is read as the first line unless the text
    already opens with it."""
    body = normalize(
        f"{title}\n{text}" if title and title not in text[: len(title) + 200] else text
    )
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


def containment(a: array[int], b: array[int]) -> float:
    """Share of the smaller set found in the larger one (1.0 when one is inside the other)."""
    if not a or not b:
        return 0.0
    common = len(set(a).intersection(b))
    return common / min(len(a), len(b))


def overlap(a: array[int], b: array[int]) -> int:
    return len(set(a).intersection(b))


def aligned_sentences(a: Fingerprint, b: Fingerprint, *, threshold: float = 0.5) -> float:
    """Share of the shorter article's sentences that have a counterpart in the other one.

    A counterpart shares at least ``threshold`` of the sentence's content words — which survives
    synonym spinning and light edits that break word n-grams.
    """
    short, long_ = (a, b) if len(a.sentences) <= len(b.sentences) else (b, a)
    if not short.sentences or not long_.sentences:
        return 0.0
    where: dict[int, list[int]] = {}
    for index, sentence in enumerate(long_.sentences):
        for word in sentence:
            where.setdefault(word, []).append(index)
    aligned = 0
    for sentence in short.sentences:
        counts: dict[int, int] = {}
        for word in sentence:
            for index in where.get(word, ()):
                counts[index] = counts.get(index, 0) + 1
        if not counts:
            continue
        best = max(
            count / min(len(sentence), len(long_.sentences[index]))
            for index, count in counts.items()
        )
        if best >= threshold:
            aligned += 1
    return aligned / len(short.sentences)
