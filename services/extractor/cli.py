"""``wirewatch extractor`` (the service) and ``wirewatch extract PAGE.html`` (one page, offline)."""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import logging
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from services.common import schemas
from services.common.logging import configure_logging
from services.extractor.extract import ExtractedPage, build_article, extract_page

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    service = subparsers.add_parser(
        "extractor", help="the extractor service: feeds.entries -> articles.extracted"
    )
    service.set_defaults(handler=run_service)

    extract = subparsers.add_parser(
        "extract", help="extract one saved HTML page (.html or .html.gz) and print the article"
    )
    extract.add_argument("page", type=Path, help="the HTML file ('-' reads standard input)")
    extract.add_argument("--url", default=None, help="the URL the page was fetched from")
    extract.set_defaults(handler=run_extract)


def run_service(args: argparse.Namespace | None) -> int:
    from services.extractor.app import ExtractorSettings, run_extractor

    try:
        settings = ExtractorSettings()
    except ValidationError as exc:
        print(f"wirewatch extractor: bad configuration: {exc}", file=sys.stderr)
        return 2
    configure_logging((args.log_level if args is not None else None) or settings.log_level)
    asyncio.run(run_extractor(settings))
    return 0


def read_page(path: Path) -> bytes:
    body = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    return gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body


def run_extract(args: argparse.Namespace) -> int:
    try:
        body = read_page(args.page)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        print(f"wirewatch extract: cannot read {args.page}: {exc}", file=sys.stderr)
        return 2
    page = extract_page(body, url=args.url)
    if not isinstance(page, ExtractedPage):
        print(f"wirewatch extract: {page.reason}: {page.error}", file=sys.stderr)
        return 1
    fetched_url = args.url or page.canonical_url or args.page.resolve().as_uri()
    article = build_article(page, fetched_url=fetched_url).to_message()
    schemas.validate(schemas.ARTICLE, article)
    print(json.dumps(article, ensure_ascii=False, indent=2))
    return 0
