"""How far a mention can be trusted, from how it was found: the share of mentions found the same
way that a gold standard agrees with, as fitted in ``data/confidence.yaml``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from services.common.errors import WirewatchError

TABLE = Path(__file__).parent / "data" / "confidence.yaml"


class ConfidenceDataError(WirewatchError):
    """The confidence table is malformed."""


def basis_of(path: str, *, direct: bool, intent: bool, pronoun: bool) -> str:
    """The cell of the confidence table a mention falls in, e.g. ``verb/direct/act/named``.

    ``path`` is the rule that found it (``verb``, ``implied``, ``meeting_noun``, ``event_noun``,
    ``criticism``); ``direct`` whether the target is the verb's own object; ``intent`` whether
    the act is announced rather than done; ``pronoun`` whether the source is a resolved pronoun.
    """
    return "/".join(
        (
            path,
            "direct" if direct else "indirect",
            "intent" if intent else "act",
            "pronoun" if pronoun else "named",
        )
    )


@lru_cache(maxsize=1)
def _table() -> tuple[float, dict[str, float]]:
    data = yaml.safe_load(TABLE.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("cells"), dict):
        raise ConfidenceDataError(f"{TABLE}: expected a mapping with 'default' and 'cells'")
    return float(data["default"]), {str(k): float(v) for k, v in data["cells"].items()}


def confidence_of(basis: str) -> float:
    """The fitted confidence of a cell; a cell the fit never saw takes the overall share."""
    default, cells = _table()
    return cells.get(basis, default)
