"""RFC 5005 history links, read from real feeds of the evaluation data and from spec examples."""

from __future__ import annotations

from pathlib import Path

from services.poller.paging import HistoryWalk, PagingLinks, paging_links

# Modelled on RFC 5005 section 4 (archived feeds): a subscription document with prev-archive.
ARCHIVED_SUBSCRIPTION = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
 <title>Example Feed</title>
 <link rel="current" href="http://example.org/index.atom"/>
 <link rel="self" href="http://example.org/index.atom"/>
 <link rel="prev-archive" href="http://example.org/2003/11/index.atom"/>
 <updated>2003-12-13T18:30:02Z</updated>
 <id>urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6</id>
 <entry><title>Atom-Powered Robots Run Amok</title>
  <link href="http://example.org/2003/12/13/atom03"/>
  <id>urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a</id>
  <updated>2003-12-13T18:30:02Z</updated></entry>
</feed>"""

# Modelled on RFC 5005 section 2 (complete feeds), plus a next link that must not be followed.
COMPLETE_FEED = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:fh="http://purl.org/syndication/history/1.0">
 <title>NetMovies Queue</title><fh:complete/>
 <link rel="next" href="http://example.org/never-followed"/>
 <id>urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6</id>
 <updated>2003-12-13T18:30:02Z</updated>
</feed>"""


def test_archived_feed_points_to_its_previous_archive() -> None:
    links = paging_links(ARCHIVED_SUBSCRIPTION, url="http://example.org/index.atom")
    assert links.following() == ["http://example.org/2003/11/index.atom"]


def test_complete_feed_has_nothing_more_to_read() -> None:
    links = paging_links(COMPLETE_FEED, url="http://example.org/queue.atom")
    assert links.complete and links.following() == []


def test_paged_rss_feed_follows_next_from_a_real_podcast_feed(eval_dir: Path) -> None:
    body = (eval_dir / "feeds/rss-parser/test/input/pagination-links.rss").read_bytes()
    links = paging_links(body, url="http://example.org/index.atom?page=3")
    assert links.following() == ["http://example.org/index.atom?page=4"]


def test_paged_atom_feed_follows_next_from_a_real_blogger_feed(eval_dir: Path) -> None:
    body = (eval_dir / "feeds/rss-parser/test/input/feedburner.atom").read_bytes()
    [url] = paging_links(body, url="http://www.blogger.com/feeds/x").following()
    assert "start-index=26" in url and "&amp;" not in url


def test_relative_archive_link_is_resolved_against_the_document_url() -> None:
    body = ARCHIVED_SUBSCRIPTION.replace(
        b"http://example.org/2003/11/index.atom", b"2003/11/index.atom"
    )
    links = paging_links(body, url="http://127.0.0.1:8008/feeds/index.atom")
    assert links.prev_archive == "http://127.0.0.1:8008/feeds/2003/11/index.atom"


def test_walk_reads_each_document_once_even_when_archives_loop() -> None:
    walk = HistoryWalk("a", max_pages=10)
    order = []
    graph = {"a": PagingLinks("b", None, False), "b": PagingLinks("c", None, False)}
    graph["c"] = PagingLinks("a", "b", False)
    while (url := walk.next_url()) is not None:
        order.append(url)
        walk.add(graph[url])
    assert order == ["a", "b", "c"] and not walk.truncated


def test_walk_stops_at_the_page_limit_and_says_so() -> None:
    walk = HistoryWalk("p0", max_pages=2)
    order = []
    while (url := walk.next_url()) is not None:
        order.append(url)
        walk.add(PagingLinks(None, f"p{len(order)}", False))
    assert order == ["p0", "p1"] and walk.truncated
