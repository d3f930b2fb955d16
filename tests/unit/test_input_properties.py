"""Property-based tests (hypothesis) of the functions that meet untrusted input first.

Feed bodies, links, message bytes and date phrases come from outside; for any of them the
function must return a value (an answer or a reason), never raise. The properties also state
what the answer must look like, so a test fails on a wrong answer, not only on a crash.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bench.evaldata import eval_dir
from services.coder.dates import MONTHS, WEEKDAYS, resolve_date
from services.common import schemas
from services.common.kafka import Failure, decode_value
from services.poller.feeds import canonicalize_url, feed_entry, parse_feed

REAL_FEED = (eval_dir() / "feeds" / "rss-parser/test/input/guardian.rss").read_bytes()
EXAMPLES = Path(schemas.schemas_dir()) / "examples"
DECODE_REASONS = {"empty_message", "invalid_json", "schema_invalid"}
FIRST_SEEN = datetime(2026, 11, 28, tzinfo=UTC)
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_usable(body: bytes) -> None:
    """What the poller relies on for any body: entries it can send, or a reason for nothing."""
    parsed = parse_feed(body, url="https://feeds.example.org/feed.xml")
    if not parsed.entries and not parsed.version:
        assert parsed.looks_broken and parsed.problem
    for entry in parsed.entries:
        assert entry.entry_id
        if entry.url is None:
            continue
        assert entry.url.startswith(("http://", "https://"))
        message = feed_entry(
            entry,
            feed_url="https://feeds.example.org/feed.xml",
            feed_title=parsed.title,
            first_seen=FIRST_SEEN,
        ).to_message()
        schemas.validate(schemas.FEED_ENTRY, message)


@SLOW
@given(st.binary(max_size=2048))
def test_any_bytes_parse_to_entries_or_a_reason(body: bytes) -> None:
    assert_usable(body)


@SLOW
@given(
    cut=st.integers(min_value=0, max_value=len(REAL_FEED)),
    junk=st.binary(max_size=64),
    at=st.integers(min_value=0, max_value=len(REAL_FEED)),
)
# Found in a CI run: junk inside a namespaced tag made feedparser's XML parser raise a ValueError
# that escaped it, and "[" in a link made urljoin raise ("Invalid IPv6 URL").
@example(cut=3122, junk=b"!\x85", at=57)
@example(cut=1227, junk=b"[", at=209)
def test_a_real_feed_truncated_or_spliced_with_junk_still_parses(
    cut: int, junk: bytes, at: int
) -> None:
    damaged = REAL_FEED[:at] + junk + REAL_FEED[at:]
    assert_usable(damaged[:cut])


@SLOW
@given(
    title=st.text(max_size=80),
    link=st.text(max_size=120),
    guid=st.text(max_size=60),
    published=st.text(max_size=40),
)
def test_feed_items_with_arbitrary_field_text_parse(
    title: str, link: str, guid: str, published: str
) -> None:
    def xml(text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    body = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        f"<item><title>{xml(title)}</title><link>{xml(link)}</link><guid>{xml(guid)}</guid>"
        f"<pubDate>{xml(published)}</pubDate></item></channel></rss>"
    ).encode("utf-8", errors="surrogatepass")
    assert_usable(body)


@given(st.text(max_size=200), st.one_of(st.none(), st.text(max_size=80)))
@example("https://EXAMPLE.org:443/a/b?utm_source=x&id=3#frag", None)
@example("/relative/path?x=1", "https://example.org/feed/")
@example("javascript:alert(1)", None)
@example("HTTP:", None)  # courlan makes "http://" of it: a URL without a host
@example("http:x", None)
def test_canonical_url_is_none_or_an_absolute_http_url_without_fragment(
    link: str, base: str | None
) -> None:
    canonical = canonicalize_url(link, base=base)
    if canonical is None:
        return
    parts = urlsplit(canonical)
    assert parts.scheme in ("http", "https")
    assert parts.netloc
    assert "#" not in canonical


_HOST = st.from_regex(r"\A[a-z][a-z0-9]{0,10}\.(org|com|net|de)\Z")
_SEGMENT = st.from_regex(r"\A[a-z0-9_-]{1,12}\Z")
_PARAM = st.tuples(st.from_regex(r"\A[a-z]{1,6}\Z"), st.from_regex(r"\A[a-z0-9]{1,6}\Z"))


@given(
    scheme=st.sampled_from(["http", "https"]),
    host=_HOST,
    segments=st.lists(_SEGMENT, max_size=4),
    params=st.lists(
        _PARAM.filter(lambda p: not p[0].startswith("utm")), max_size=3, unique_by=lambda p: p[0]
    ),
    trackers=st.lists(
        st.tuples(st.sampled_from(["utm_source", "utm_medium", "utm_campaign"]), _SEGMENT),
        max_size=3,
        unique_by=lambda p: p[0],
    ),
    fragment=st.one_of(st.just(""), _SEGMENT),
)
# A parameter named like an HTML entity: courlan unescaped "&lt=0" to "<=0" once sorted after
# another parameter, so the canonical URL changed when canonicalised again.
@example(
    scheme="http",
    host="a.org",
    segments=[],
    params=[("lt", "0"), ("a", "0")],
    trackers=[],
    fragment="",
)
def test_tracking_parameters_and_fragment_never_change_the_canonical_url(
    scheme: str,
    host: str,
    segments: list[str],
    params: list[tuple[str, str]],
    trackers: list[tuple[str, str]],
    fragment: str,
) -> None:
    path = "/" + "/".join(segments)
    plain_query = "&".join(f"{k}={v}" for k, v in params)
    tracked_query = "&".join(f"{k}={v}" for k, v in [*params, *trackers])
    plain = f"{scheme}://{host}{path}" + (f"?{plain_query}" if plain_query else "")
    tracked = f"{scheme}://{host.upper()}{path}" + (f"?{tracked_query}" if tracked_query else "")
    if fragment:
        tracked += f"#{fragment}"
    canonical = canonicalize_url(plain)
    assert canonical is not None
    assert canonicalize_url(tracked) == canonical
    assert "utm_" not in canonical
    # Canonical URLs are keys and ids: canonicalising one again must not change it.
    assert canonicalize_url(canonical) == canonical


def _json_values() -> st.SearchStrategy[object]:
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
        ),
        max_leaves=12,
    )


@given(st.sampled_from(schemas.ALL_SCHEMA_IDS), st.one_of(st.none(), st.binary(max_size=300)))
def test_any_message_bytes_decode_to_a_message_or_a_dead_letter_reason(
    schema_id: str, raw: bytes | None
) -> None:
    decoded = decode_value(raw, schema_id)
    if isinstance(decoded, Failure):
        assert decoded.reason in DECODE_REASONS and decoded.error
    else:
        assert schemas.is_valid(schema_id, decoded)


@given(
    schema_id=st.sampled_from(schemas.ALL_SCHEMA_IDS),
    data=st.data(),
)
def test_a_valid_message_with_one_field_changed_is_accepted_only_if_the_schema_allows_it(
    schema_id: str, data: st.DataObject
) -> None:
    example_message = json.loads((EXAMPLES / f"{schema_id}.json").read_text(encoding="utf-8"))
    assert schemas.is_valid(schema_id, example_message)
    field = data.draw(st.sampled_from(sorted(example_message)))
    changed = dict(example_message)
    if data.draw(st.booleans()):
        del changed[field]
    else:
        changed[field] = data.draw(_json_values())
    decoded = decode_value(json.dumps(changed).encode(), schema_id)
    if isinstance(decoded, Failure):
        assert decoded.reason == "schema_invalid" and decoded.error
        assert not schemas.is_valid(schema_id, changed)
    else:
        assert decoded == changed
    required = schemas.load_schema(schema_id).get("required", [])
    if field in required and field not in changed:
        assert isinstance(decoded, Failure)


_PUBLISHED = st.dates(min_value=date(1990, 1, 1), max_value=date(2090, 12, 31))
_WORDS = st.lists(
    st.one_of(
        st.sampled_from(
            [
                *WEEKDAYS,
                *MONTHS,
                "today",
                "tomorrow",
                "yesterday",
                "last",
                "next",
                "week",
                "weekend",
                "on",
                "the",
                "of",
                "2019",
                "28",
                "31",
                "0",
                "99",
            ]
        ),
        st.text(max_size=8),
    ),
    max_size=6,
)


@given(_WORDS, _PUBLISHED, st.booleans())
@example(["june", "²"], date(2025, 3, 17), False)
@example(["february", "30"], date(2025, 3, 17), False)
def test_date_resolution_returns_a_date_or_none_for_any_words(
    words: list[str], published: date, forward: bool
) -> None:
    resolved = resolve_date(words, published, forward=forward)
    assert resolved is None or isinstance(resolved, date)


@given(st.sampled_from(sorted(WEEKDAYS)), _PUBLISHED, st.booleans())
def test_a_weekday_resolves_to_that_weekday_within_a_week_on_the_tense_side(
    weekday: str, published: date, forward: bool
) -> None:
    resolved = resolve_date(["on", weekday.capitalize()], published, forward=forward)
    assert resolved is not None
    assert resolved.weekday() == WEEKDAYS[weekday]
    distance = resolved - published
    if forward:
        assert timedelta(0) <= distance < timedelta(days=7)
    else:
        assert timedelta(days=-6) <= distance <= timedelta(0)


@given(_PUBLISHED)
def test_an_absolute_date_names_itself_whatever_the_publication_date(published: date) -> None:
    day = published + timedelta(days=40)
    words = [day.strftime("%B"), str(day.day), str(day.year)]
    assert resolve_date(words, published, forward=False) == day


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``value`` (dict keys and list indexes)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


@given(
    schema_id=st.sampled_from(schemas.ALL_SCHEMA_IDS),
    data=st.data(),
)
def test_the_fast_check_agrees_with_the_reference_validator_on_changed_messages(
    schema_id: str, data: st.DataObject
) -> None:
    """The compiled check lets a message through without the reference validator: it must
    accept only what the reference accepts, however deep the change. (It may refuse more:
    it decodes ``contentEncoding``, which Draft 2020-12 only annotates; the reference then
    decides.)"""
    message = json.loads((EXAMPLES / f"{schema_id}.json").read_text(encoding="utf-8"))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        path = data.draw(st.sampled_from(_paths(message)))
        parent = message
        for step in path[:-1]:
            parent = parent[step]
        replacement = data.draw(
            st.one_of(
                _json_values(),
                st.text(max_size=30),
                st.sampled_from(["2025-03-17T09:00:00Z", "2025-03-17", "17/03/2025", "", "USA"]),
            )
        )
        if isinstance(parent, dict) and data.draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = replacement
    reference = schemas.validator_for(schema_id).is_valid(message)
    if schemas.passes_fast_check(schema_id, message):
        assert reference
    assert schemas.is_valid(schema_id, message) == reference
