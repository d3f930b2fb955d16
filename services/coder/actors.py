"""Actors as data: countries (pycountry plus actors/countries.yaml), people, IGOs and role nouns.

The dictionaries are YAML files under ``actors/``; this module only loads them and turns the
noun phrase a parser points at into an :class:`Actor` (country, role, CAMEO actor code).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

import pycountry
import yaml
from spacy.lang.en.stop_words import STOP_WORDS
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span, Token
from spacy.vocab import Vocab

from services.common.errors import WirewatchError

logger = logging.getLogger(__name__)

ACTORS_DIR = Path(__file__).parent / "actors"

# Kinds of dictionary entries, strongest first when several fall in one noun phrase.
PERSON, IGO, GROUP, METONYM, COUNTRY = "person", "igo", "group", "metonym", "country"
KIND_RANK = {PERSON: 0, IGO: 1, GROUP: 1, METONYM: 2, COUNTRY: 3}


class ActorDataError(WirewatchError):
    """An actor dictionary is malformed."""


@dataclass(frozen=True)
class Actor:
    """A coded actor; ``key`` is what identifies it for aggregation (country or IGO)."""

    name: str
    country: str | None
    role: str
    cameo_code: str
    entity: str | None = None
    is_person: bool = False

    @property
    def key(self) -> str:
        # A stateless organisation (IGO, transnational group) is its own actor, not a country.
        if self.role == "IGO" or (self.country is None and self.entity is not None):
            return self.cameo_code
        return self.country or f"---{self.role}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "country": self.country,
            "role": self.role,
            "cameo_code": self.cameo_code,
            "entity": self.entity,
        }


@dataclass(frozen=True)
class Term:
    """A period in office; ``end`` None means current."""

    start: date
    end: date | None

    def covers(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day < self.end)


@dataclass(frozen=True)
class Entry:
    """One dictionary entry a surface form points to."""

    kind: str
    country: str | None
    role: str | None
    entity: str | None = None
    code: str | None = None
    terms: tuple[Term, ...] = ()


def _load(name: str) -> dict[str, Any]:
    path = ACTORS_DIR / name
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ActorDataError(f"{path}: expected a mapping")
    return data


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


_WORD = re.compile(r"\w+")


def _key_word(form: str) -> str:
    """The form's rarest-looking run of word characters: the longest that is not a stop word
    ("eu" of "the EU")."""
    return max(_WORD.findall(form.lower()), key=lambda w: (w not in STOP_WORDS, len(w)), default="")


class ActorDictionary:
    """Surface forms -> entries, and role nouns -> CAMEO role codes, matched on spaCy docs."""

    def __init__(self, vocab: Vocab) -> None:
        self.forms: dict[str, list[Entry]] = {}
        self.roles: dict[str, str] = {}
        self._add_countries()
        self._add_people()
        self._add_igos()
        self._add_groups()
        roles = _load("roles.yaml")
        for role, words in roles["roles"].items():
            for word in words:
                self.roles.setdefault(str(word).lower(), str(role))
        self.countryless_roles = frozenset(str(r) for r in roles["countryless"])
        self.stationed_roles = frozenset(str(r) for r in roles["stationed"])
        self.institutions = frozenset(str(w).lower() for w in roles["institutions"])
        self.owned_nouns = frozenset(str(w).lower() for w in roles["not_actors"]["owned"])
        self.authorless_nouns = frozenset(str(w).lower() for w in roles["not_actors"]["none"])
        self.authoring_verbs = frozenset(
            str(w).lower() for w in roles["not_actors"]["authoring_verbs"]
        )
        matching = _load("matching.yaml")
        self.case_sensitive = frozenset(str(w).lower() for w in matching["case_sensitive"])
        self.affiliations = frozenset(str(w).lower() for w in matching["affiliations"])
        # Forms also matched in any case ("president obama", "tunisian rioters"), keyed by
        # their lowercase: those that are neither acronyms ("US" is also "us") nor ordinary
        # words ("rice", "turkey").
        self.any_case: dict[str, list[Entry]] = {}
        for form, entries in self.forms.items():
            if self._any_case(form):
                self.any_case.setdefault(form.lower(), []).extend(entries)
        self.names = PhraseMatcher(vocab, attr="ORTH")
        self.names_any_case = PhraseMatcher(vocab, attr="LOWER")
        self.role_words = PhraseMatcher(vocab, attr="LOWER")

    def may_name_an_actor(self, text: str) -> bool:
        """False only when no form can match in ``text``: a text that holds a form holds its
        key word, whatever the case (a cheap test before tokenising)."""
        return not self.key_words.isdisjoint(_WORD.findall(text.lower()))

    def _any_case(self, form: str) -> bool:
        return (
            len(form) >= 4
            and any(c.islower() for c in form)
            and form.lower() not in self.case_sensitive
        )

    def compile(self, make_doc: Any) -> None:
        """Build the matchers with the pipeline's own tokenizer (so "U.S." splits the same)."""
        self.key_words = frozenset(_key_word(form) for form in self.forms)
        for form in self.forms:
            self.names.add(form, [make_doc(form)])
        for lowered in self.any_case:
            self.names_any_case.add(lowered, [make_doc(lowered)])
        for word in self.roles:
            self.role_words.add(word, [make_doc(word)])

    def _add(self, form: str, entry: Entry) -> None:
        form = form.strip()
        if form:
            self.forms.setdefault(form, []).append(entry)

    def _add_countries(self) -> None:
        extra = _load("countries.yaml")["countries"]
        for country in pycountry.countries:
            alpha3 = country.alpha_3
            names = {country.name, getattr(country, "common_name", country.name)}
            for name in names:
                self._add(name, Entry(COUNTRY, alpha3, None))
        for alpha3, data in extra.items():
            for name in data.get("names", []):
                self._add(name, Entry(COUNTRY, alpha3, None))
            for name in data.get("demonyms", []):
                self._add(name, Entry(COUNTRY, alpha3, None))
            for name in data.get("capitals", []):
                self._add(name, Entry(METONYM, alpha3, "GOV"))
            for name, role in (data.get("metonyms") or {}).items():
                self._add(name, Entry(METONYM, alpha3, str(role)))
                self._add(f"the {name}", Entry(METONYM, alpha3, str(role)))
        for alpha3, places in _load("places.yaml")["places"].items():
            for name in places:
                self._add(name, Entry(COUNTRY, str(alpha3), None))

    def _add_people(self) -> None:
        for person in _load("people.yaml")["people"]:
            terms = tuple(
                Term(_as_date(t["from"]), _as_date(t["to"]) if t.get("to") else None)
                for t in person.get("terms", [])
            )
            entry = Entry(
                PERSON,
                person.get("country"),
                person.get("role", "GOV"),
                entity=person["entity"],
                code=person.get("code"),
                terms=terms,
            )
            for name in person["names"]:
                self._add(name, entry)

    def _add_igos(self) -> None:
        for igo in _load("igos.yaml")["igos"]:
            entry = Entry(IGO, None, "IGO", entity=igo["entity"], code=igo["code"])
            for name in igo["names"]:
                self._add(name, entry)
                self._add(f"the {name}", entry)

    def _add_groups(self) -> None:
        for group in _load("groups.yaml")["groups"]:
            entry = Entry(
                GROUP,
                group.get("country"),
                str(group["role"]),
                entity=group["entity"],
                code=group["code"],
            )
            for name in group["names"]:
                self._add(name, entry)
                self._add(f"the {name}", entry)

    def country_of(self, text: str) -> str | None:
        """The country a place name stands for, if the dictionaries know it."""
        bare = text[4:] if text.lower().startswith("the ") else text
        for name in (text, bare):
            for entry in self.forms.get(name) or self.any_case.get(name.lower(), []):
                if entry.country:
                    return entry.country
        return None


@dataclass(frozen=True)
class Match:
    start: int
    end: int
    entries: tuple[Entry, ...]


class DocActors:
    """The dictionary matches of one parsed document, and actor resolution over them."""

    def __init__(
        self, doc: Doc, dictionary: ActorDictionary, *, on: date, home: str | None = None
    ) -> None:
        self.doc = doc
        self.dictionary = dictionary
        self.on = on
        # The country the article is about, if one is: bare institutions are its own.
        self.home = home
        strings = doc.vocab.strings
        spans = [
            Match(start, end, tuple(dictionary.forms[strings[match_id]]))
            for match_id, start, end in dictionary.names(doc)
        ]
        spans += [
            Match(start, end, tuple(dictionary.any_case[strings[match_id]]))
            for match_id, start, end in dictionary.names_any_case(doc)
        ]
        self.matches = [m for m in _longest(spans) if not self._affiliation(m)]
        self.role_at: dict[int, str] = {}
        for match_id, start, end in sorted(dictionary.role_words(doc), key=lambda m: m[1] - m[2]):
            role = dictionary.roles[strings[match_id]]
            for i in range(start, end):
                self.role_at.setdefault(i, role)

    def _affiliation(self, match: Match) -> bool:
        """ "Iran-backed Houthis", "a UK-based group": the name qualifies another actor."""
        doc = self.doc
        return (
            match.end + 1 < len(doc)
            and doc[match.end].text == "-"
            and doc[match.end + 1].lower_ in self.dictionary.affiliations
        )

    @cached_property
    def token_match(self) -> dict[int, Match]:
        return {i: m for m in self.matches for i in range(m.start, m.end)}

    def country_at(self, index: int) -> str | None:
        """The country a country name, demonym or capital at token ``index`` stands for."""
        match = self.token_match.get(index)
        if match is None:
            return None
        entry = match.entries[0]
        return entry.country if entry.kind in (COUNTRY, METONYM) else None

    def count_in(self, span: Span) -> int:
        return sum(1 for m in self.matches if span.start <= m.start < span.end)

    def actor_of(self, head: Token) -> Actor | None:
        """The actor the noun phrase headed by ``head`` names, or None."""
        word = head.lower_
        thing = head.i not in self.token_match and (
            word in self.dictionary.owned_nouns
            or head.lemma_.lower() in self.dictionary.owned_nouns
        )
        if head.i not in self.token_match and word in self.dictionary.authorless_nouns:
            return None
        tokens = _phrase_tokens(head)
        found = [m for m in self.matches if all(i in tokens for i in range(m.start, m.end))]
        if thing:
            # "the US proposal", "Russia's attack": the owner or author stands for the thing.
            if not found:
                return self._author(head)
            owner = min(found, key=lambda m: (KIND_RANK[m.entries[0].kind], m.start))
            return self.actor_of(self.doc[owner.start : owner.end].root)
        role = self._role(head, tokens)
        if not found and role is not None:
            # "a court in Guyana", "dissidents from Egypt": a bare role takes its country from
            # where it sits or comes from.
            stationed = role in self.dictionary.stationed_roles
            tokens = _phrase_tokens(head, preps=_ORIGIN_PREPS if stationed else _PLACE_PREPS)
            found = [m for m in self.matches if all(i in tokens for i in range(m.start, m.end))]
        if not found:
            if role in self.dictionary.countryless_roles:
                return Actor(head.text, None, role, f"---{role}")
            if role is not None and self._bare_institution(head):
                return Actor(head.text, self.home, role, f"{self.home or '---'}{role}")
            return None
        best = min(found, key=lambda m: (KIND_RANK[m.entries[0].kind], abs(m.end - 1 - head.i)))
        entry = best.entries[0]
        surface = self.doc[best.start : best.end].text
        if entry.kind == PERSON:
            active = not entry.terms or any(t.covers(self.on) for t in entry.terms)
            person_role = (entry.role or "GOV") if active else "ELI"
            code = entry.code or f"{entry.country or '---'}{person_role}"
            if entry.kind == PERSON and entry.role == "IGO":
                person_role = "IGO"
            return Actor(surface, entry.country, person_role, code, entry.entity, is_person=True)
        if entry.kind == IGO:
            return Actor(surface, None, "IGO", entry.code or "IGO", entry.entity)
        if entry.kind == GROUP:
            group_role = entry.role or "REB"
            group_code = entry.code or f"{entry.country or '---'}{group_role}"
            return Actor(surface, entry.country, group_role, group_code, entry.entity)
        country = entry.country
        if entry.kind == METONYM and role is None:
            role = entry.role
        name = self.doc[min(best.start, head.i) : max(best.end, head.i + 1)].text
        if role is None:
            return Actor(name, country, "GOV", country or "---")
        return Actor(name, country, role, f"{country or '---'}{role}")

    def _author(self, thing: Token) -> Actor | None:
        """ "a report *released by X*", "... *released in Kigali*": who put out an ownerless
        thing, from a participle of authorship on it (``authoring_verbs`` in roles.yaml)."""
        for verb in thing.children:
            if verb.dep_ != "acl" or verb.tag_ != "VBN":
                continue
            if verb.lemma_.lower() not in self.dictionary.authoring_verbs:
                continue
            for child in verb.children:
                if child.dep_ == "agent" or (
                    child.dep_ == "prep" and child.lower_ in ("in", "from")
                ):
                    for noun in child.children:
                        if noun.dep_ == "pobj":
                            author = self.actor_of(noun)
                            if author is not None:
                                return author
        return None

    def _bare_institution(self, head: Token) -> bool:
        """ "the government", "Congress", "government forces": an institution with nothing
        that says whose (no modifier other than a determiner)."""
        words = [t for t in head.subtree if t.i <= head.i and t.dep_ != "det"]
        phrase = " ".join(t.lower_ for t in words)
        return phrase in self.dictionary.institutions

    def country_counts(self) -> dict[str, int]:
        """How often each country is named (country names, capitals, metonyms, people)."""
        counts: dict[str, int] = {}
        for match in self.matches:
            entry = match.entries[0]
            if entry.country and entry.kind != GROUP:
                counts[entry.country] = counts.get(entry.country, 0) + 1
        return counts

    def _role(self, head: Token, tokens: set[int]) -> str | None:
        if head.i in self.role_at:
            return self.role_at[head.i]
        candidates = sorted((i for i in tokens if i in self.role_at), key=lambda i: abs(i - head.i))
        return self.role_at[candidates[0]] if candidates else None


def _longest(matches: list[Match]) -> list[Match]:
    """Keep the longest of overlapping matches ("South Korea" over "Korea")."""
    kept: list[Match] = []
    taken: set[int] = set()
    for m in sorted(matches, key=lambda m: (m.start - m.end, m.start)):
        if any(i in taken for i in range(m.start, m.end)):
            continue
        kept.append(m)
        taken.update(range(m.start, m.end))
    return sorted(kept, key=lambda m: m.start)


# Dependents that leave the noun phrase's own reference: "the envoy *who met Putin*",
# "officials *in Moscow*", "Trump *and Putin*" (conjuncts are actors of their own).
_CUT_DEPS = frozenset({"relcl", "acl", "conj", "cc", "advcl", "ccomp", "punct"})
_KEPT_PREPS = frozenset({"of", "for"})
_PLACE_PREPS = frozenset({"of", "for", "in", "from"})
_ORIGIN_PREPS = frozenset({"of", "for", "from"})


def _phrase_tokens(head: Token, preps: frozenset[str] = _KEPT_PREPS) -> set[int]:
    kept: set[int] = {head.i}
    stack = [head]
    while stack:
        token = stack.pop()
        for child in token.children:
            if child.dep_ in _CUT_DEPS:
                continue
            if child.dep_ == "prep" and child.lower_ not in preps:
                continue
            kept.add(child.i)
            stack.append(child)
    return kept
