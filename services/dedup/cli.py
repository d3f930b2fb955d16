"""``wirewatch dedup``: the service, or with a file the offline form of the same core."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from services.dedup.engine import Deduplicator
from services.dedup.offline import run_offline


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dedup",
        help="run the dedup service; with ARTICLES.jsonl, deduplicate a file offline",
    )
    parser.add_argument(
        "articles",
        nargs="?",
        type=Path,
        help="JSONL of {id, url, title, text, source, published}; prints {id, story_id, copy_of}",
    )
    parser.add_argument(
        "--window-hours", type=float, default=72.0, help="offline form: window length"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.articles is None:
        from services.dedup.__main__ import main

        return main(args.log_level)
    if not args.articles.is_file():
        print(f"wirewatch dedup: no such file: {args.articles}", file=sys.stderr)
        return 2
    engine = Deduplicator(window_seconds=args.window_hours * 3600)
    errors = 0
    with args.articles.open(encoding="utf-8") as lines:
        for result in run_offline(lines, engine):
            if "error" in result:
                errors += 1
                print(f"wirewatch dedup: {result['error']}", file=sys.stderr)
            print(json.dumps(result, ensure_ascii=False))
    return 1 if errors else 0
