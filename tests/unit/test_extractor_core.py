"""The extractor's pure core: decoding, extraction, article building, fetch rules, commit order.

Pages come from scrapinghub/article-extraction-benchmark (MIT) in ``shared/eval/extraction``;
re-encoded copies stand in for pages served in legacy charsets.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import time
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from multidict import CIMultiDict, CIMultiDictProxy
from trafilatura.metadata import extract_metadata
from trafilatura.utils import load_html

from services.common import schemas
from services.common.http import FetchResult, FetchSettings, HostPoliteness
from services.common.kafka import Failure
from services.common.messages import FeedEntry
from services.extractor import fetch as fetch_module
from services.extractor.app import Lane
from services.extractor.extract import (
    DATE_OPTIONS,
    ExtractedPage,
    article_id_for,
    build_article,
    choose_canonical_url,
    choose_published,
    decode_html,
    drop_leading_title,
    extract_page,
    page_language,
    page_metadata,
)
from services.extractor.fetch import (
    RetryPolicy,
    classify_response,
    fetch_page,
    fetch_page_once,
    is_html,
)
from wirewatch_tools.cli import build_parser

RUSSIAN = "c4a3637c6696f238"  # ru-RU page declared UTF-8
PORTUGUESE = "23aaecd14171f96c"  # pt-BR page declared UTF-8


def eval_page(eval_dir: Path, prefix: str) -> tuple[str, bytes]:
    [path] = (eval_dir / "extraction" / "html").glob(f"{prefix}*.html.gz")
    return path.name.removesuffix(".html.gz"), gzip.decompress(path.read_bytes())


def reencode(body: bytes, charset: str, *, declare: bool) -> bytes:
    """The same page in another charset (characters it lacks become character references)."""
    text = body.decode("utf-8")
    replacement = f"charset={charset}" if declare else "data-x=1"
    text = re.sub(r"charset=[\"']?utf-8", replacement, text, count=1, flags=re.IGNORECASE)
    return text.encode(charset, errors="xmlcharrefreplace")


def text_of(page: ExtractedPage | Failure) -> str:
    assert isinstance(page, ExtractedPage), page
    return page.text


def test_cyrillic_page_in_windows_1251_declared_by_header_extracts_like_the_utf8_original(
    eval_dir: Path,
) -> None:
    _, original = eval_page(eval_dir, RUSSIAN)
    legacy = reencode(original, "windows-1251", declare=False)
    expected = text_of(extract_page(original))
    assert "ы" in expected
    assert text_of(extract_page(legacy, content_type="text/html; charset=windows-1251")) == expected


def test_meta_charset_is_honoured_when_the_header_names_none(eval_dir: Path) -> None:
    _, original = eval_page(eval_dir, PORTUGUESE)
    legacy = reencode(original, "iso-8859-1", declare=True)
    html, encoding = decode_html(legacy, "text/html")
    assert encoding == "iso8859-1"
    assert text_of(extract_page(legacy, content_type="text/html")) == text_of(
        extract_page(original)
    )
    assert "ção" in html


def test_a_header_charset_that_cannot_decode_the_bytes_is_not_trusted(eval_dir: Path) -> None:
    _, original = eval_page(eval_dir, RUSSIAN)
    legacy = reencode(original, "windows-1251", declare=True)
    _, encoding = decode_html(legacy, "text/html; charset=utf-8")
    assert encoding == "cp1251"


def test_undeclared_legacy_charset_is_guessed_without_replacement_characters(
    eval_dir: Path,
) -> None:
    _, original = eval_page(eval_dir, RUSSIAN)
    legacy = reencode(original, "windows-1251", declare=False)
    html, _ = decode_html(legacy, None)
    assert html == legacy.decode("windows-1251")


def test_page_without_article_text_is_an_empty_extraction() -> None:
    outcome = extract_page(
        b"<html><head><title>Nothing</title></head><body><script>x()</script></body></html>"
    )
    assert isinstance(outcome, Failure) and outcome.reason == "empty_extraction"


def test_page_metadata_equals_trafilaturas_own_for_every_field_an_article_carries(
    eval_dir: Path,
) -> None:
    """Our metadata pass skips trafilatura's categories, tags and licence, nothing else."""
    fields = ("title", "author", "url", "date", "sitename")
    compared = 0
    with_author = 0
    for path in sorted((eval_dir / "extraction" / "html").glob("*.html.gz")):
        html = decode_html(gzip.decompress(path.read_bytes()))[0]
        url = f"https://example.org/{path.name}"
        theirs = extract_metadata(load_html(html), url, DATE_OPTIONS)
        ours = page_metadata(load_html(html), url)
        for name in fields:
            assert getattr(ours, name) == getattr(theirs, name), (path.name, name)
        compared += 1
        with_author += ours.author is not None
    assert compared == 181
    assert with_author > 100  # the comparison covers authors found, not only absent ones


def test_article_id_and_key_come_from_the_canonical_url(eval_dir: Path) -> None:
    page_id, body = eval_page(eval_dir, "042bb7b5")
    page = extract_page(body)
    assert isinstance(page, ExtractedPage)
    entry = {
        "entry_id": "e1",
        "feed_url": "https://www.wsj.com/feed",
        "url": "https://www.wsj.com/articles/x?utm=1",
        "title": "feed title",
        "first_seen": "2026-01-01T00:00:00Z",
    }
    article = build_article(
        page, fetched_url=entry["url"], entry=FeedEntry.from_message(entry), fetch_seconds=0.5
    )
    schemas.validate(schemas.ARTICLE, article.to_message())
    # The benchmark names each page by the SHA-256 of its URL, which the page declares.
    assert article.article_id == page_id[:32] == article_id_for(article.url)
    assert article.first_seen == entry["first_seen"] and article.entry_id == "e1"
    assert article.source == "Wall Street Journal" and article.language == "en"
    assert article.title.startswith("Google Stadia")


def test_canonical_link_to_another_site_or_a_home_page_is_ignored() -> None:
    ours = "https://news.example.org/2025/03/story.html"
    assert choose_canonical_url(ours, "https://other.example.com/story") == ours
    assert choose_canonical_url(ours, "https://news.example.org/") == ours
    assert choose_canonical_url(ours, "javascript:alert(1)") == ours
    same_site = "https://www.news.example.org/story"
    assert choose_canonical_url(ours, same_site) == same_site


def test_headline_repeated_as_first_body_line_is_dropped() -> None:
    assert drop_leading_title("Big  news\nBody text.", "Big news") == "Body text."
    assert drop_leading_title("Other line\nBody text.", "Big news") == "Other line\nBody text."


def test_only_html_like_responses_are_accepted() -> None:
    assert is_html("text/html; charset=utf-8", b"")
    assert is_html("application/xhtml+xml", b"")
    assert is_html(None, b"  <!DOCTYPE html><html></html>")
    assert not is_html(None, b"%PDF-1.7")
    assert not is_html("application/pdf", b"<html>")
    letter = classify_response("http://x/", 200, "image/png", b"\x89PNG")
    assert letter is not None and letter.reason == "not_html"
    letter = classify_response("http://x/", 404, "text/html", b"")
    assert letter is not None and letter.reason == "http_status"
    assert letter.details == {"url": "http://x/", "status": 404}
    assert classify_response("http://x/", 200, "text/html", b"<html>") is None


def test_retry_backoff_grows_is_capped_and_respects_retry_after() -> None:
    policy = RetryPolicy(max_attempts=5, base_seconds=1.0, max_seconds=10.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 8.0, 10.0]
    assert policy.delay(1, retry_after=7.0) == 7.0
    assert policy.delay(1, retry_after=600.0) == 10.0


async def test_lane_commits_only_offsets_whose_output_and_predecessors_are_acknowledged() -> None:
    lane = Lane(TopicPartition("t", 0))
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    lane.acks.extend([(10, first), (11, second)])
    second.set_result(None)
    lane.settle()
    assert lane.committable is None
    first.set_result(None)
    lane.settle()
    assert lane.committable == 12 and lane.idle


async def test_lane_stops_at_a_failed_acknowledgement() -> None:
    lane = Lane(TopicPartition("t", 0))
    loop = asyncio.get_running_loop()
    ok, failed = loop.create_future(), loop.create_future()
    ok.set_result(None)
    failed.set_exception(RuntimeError("broker said no"))
    lane.acks.extend([(0, ok), (1, failed)])
    with pytest.raises(RuntimeError):
        lane.settle()
    assert lane.committable == 1


def test_extract_command_prints_a_schema_valid_article(
    eval_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    [path] = (eval_dir / "extraction" / "html").glob("042bb7b5*.html.gz")
    args = build_parser().parse_args(["extract", str(path), "--url", "https://www.wsj.com/a/x"])
    assert args.handler(args) == 0
    article = json.loads(capsys.readouterr().out)
    schemas.validate(schemas.ARTICLE, article)
    assert article["fetched_url"] == "https://www.wsj.com/a/x"
    assert article["text"] == text_of(extract_page(gzip.decompress(path.read_bytes())))


def test_extract_command_reports_an_empty_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "empty.html"
    page.write_text("<html><head><title>t</title></head><body></body></html>")
    args = build_parser().parse_args(["extract", str(page)])
    assert args.handler(args) == 1
    assert "empty_extraction" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("html", "language"),
    [
        ('<html lang="en-US"><head>', "en"),
        ("<html class=x xml:lang='pt-BR' >", "pt"),
        ('<html><head><meta http-equiv="Content-Language" content="ru">', "ru"),
        ('<html><head><meta property="og:locale" content="de_DE"/>', "de"),
        ('<html data-lang="xx"><head>', None),
        ('<html lang="english">', None),
    ],
)
def test_declared_language_is_reduced_to_its_primary_subtag(html: str, language: str) -> None:
    assert page_language(html) == language


def test_feed_time_refines_the_page_date_only_when_they_name_the_same_day() -> None:
    assert choose_published("2025-03-17", "2025-03-17T09:00:00Z") == "2025-03-17T09:00:00Z"
    assert choose_published("2025-03-17", "2025-03-18T01:00:00Z") == "2025-03-17"
    assert choose_published(None, "2025-03-18T01:00:00Z") == "2025-03-18T01:00:00Z"
    assert choose_published("2025-03-17T10:00:00+01:00", None) == "2025-03-17T10:00:00+01:00"


def polite() -> HostPoliteness:
    return HostPoliteness(global_concurrency=4, per_host_concurrency=2, min_interval=0.0)


async def test_a_host_deferred_longer_than_an_entry_waits_fails_at_once() -> None:
    """Sleeping out a week's Retry-After in the host's slot would stall the partition."""
    politeness = polite()
    politeness.defer("news.example", 7 * 24 * 3600)
    started = time.monotonic()
    outcome = await fetch_page_once(
        None,
        "https://news.example/a",
        settings=FetchSettings(),
        politeness=politeness,
        max_host_wait=30.0,
    )
    assert outcome.failure is not None and outcome.failure.reason == "host_deferred"
    assert not outcome.transient
    assert time.monotonic() - started < 5


async def test_a_retry_after_beyond_the_retry_limit_is_dead_lettered_without_a_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def answer_429(_session: object, url: str, **_: object) -> FetchResult:
        headers = CIMultiDictProxy(CIMultiDict({"Retry-After": "604800"}))
        return FetchResult(url=url, status=429, headers=headers, body=b"")

    slept: list[float] = []

    async def record_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(fetch_module, "fetch", answer_429)
    letter = await fetch_page(
        None,
        "https://news.example/a",
        settings=FetchSettings(),
        politeness=polite(),
        retry=RetryPolicy(max_attempts=3, max_seconds=30.0),
        sleep=record_sleep,
    )
    assert isinstance(letter, Failure)
    assert (letter.reason, letter.attempts, slept) == ("http_status", 1, [])
    assert letter.details is not None and letter.details["retry_after_seconds"] == 604800
