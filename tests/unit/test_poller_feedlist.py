"""The feed list: YAML and OPML, with clear errors for bad configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.errors import ConfigurationError
from services.poller.feedlist import load_feed_list

ROOT = Path(__file__).resolve().parents[2]


def test_yaml_feed_list_is_read_and_duplicates_dropped(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text(
        "feeds:\n  - url: https://a.example/rss\n    name: A\n"
        "  - url: https://b.example/atom\n  - url: https://a.example/rss\n    name: A again\n",
        encoding="utf-8",
    )
    feeds = load_feed_list(path)
    assert [(f.url, f.name) for f in feeds] == [
        ("https://a.example/rss", "A"),
        ("https://b.example/atom", "https://b.example/atom"),
    ]


def test_opml_export_is_read_including_nested_folders(tmp_path: Path) -> None:
    path = tmp_path / "export.opml"
    path.write_text(
        """<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0"><head><title>Subscriptions</title></head><body>
  <outline text="World"><outline type="rss" text="UN News" title="UN News"
      xmlUrl="https://news.un.org/feed/subscribe/en/news/all/rss.xml"/></outline>
  <outline type="rss" text="BBC World" xmlUrl="https://feeds.bbci.co.uk/news/world/rss.xml"/>
</body></opml>""",
        encoding="utf-8",
    )
    feeds = load_feed_list(path)
    assert [(f.name, f.url) for f in feeds] == [
        ("UN News", "https://news.un.org/feed/subscribe/en/news/all/rss.xml"),
        ("BBC World", "https://feeds.bbci.co.uk/news/world/rss.xml"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("feeds: nope\n", "expected 'feeds:'"),
        ("feeds:\n  - url: ftp://x/rss\n", "not an http"),
        ("feeds: []\n", "empty"),
        ("<opml><body>", "not valid OPML"),
    ],
)
def test_bad_feed_list_fails_at_start_up_with_a_clear_message(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message):
        load_feed_list(path)


def test_shipped_example_feed_list_loads() -> None:
    feeds = load_feed_list(ROOT / "feeds.example.yaml")
    assert len(feeds) >= 15
    assert all(feed.url.startswith(("https://", "http://")) for feed in feeds)
    assert len({feed.name for feed in feeds}) == len(feeds)


def test_feeds_sharing_a_name_get_distinct_metric_labels(tmp_path: Path) -> None:
    path = tmp_path / "export.opml"
    path.write_text(
        """<opml version="1.0"><body>
  <outline text="World" xmlUrl="https://a.example/world.xml"/>
  <outline text="World" xmlUrl="https://b.example/world.xml"/>
</body></opml>""",
        encoding="utf-8",
    )
    assert [f.name for f in load_feed_list(path)] == ["World", "World (2)"]
