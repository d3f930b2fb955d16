"""`wirewatch replay backfill-feed` over RFC 5005 archives served on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from services.common.kafka import FIRST_SEEN_HEADER
from services.common.settings import KafkaSettings
from tests.integration.test_replay_copy import WIREWATCH, env_for, read_topic

# A real feed (The Guardian US, 55 items, 2018) from the evaluation data: rss-parser's test
# input (MIT). Split below into a subscription document and two archives.
GUARDIAN = "feeds/rss-parser/test/input/guardian.rss"
ATOM_NS = 'xmlns:atom="http://www.w3.org/2005/Atom"'


def write_archived_feed(source: str, folder: Path, base_url: str, sizes: list[int]) -> list[str]:
    """Write ``source``'s items as an archived feed: ``feed.xml`` -> ``archive-1.xml`` -> ...

    Returns the guids in feed order (newest first), which are the entry ids to expect.
    """
    items = re.findall(r"<item>.*?</item>", source, flags=re.S)
    head = source[: source.index("<item>")].replace("<rss ", f"<rss {ATOM_NS} ", 1)
    tail = "</channel></rss>"
    names = ["feed.xml"] + [f"archive-{n}.xml" for n in range(1, len(sizes))]
    start = 0
    for number, size in enumerate(sizes):
        link = ""
        if number + 1 < len(sizes):
            link = f'<atom:link rel="prev-archive" href="{base_url}/{names[number + 1]}"/>'
        body = head + link + "".join(items[start : start + size]) + tail
        (folder / names[number]).write_text(body, encoding="utf-8")
        start += size
    assert start == len(items)
    return [guid(item) for item in items]


def guid(item: str) -> str:
    found = re.search(r"<guid[^>]*>(.*?)</guid>", item, flags=re.S)
    assert found is not None, f"no guid in {item}"
    return found.group(1)


def backfill(
    kafka: KafkaSettings, url: str, topic: str, *extra: str
) -> subprocess.CompletedProcess[bytes]:
    env = env_for(
        kafka,
        WIREWATCH_TOPIC_ENTRIES=topic,
        WIREWATCH_POLLER_STATE_TOPIC=f"{topic}.state",
        WIREWATCH_FETCH_ALLOWED_NETWORKS="127.0.0.1/32",
        WIREWATCH_FETCH_MIN_HOST_INTERVAL_SECONDS="0",
    )
    return subprocess.run(
        [*WIREWATCH, "replay", "backfill-feed", url, *extra],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )


async def test_backfill_sends_every_archived_entry_once_and_a_rerun_sends_none(
    kafka_settings: KafkaSettings,
    unique_topic: str,
    serve_directory: Callable[[Path], str],
    eval_dir: Path,
    tmp_path: Path,
) -> None:
    base_url = serve_directory(tmp_path)
    source = (eval_dir / GUARDIAN).read_text(encoding="utf-8")
    guids = write_archived_feed(source, tmp_path, base_url, [20, 20, 15])
    url = f"{base_url}/feed.xml"

    dry = await asyncio.to_thread(backfill, kafka_settings, url, unique_topic, "--dry-run")
    assert dry.returncode == 0, dry.stderr.decode()
    assert "55 entries in 3 documents" in dry.stdout.decode()

    first = await asyncio.to_thread(backfill, kafka_settings, url, unique_topic)
    assert first.returncode == 0, first.stderr.decode()
    assert "sent 55 entries" in first.stdout.decode()
    records = [r for rs in (await read_topic(kafka_settings, unique_topic)).values() for r in rs]
    entries = [json.loads(r.value) for r in records]
    assert sorted(e["entry_id"] for e in entries) == sorted(guids)
    assert all(r.key.decode() == e["url"] for r, e in zip(records, entries, strict=True))
    assert all(dict(r.headers).get(FIRST_SEEN_HEADER) for r in records)
    # Oldest first: within each partition, publication times never go backwards.
    for partition_records in (await read_topic(kafka_settings, unique_topic)).values():
        published = [json.loads(r.value)["published"] for r in partition_records]
        assert published == sorted(published)

    again = await asyncio.to_thread(backfill, kafka_settings, url, unique_topic)
    assert again.returncode == 0, again.stderr.decode()
    assert "sent 0 entries" in again.stdout.decode() and "55 already seen" in again.stdout.decode()
    after = sum(map(len, (await read_topic(kafka_settings, unique_topic)).values()))
    assert after == 55


async def test_backfill_of_an_unreachable_feed_fails_with_a_clear_message(
    kafka_settings: KafkaSettings,
    unique_topic: str,
    serve_directory: Callable[[Path], str],
    tmp_path: Path,
) -> None:
    base_url = serve_directory(tmp_path)
    result = await asyncio.to_thread(
        backfill, kafka_settings, f"{base_url}/missing.xml", unique_topic
    )
    assert result.returncode == 2
    assert "cannot read feed" in result.stderr.decode() and "HTTP 404" in result.stderr.decode()
