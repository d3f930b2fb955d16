"""Fit the coder's confidence table (``services/coder/data/confidence.yaml``).

Method: code every sentence of the PETR2 GSR (``petr2_gsr_validation.jsonl``), group the mentions
by how they were found (``Mention.basis``: the rule, whether the target is the verb's own object,
act or announced intent, named or pronoun source) and give each group the share of its mentions
that are right at root level (source, target, CAMEO root in the gold; actors by country), shrunk
toward the overall share with a weight of ``PRIOR_WEIGHT`` mentions, so that a group seen once
is not trusted as 0 or 1. ``bench-coder-quality`` checks the calibration out of sample: each
record's confidences come from a table fitted on the other folds of ``FOLDS`` (records split by
their position), and on the PLOVER GSR, which the fit never reads.

``python -m bench.fit_confidence > services/coder/data/confidence.yaml`` writes the table.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from datetime import date
from typing import Any

from bench.coder_quality import actor_norm, load, record_date
from services.coder.coding import ALL_ROOTS, Coder, load_pipeline

PRIOR_WEIGHT = 4
FOLDS = 5

# (record index, basis, right at root level), one a mention
Observation = tuple[int, str, bool]


def observe(coder: Coder, records: Sequence[dict[str, Any]]) -> list[Observation]:
    found: list[Observation] = []
    for index, record in enumerate(records):
        gold = {
            (actor_norm(e["source_actor"]), actor_norm(e["target_actor"]), e["cameo_code"][:2])
            for e in record["expected"]
        }
        for m in coder.code_sentence(record["sentence"], record_date(record)):
            key = (actor_norm(m.source.cameo_code), actor_norm(m.target.cameo_code), m.action.root)
            found.append((index, m.basis, key in gold))
    return found


def fit(observations: Sequence[Observation]) -> tuple[float, dict[str, float], Counter[str]]:
    """(overall share, shrunk share per basis, mentions per basis)."""
    right: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for _, basis, ok in observations:
        seen[basis] += 1
        right[basis] += ok
    overall = sum(right.values()) / max(1, sum(seen.values()))
    cells = {
        basis: (right[basis] + PRIOR_WEIGHT * overall) / (seen[basis] + PRIOR_WEIGHT)
        for basis in seen
    }
    return overall, cells, seen


def cross_fitted(observations: Sequence[Observation]) -> list[tuple[float, bool]]:
    """(confidence from the other folds' table, right) for each mention."""
    scored: list[tuple[float, bool]] = []
    for fold in range(FOLDS):
        rest = [o for o in observations if o[0] % FOLDS != fold]
        overall, cells, _ = fit(rest)
        scored += [
            (round(cells.get(basis, overall), 2), ok)
            for index, basis, ok in observations
            if index % FOLDS == fold
        ]
    return scored


def main() -> int:
    coder = Coder(load_pipeline(), scope_roots=ALL_ROOTS)
    observations = observe(coder, load("petr2_gsr_validation.jsonl"))
    overall, cells, seen = fit(observations)
    right = Counter(basis for _, basis, ok in observations if ok)
    lines = [
        "# Confidence of a mention by how it was found (services/coder/confidence.py basis_of).",
        f"# Generated {date.today().isoformat()} by `python -m bench.fit_confidence`, whose",
        "# docstring states the method: on the PETR2 GSR, the share of each group's mentions",
        "# right at root level, shrunk toward the overall share with a weight of",
        f"# {PRIOR_WEIGHT} mentions. Comments: right / seen.",
        f"default: {overall:.2f}",
        "cells:",
    ]
    for basis in sorted(seen):
        lines.append(f"  {basis}: {cells[basis]:.2f}  # {right[basis]} / {seen[basis]}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
