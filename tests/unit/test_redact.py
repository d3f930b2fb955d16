"""Credentials in feed URLs never reach logs, metrics labels or other consumers' messages."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from services.common.logging import JsonFormatter, TextFormatter
from services.common.redact import redact_text, redact_url
from services.poller.feedlist import load_feed_list


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:s3cret@feeds.example/rss", "https://REDACTED@feeds.example/rss"),
        (
            "https://feeds.example/rss?api_key=s3cret&lang=en",
            "https://feeds.example/rss?api_key=REDACTED&lang=en",
        ),
        ("https://feeds.example/rss?token=s3cret", "https://feeds.example/rss?token=REDACTED"),
        ("https://feeds.example/rss?page=2&k=7", "https://feeds.example/rss?page=2&k=7"),
        ("https://feeds.example/rss", "https://feeds.example/rss"),
    ],
)
def test_urls_lose_their_credentials_and_nothing_else(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert redact_text(f"fetching {url} failed") == f"fetching {shown} failed"


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter("%(message)s")])
def test_log_lines_mask_credentials_in_messages_fields_and_tracebacks(
    formatter: logging.Formatter,
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("test_redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ConnectionError("cannot connect to https://user:s3cret@feeds.example/rss")
        except ConnectionError:
            logger.exception(
                "feed %s failed",
                "https://feeds.example/rss?password=s3cret",
                extra={"feed_url": "https://user:s3cret@feeds.example/rss"},
            )
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert "s3cret" not in written
    assert "feeds.example/rss" in written and "REDACTED" in written


def test_a_feed_without_a_name_is_labelled_by_its_url_without_credentials(tmp_path: Path) -> None:
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("feeds:\n  - url: https://user:s3cret@feeds.example/rss?key=abc\n")
    (feed,) = load_feed_list(feeds)
    assert feed.url == "https://user:s3cret@feeds.example/rss?key=abc"  # still used to fetch
    assert feed.name == "https://REDACTED@feeds.example/rss?key=REDACTED"
