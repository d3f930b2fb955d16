"""Two of spaCy's rule components with their answers remembered, so they cost a lookup a token.

Both are pure functions of a few attributes of one token (and the model's tables), yet spaCy
works each answer out again for every token: together they cost the coder more than the parser.
Their output is the same token attributes as spaCy's own (a unit test compares them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spacy.language import Language
from spacy.matcher import Matcher
from spacy.pipeline import AttributeRuler
from spacy.tokens import Doc, Token
from spacy.tokens._retokenize import set_token_attrs

# Entries per memo (each a few hundred bytes; a pipeline has both): a day of news stays within
# it, and a full memo starts over rather than grow.
MEMO_LIMIT = 50_000

# What the attribute ruler's one-token patterns look at (see ``MemoAttributeRuler``).
TokenKey = tuple[int, int, int, bool]


class MemoLemmatize:
    """spaCy's rule lemmatizer, remembered by (word, part of speech, morphology).

    The lemma is a function of those three, but spaCy caches it only for inflected forms: every
    base form (most nouns and adjectives of a sentence) went through its morphology checks again,
    which made the lemmatizer cost more than the parser. The memo is bounded; when full it
    starts over.
    """

    def __init__(self, lemmatize: Callable[[Token], list[str]], *, limit: int = MEMO_LIMIT) -> None:
        self.lemmatize = lemmatize
        self.limit = limit
        self.memo: dict[tuple[int, int, int], list[str]] = {}

    def __call__(self, token: Token) -> list[str]:
        key = (token.orth, token.pos, token.morph.key)  # type: ignore[attr-defined]
        lemmas = self.memo.get(key)
        if lemmas is None:
            if len(self.memo) >= self.limit:
                self.memo.clear()
            lemmas = self.memo[key] = self.lemmatize(token)
        return lemmas


class MemoAttributeRuler:
    """spaCy's attribute ruler (tag → part of speech and morphology, plus exceptions), with what
    its one-token rules do to a token remembered by the token's tag, lower-case form,
    dependency label and whether it is a space: all those rules look at.

    spaCy runs a Matcher over every token and applies each match through a new Span. Here a
    doc whose tokens are all known gets the remembered attributes, applied in the ruler's order;
    a doc with an unknown token goes through the ruler itself (and teaches the memo), and so
    does a doc that one of its multi-token rules ("gon na", "let 's") matches.
    """

    def __init__(self, ruler: AttributeRuler, *, limit: int = MEMO_LIMIT) -> None:
        self.ruler = ruler
        self.limit = limit
        self.memo: dict[TokenKey, dict[Any, Any]] = {}
        # Tokens share a handful of outcomes (about 120): one object each, however many keys.
        self.outcomes: dict[tuple[Any, ...], dict[Any, Any]] = {}
        self.multi_token = Matcher(ruler.vocab)
        for attr_id in range(len(ruler.attrs)):
            key = str(attr_id)
            _, patterns = ruler.matcher.get(ruler.vocab.strings[key])
            if any(len(pattern) > 1 for pattern in patterns):
                self.multi_token.add(key, patterns)

    @staticmethod
    def token_key(token: Token) -> TokenKey:
        return (token.tag, token.lower, token.dep, token.is_space)

    def __call__(self, doc: Doc) -> Doc:
        keys = [self.token_key(token) for token in doc]
        outcomes = [self.memo.get(key) for key in keys]
        multi_token_rules_apply = bool(self.multi_token(doc))
        if multi_token_rules_apply or None in outcomes:
            return self._through_the_ruler(doc, keys, learn=not multi_token_rules_apply)
        for token, attrs in zip(doc, outcomes, strict=True):
            if attrs:
                set_token_attrs(token, attrs)
        return doc

    def _through_the_ruler(self, doc: Doc, keys: list[TokenKey], *, learn: bool) -> Doc:
        matches = self.ruler.match(doc)
        if learn:  # every match is a one-token rule's, on the token it starts at
            if len(self.memo) + len(keys) > self.limit:
                self.memo.clear()
                self.outcomes.clear()
            learned: dict[int, dict[Any, Any]] = {i: {} for i in range(len(doc))}
            for attr_id, _, start, _ in matches:  # sorted by attr_id: later rules win
                learned[start].update(self.ruler.attrs[attr_id])
            for i, attrs in learned.items():
                self.memo[keys[i]] = self.outcomes.setdefault(tuple(attrs.items()), attrs)
        self.ruler.set_annotations(doc, matches)  # type: ignore[no-untyped-call]
        return doc


def remember_rule_components(nlp: Language) -> Language:
    """Swap the lemmatizer's and the attribute ruler's work for remembered answers."""
    lemmatizer = nlp.get_pipe("lemmatizer")
    lemmatizer.lemmatize = MemoLemmatize(lemmatizer.lemmatize)  # type: ignore[attr-defined]
    ruler = nlp.get_pipe("attribute_ruler")
    memo = MemoAttributeRuler(ruler)  # type: ignore[arg-type]
    # Same name and place in the pipeline. spaCy builds components only from registered
    # factories and config, and this one wraps a loaded component: it goes into spaCy's list of
    # (name, component) pairs directly.
    at = nlp.component_names.index("attribute_ruler")
    nlp._components[at] = ("attribute_ruler", memo)  # noqa: SLF001
    return nlp
