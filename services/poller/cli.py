"""``wirewatch poller`` (the service) and ``wirewatch parse-feed`` (the parser, offline)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from services.common.http import FetchSettings
from services.common.logging import configure_logging
from services.poller.feeds import feed_entry, parse_feed


def register(subparsers: Any) -> None:
    poller = subparsers.add_parser(
        "poller", help="poll the feeds of WIREWATCH_POLLER_FEEDS into feeds.entries"
    )
    poller.add_argument(
        "--feeds", type=Path, default=None, help="feed list (YAML or OPML); overrides the env"
    )
    poller.set_defaults(handler=run_poller)

    parse = subparsers.add_parser(
        "parse-feed", help="parse a feed file and print its entries as feed_entry JSON lines"
    )
    parse.add_argument("file", type=Path)
    parse.add_argument("--url", default=None, help="the feed's URL (resolves relative links)")
    parse.set_defaults(handler=run_parse_feed)


def run_poller(args: argparse.Namespace) -> int:
    from services.poller.app import run_service
    from services.poller.settings import PollerSettings

    overrides = {"feeds": args.feeds} if args.feeds is not None else {}
    try:
        settings = PollerSettings(**overrides)
        fetch_settings = FetchSettings()
    except ValidationError as exc:
        print(f"wirewatch poller: bad configuration: {exc}", file=sys.stderr)
        return 2
    configure_logging(args.log_level or settings.log_level)
    return asyncio.run(run_service(settings, fetch_settings))


def run_parse_feed(args: argparse.Namespace) -> int:
    url = args.url or args.file.resolve().as_uri()
    parsed = parse_feed(args.file.read_bytes(), url=url)
    if parsed.bozo_exception:
        print(f"malformed feed: {parsed.bozo_exception}: {parsed.bozo_message}", file=sys.stderr)
    elif parsed.looks_broken:
        print("not a feed: no RSS, Atom or CDF document and no entries", file=sys.stderr)
    now = datetime.now(UTC)
    for entry in parsed.entries:
        if entry.url is None:
            print(f"skipped entry without a link: {entry.entry_id}", file=sys.stderr)
            continue
        message = feed_entry(
            entry, feed_url=url, feed_title=parsed.title, first_seen=now
        ).to_message()
        print(json.dumps(message, ensure_ascii=False))
    return 0
