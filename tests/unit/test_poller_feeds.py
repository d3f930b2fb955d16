"""The poller's pure core: parsing, canonical URLs, entry identity, messages."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.common import schemas
from services.poller.feeds import (
    canonicalize_url,
    content_hash,
    entry_identity,
    feed_entry,
    parse_feed,
)
from services.poller.paging import paging_links

GUARDIAN = "rss-parser/test/input/guardian.rss"
FEED = "https://feeds.example/rss"


def test_canonical_url_drops_tracking_parameters_and_fragment_but_keeps_real_query() -> None:
    url = "https://Example.com/world/story?id=7&utm_source=rss&utm_medium=feed&fbclid=x#comments"
    assert canonicalize_url(url) == "https://example.com/world/story?id=7"


def test_canonical_url_resolves_relative_links_and_refuses_non_http() -> None:
    assert canonicalize_url("/a/b.html", base="https://news.example/feed") == (
        "https://news.example/a/b.html"
    )
    assert canonicalize_url("mailto:desk@example.com") is None
    assert canonicalize_url("   ") is None
    assert canonicalize_url(None) is None


RELATIVE_LINKS_FEED = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<link>/</link>
<item><title>a</title><link>/news/a</link></item>
<item><title>b</title><link>https://news.example/b?id=2</link></item>
</channel></rss>"""


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"Content-Location": "https://carol:pw@feeds.example/v2/rss"},
        {"Content-Location": "https://[feeds.example/rss"},
    ],
    ids=["no-headers", "headers", "content-location-with-userinfo", "malformed-content-location"],
)
def test_a_feeds_credentials_stay_out_of_its_entries_links(headers: dict[str, str] | None) -> None:
    parsed = parse_feed(
        RELATIVE_LINKS_FEED, url="https://alice:s3cret@feeds.example/rss", headers=headers
    )
    assert [entry.url for entry in parsed.entries] == [
        "https://feeds.example/news/a",
        "https://news.example/b?id=2",
    ]
    for entry in parsed.entries:
        message = feed_entry(
            entry,
            feed_url="https://alice:s3cret@feeds.example/rss",
            feed_title=None,
            first_seen=datetime(2025, 3, 11, tzinfo=UTC),
        ).to_message()
        assert "s3cret" not in str(message) and "alice" not in str(message)
        assert "carol" not in str(message)


def test_identity_prefers_guid_then_canonical_link_then_content_hash() -> None:
    assert entry_identity({"id": " tag:x,2025:1 ", "link": "https://a/b"}, "https://a/b") == (
        "tag:x,2025:1"
    )
    assert entry_identity({"link": "https://a/b?utm_source=x"}, "https://a/b") == "https://a/b"
    hashed = entry_identity({"title": "Talks end", "summary": "No deal"}, None)
    assert hashed.startswith("sha256:")
    assert hashed == content_hash({"title": "Talks end", "summary": "No deal"})
    assert hashed != content_hash({"title": "Talks end", "summary": "A deal"})


def test_real_feed_parses_to_schema_valid_messages(eval_dir: Path) -> None:
    body = (eval_dir / "feeds" / GUARDIAN).read_bytes()
    parsed = parse_feed(body, url="https://www.theguardian.com/us/rss")
    assert parsed.title == "The Guardian" and parsed.bozo_exception is None
    assert len(parsed.entries) == 55
    first_seen = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    for entry in parsed.entries:
        message = feed_entry(
            entry,
            feed_url="https://www.theguardian.com/us/rss",
            feed_title=parsed.title,
            first_seen=first_seen,
        ).to_message()
        schemas.validate(schemas.FEED_ENTRY, message)
        assert message["first_seen"] == "2026-01-02T03:04:05.678Z"
    assert all(entry.published is not None for entry in parsed.entries)


def test_truncated_feed_is_flagged_not_raised(eval_dir: Path) -> None:
    body = (eval_dir / "feeds" / "feed-rs/feed-rs/fixture/rss2/rss_2.0_invalid_1.xml").read_bytes()
    parsed = parse_feed(body, url="https://example.org/feed")
    assert parsed.bozo_exception == "SAXParseException"
    assert parsed.entries == ()


def test_html_page_instead_of_a_feed_looks_broken(eval_dir: Path) -> None:
    body = (eval_dir / "feeds" / "node-feedparser/test/feeds/notafeed.html").read_bytes()
    parsed = parse_feed(body, url="https://example.org/feed", headers={"Content-Type": "text/html"})
    assert parsed.looks_broken


def test_declared_ttl_is_read_in_seconds() -> None:
    body = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><ttl>15</ttl>
    </channel></rss>"""
    assert parse_feed(body, url="https://example.org/feed").ttl_seconds == 900.0


def test_feed_sent_as_raw_gzip_bytes_is_unpacked_and_parsed(eval_dir: Path) -> None:
    body = (eval_dir / "feeds" / "node-feedparser/test/feeds/compressed.xml").read_bytes()
    parsed = parse_feed(body, url="http://www.oren.ru/rss")
    assert parsed.gunzipped and parsed.bozo_exception is None
    assert len(parsed.entries) == 10
    assert all(entry.url and entry.url.startswith("http://www.oren.ru") for entry in parsed.entries)


def test_gzip_bomb_beyond_the_cap_is_not_unpacked() -> None:
    import gzip

    from services.poller.feeds import gunzip_stray

    bomb = gzip.compress(b"<" * 2_000_000)
    assert gunzip_stray(bomb, limit=1_000_000) is None
    assert gunzip_stray(bomb, limit=3_000_000) == b"<" * 2_000_000
    assert gunzip_stray(b"\x1f\x8bnot really gzip") is None


def test_a_body_naming_a_local_file_is_parsed_as_text_not_opened(tmp_path: Path) -> None:
    """feedparser opens bytes that name a file; a hostile server must not get a file read."""
    local = tmp_path / "local.atom"
    local.write_text(
        '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">'
        "<title>local secrets</title>"
        '<link rel="next" href="https://example.org/page2"/>'
        '<entry><title>secret</title><link href="https://example.org/secret"/></entry></feed>'
    )
    assert parse_feed(local.read_bytes(), url="https://feeds.example/rss").title == "local secrets"
    parsed = parse_feed(str(local).encode(), url="https://feeds.example/rss")
    assert not parsed.entries and parsed.title != "local secrets"
    assert paging_links(local.read_bytes(), url="https://feeds.example/rss").next_page
    assert paging_links(str(local).encode(), url="https://feeds.example/rss").next_page is None


def entity_feed(declarations: str, title: str) -> bytes:
    return (
        f'<?xml version="1.0"?><!DOCTYPE rss [{declarations}]><rss version="2.0"><channel>'
        f"<title>{title}</title><item><title>one</title><link>https://example.org/1</link>"
        "</item></channel></rss>"
    ).encode()


def test_entities_declared_in_the_doctype_still_work_in_moderation() -> None:
    parsed = parse_feed(entity_feed('<!ENTITY site "Example News">', "&site; daily"), url=FEED)
    assert parsed.title == "Example News daily" and len(parsed.entries) == 1


def test_entities_that_would_expand_to_megabytes_are_not_parsed() -> None:
    """A few KB of declarations referenced all over a body: gigabytes after expansion."""
    many = "&big;" * 5_000
    body = entity_feed(f'<!ENTITY big "{"x" * 1_000}">', many)
    started = time.monotonic()
    parsed = parse_feed(body, url=FEED)
    assert time.monotonic() - started < 1
    assert not parsed.entries and parsed.problem == "EntityExpansionLimit"
    assert paging_links(body, url=FEED).next_page is None


@pytest.mark.parametrize(
    "declarations",
    [
        '<!ENTITY a "aaaaaaaaaa"><!ENTITY b "'
        + "&a;" * 100
        + '"><!ENTITY c "'
        + "&b;" * 100
        + '"><!ENTITY d "'
        + "&c;" * 100
        + '">',
        '<!ENTITY a "&b;"><!ENTITY b "&a;">',
    ],
    ids=["nested", "cycle"],
)
def test_nested_or_cyclic_entities_count_as_what_they_expand_to(declarations: str) -> None:
    parsed = parse_feed(entity_feed(declarations, "&d;&a;"), url=FEED)
    assert parsed.problem == "EntityExpansionLimit"
