"""Clause structure the coder reads past the parse: which clauses say who is acted upon, and
which verbs the small English model tags as finite where the sentence makes them participles.

These are rules about English syntax, not about any sentence: each names the construction it
handles and why the parse alone would code it wrongly.
"""

from __future__ import annotations

from collections.abc import Iterator

from spacy.tokens import Token

# Subordinators whose clause says when, if, why or despite what something happens: its actors
# are the circumstance, not those the main verb acts on ("warned that *if foreign troops
# entered Ukraine* they would be combatants"; "*even as Trump attempted* ..., Putin urged").
# "that", "whether" and "to" introduce the content of a statement or request and stay.
CONTENT_MARKS = frozenset({"that", "whether", "to"})
# A threat's condition names whom it threatens: "threatened to strike *unless Israel
# rescinded* the annexation" threatens Israel.
CONDITION_MARKS = frozenset({"if", "unless"})

_SUBJECTS = frozenset({"nsubj", "nsubjpass", "csubj"})


def is_circumstance(clause: Token, *, threat: bool = False) -> bool:
    """Whether ``clause`` (a verb) is introduced by a subordinator other than a content one
    (or, for a threat, a condition)."""
    kept = CONTENT_MARKS | CONDITION_MARKS if threat else CONTENT_MARKS
    return clause.dep_ in ("advcl", "ccomp", "acl", "relcl") and any(
        c.dep_ == "mark" and c.lower_ not in kept for c in clause.children
    )


def outside_circumstances(root: Token, *, threat: bool = False) -> Iterator[Token]:
    """The tokens of ``root``'s subtree in sentence order, less those of any circumstantial
    clause in it."""
    left_out = {t.i for c in root.subtree if is_circumstance(c, threat=threat) for t in c.subtree}
    return (t for t in root.subtree if t.i not in left_out)


def is_reduced_relative(verb: Token) -> bool:
    """ "The civilians *imprisoned* for acting against Moscow were released by Putin": the model
    often tags such a participle as the finite verb (VBD, with the noun as its subject) and hangs
    the real predicate on it as a conjunct with no conjunction. A finite verb whose passive
    conjunct has no subject of its own and no "and"/"or" joining them is that misparse: its
    subject is what it was done to, and the passive conjunct's agent is not its doer."""
    if verb.tag_ != "VBD" or not any(c.dep_ == "nsubj" for c in verb.children):
        return False
    if any(c.dep_ == "cc" for c in verb.children):
        return False
    for conj in verb.children:
        if conj.dep_ != "conj" or conj.i < verb.i:
            continue
        passive = any(c.dep_ == "auxpass" for c in conj.children)
        own_subject = any(c.dep_ in _SUBJECTS for c in conj.children)
        joined = any(c.dep_ == "cc" for c in conj.children) or any(
            t.dep_ == "cc" or t.text in (",", ";") for t in verb.doc[verb.i + 1 : conj.i]
        )
        if passive and not own_subject and not joined:
            return True
    return False
