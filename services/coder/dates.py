"""Relative and absolute dates in a sentence, resolved against the article's publication date.

News text dates events relative to publication ("on Tuesday", "last week", "tomorrow"); a past
action looks back from the publication date, an announced one looks forward.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from datetime import date, timedelta

from spacy.tokens import Token

WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
MONTHS["sept"] = 9

_RELATIVE_DAYS = {"today": 0, "tonight": 0, "yesterday": -1, "tomorrow": 1}
_YEAR = re.compile(r"^(1[89]|20)\d\d$")


def resolve_date(words: Iterable[str], published: date, *, forward: bool) -> date | None:
    """The date a short expression ("on Tuesday", "last week", "June 28, 2019") denotes.

    ``forward`` picks the next matching weekday (announced actions), otherwise the last one.
    """
    lowered = [w.lower().strip(".,") for w in words]
    for word in lowered:
        if word in _RELATIVE_DAYS:
            return published + timedelta(days=_RELATIVE_DAYS[word])
    absolute = _absolute(lowered, published)
    if absolute is not None:
        return absolute
    for i, word in enumerate(lowered):
        if word in WEEKDAYS:
            before = lowered[i - 1] if i else ""
            step_forward = forward if before not in ("last", "past") else False
            if before == "next":
                step_forward = True
            return _weekday(published, WEEKDAYS[word], forward=step_forward)
    if "week" in lowered or "weekend" in lowered:
        if "last" in lowered or "previous" in lowered or "past" in lowered:
            return published - timedelta(days=7)
        if "next" in lowered or "coming" in lowered:
            return published + timedelta(days=7)
        if "weekend" in lowered:
            return _weekday(published, 5, forward=forward)
    return None


def _weekday(published: date, weekday: int, *, forward: bool) -> date:
    if forward:
        return published + timedelta(days=(weekday - published.weekday()) % 7)
    return published - timedelta(days=(published.weekday() - weekday) % 7)


def _absolute(words: list[str], published: date) -> date | None:
    for i, word in enumerate(words):
        month = MONTHS.get(word)
        if month is None or word == "may" and (i + 1 >= len(words)):
            continue
        day = None
        year = published.year
        for other in words[max(0, i - 2) : i + 4]:
            # isdecimal, not isdigit: "²" is a digit that int() refuses.
            if other.isdecimal() and 1 <= int(other) <= 31 and day is None:
                day = int(other)
            elif _YEAR.match(other):
                year = int(other)
        if day is None:
            continue
        try:
            return date(year, month, day)
        except ValueError:
            return None
    return None


def date_phrases(tokens: Iterable[Token]) -> list[list[Token]]:
    """Runs of DATE-entity tokens, plus bare weekday names the tagger left unlabelled."""
    phrases: list[list[Token]] = []
    current: list[Token] = []
    for token in tokens:
        if token.ent_type_ == "DATE" or token.lower_ in WEEKDAYS or token.lower_ in _RELATIVE_DAYS:
            if current and token.i != current[-1].i + 1:
                phrases.append(current)
                current = []
            current.append(token)
        elif current:
            phrases.append(current)
            current = []
    if current:
        phrases.append(current)
    return phrases
