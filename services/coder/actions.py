"""Actions as data: the CAMEO codebook (label, Goldstein, PLOVER, quad class) and the verb lexicon.

``data/cameo.yaml`` is generated from third-party tables (origin in its header);
``data/verbs.yaml`` maps verb lemmas, and nouns carried by light verbs, to CAMEO codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from spacy.tokens import Token

from services.common.errors import WirewatchError

DATA_DIR = Path(__file__).parent / "data"


class ActionDataError(WirewatchError):
    """The action lexicon names a CAMEO code the codebook does not know."""


@dataclass(frozen=True)
class Action:
    cameo_code: str
    label: str
    plover: str
    quad_class: int
    goldstein: float

    @property
    def root(self) -> str:
        return self.cameo_code[:2]

    def to_dict(self) -> dict[str, Any]:
        return {
            "cameo_code": self.cameo_code,
            "label": self.label,
            "plover": self.plover,
            "quad_class": self.quad_class,
            "goldstein": self.goldstein,
        }


@dataclass(frozen=True)
class LexiconEntry:
    """What a verb or noun codes to; ``intent`` when announced rather than done."""

    code: str
    intent: str | None = None
    preps: tuple[str, ...] = ()
    weak: bool = False
    needs_complement: bool = False


def _read(name: str) -> dict[str, Any]:
    data = yaml.safe_load((DATA_DIR / name).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ActionDataError(f"{name}: expected a mapping")
    return data


class Codebook:
    """CAMEO codes to :class:`Action` values."""

    def __init__(self) -> None:
        self.codes: dict[str, dict[str, Any]] = _read("cameo.yaml")["codes"]

    def action(self, code: str) -> Action:
        try:
            row = self.codes[code]
        except KeyError:
            raise ActionDataError(f"unknown CAMEO code {code!r}") from None
        return Action(
            cameo_code=code,
            label=str(row["label"]),
            plover=str(row["plover"]),
            quad_class=int(row["quad_class"]),
            goldstein=float(row["goldstein"]),
        )


def _entries(table: dict[str, Any]) -> dict[str, LexiconEntry]:
    return {
        str(word).lower(): LexiconEntry(
            code=str(spec["code"]),
            intent=str(spec["intent"]) if spec.get("intent") else None,
            preps=tuple(spec.get("prep") or ()),
            weak=bool(spec.get("weak", False)),
            needs_complement=bool(spec.get("needs_complement", False)),
        )
        for word, spec in table.items()
    }


@lru_cache(maxsize=1)
def families() -> dict[str, str]:
    """Code or root -> aggregation family (``families`` in verbs.yaml)."""
    return {str(k): str(v) for k, v in _read("verbs.yaml")["families"].items()}


def family_of(code: str) -> str:
    table = families()
    return table.get(code) or table.get(code[:2]) or code[:2]


class Lexicon:
    """Verb and noun lemmas to CAMEO codes, plus the light and intent verbs."""

    def code_for(self, entry: LexiconEntry, *, intent: bool) -> str:
        """The entry's code, or its intent code when the action is announced."""
        if not intent:
            return entry.code
        return entry.intent or self.intent_by_root.get(entry.code[:2]) or entry.code

    def lemma(self, token: Token) -> str:
        """The verb's lemma, where the model's lemmatizer is known to be wrong corrected."""
        lemma = token.lemma_.lower()
        return self.lemma_corrections.get(lemma, lemma)

    def __init__(self, codebook: Codebook) -> None:
        data = _read("verbs.yaml")
        self.verbs = _entries(data["verbs"])
        self.nouns = _entries(data["nouns"])
        self.light_verbs = frozenset(data["light_verbs"])
        self.intent_verbs = frozenset(data["intent_verbs"])
        self.scope_roots = frozenset(str(r) for r in data["scope_roots"])
        self.intent_by_root = {str(k): str(v) for k, v in data["intent_by_root"].items()}
        self.demand_modals = frozenset(data["demand_modals"])
        self.demand_code = str(data["demand_code"])
        self.families = {str(k): str(v) for k, v in data["families"].items()}
        self.reporting_verbs = frozenset(data["reporting_verbs"])
        self.negated_will_verbs = frozenset(data["negated_will_verbs"])
        self.criticism_code = str(data["criticism_code"])
        self.symmetric_codes = frozenset(str(c) for c in data["symmetric_codes"])
        self.converse_codes = {str(k): str(v) for k, v in data["converse_codes"].items()}
        self.armed_target_codes = {str(k): str(v) for k, v in data["armed_target_codes"].items()}
        self.armed_roles = frozenset(str(r) for r in data["armed_roles"])
        self.place_target_roots = frozenset(str(r) for r in data["place_target_roots"])
        self.request_verbs = frozenset(data["request_verbs"])
        self.appeal_code = str(data["appeal_code"])
        self.receiving_verbs = frozenset(data["receiving_verbs"])
        self.refusal_verbs = frozenset(data["refusal_verbs"])
        self.promising_verbs = frozenset(data["promising_verbs"])
        self.reported_hostile_roots = frozenset(str(r) for r in data["reported_hostile_roots"])
        self.accusation_code = str(data["accusation_code"])
        self.claim_code = str(data["claim_code"])
        self.lemma_corrections = {
            str(k): str(v) for k, v in (data.get("lemma_corrections") or {}).items()
        }
        named = [
            *self.intent_by_root.values(),
            self.demand_code,
            self.criticism_code,
            self.accusation_code,
            self.claim_code,
            self.appeal_code,
        ]
        for entry in (*self.verbs.values(), *self.nouns.values()):
            named.extend(c for c in (entry.code, entry.intent) if c is not None)
        for code in named:
            codebook.action(code)
