"""``wirewatch coder`` (the service) and ``wirewatch code ARTICLES.jsonl`` (offline, same core)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from services.coder import CODER_VERSION


def register(subparsers: Any) -> None:
    service = subparsers.add_parser("coder", help="run the diplomatic event coder service")
    service.set_defaults(handler=run_service)

    code = subparsers.add_parser(
        "code", help="code articles (JSONL) into aggregated diplomatic events (JSONL)"
    )
    code.add_argument(
        "articles", type=Path, help="JSONL, one {id, url, title, text, source, published} a line"
    )
    code.add_argument(
        "--scope",
        choices=("diplomatic", "all"),
        default="diplomatic",
        help="CAMEO roots to emit (default: the diplomatic and political families)",
    )
    code.set_defaults(handler=run_code)


def run_service(args: argparse.Namespace) -> int:
    from services.coder.__main__ import main

    return main(args.log_level)


def run_code(args: argparse.Namespace) -> int:
    from services.coder.coding import ALL_ROOTS, default_coder
    from services.coder.core import ArticleInputError, code_articles

    articles: list[dict[str, Any]] = []
    for number, line in enumerate(args.articles.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            print(f"{args.articles}:{number}: not JSON ({exc}); skipped", file=sys.stderr)
            continue
        problem = offline_line_problem(item)
        if problem:
            print(f"{args.articles}:{number}: {problem}; skipped", file=sys.stderr)
            continue
        if isinstance(item["id"], int):
            item["id"] = str(item["id"])  # a number is an id as good as its text
        articles.append(item)
    coder = default_coder(ALL_ROOTS if args.scope == "all" else None)
    try:
        events = code_articles(articles, coder_version=CODER_VERSION, coder=coder)
    except ArticleInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for event in events:
        print(json.dumps(event, ensure_ascii=False))
    return 0


def offline_line_problem(item: Any) -> str | None:
    """What keeps an offline input line from being coded, in the user's terms; None if nothing."""
    if not isinstance(item, dict):
        return f"not a JSON object but {type(item).__name__}"
    article_id = item.get("id")
    if article_id is None or article_id == "":
        return "needs 'id' and 'text' (no 'id')"
    if isinstance(article_id, bool) or not isinstance(article_id, str | int):
        kind = type(article_id).__name__
        return f"'id' must be a string or an integer, not {kind} ({json.dumps(article_id)})"
    if not isinstance(item.get("text"), str) or not item["text"].strip():
        return "needs 'id' and 'text' (no 'text')"
    return None
