"""The offline form: JSONL articles in, ``{id, story_id, copy_of}`` per line out, input order.

Same core as the service (``Deduplicator``); a line that cannot be used gets an ``error`` field in
its output line rather than stopping the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from services.dedup.engine import ArticleIn, Deduplicator, parse_time

logger = logging.getLogger(__name__)


def article_from_line(data: dict[str, Any]) -> ArticleIn:
    """An offline input line ``{id, url, title, text, source, published}`` as core input."""
    key = next((k for k in ("id", "article_id", "url") if data.get(k) not in (None, "")), "id")
    article_id = data.get(key)
    text = data.get("text")
    # A number is an id as good as its text (``{"id": 17}`` is ``"17"``); other types are refused
    # by name, since "no 'id'" would be wrong about a line that has one.
    if isinstance(article_id, int) and not isinstance(article_id, bool):
        article_id = str(article_id)
    if article_id is None or article_id == "":
        raise ValueError("line has no 'id' (or 'url')")
    if not isinstance(article_id, str):
        raise ValueError(
            f"{key!r} must be a string or an integer, not {type(article_id).__name__} "
            f"({json.dumps(article_id)})"
        )
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{article_id}: no 'text'")
    title = data.get("title") if isinstance(data.get("title"), str) else ""
    return ArticleIn(article_id, title or "", text, parse_time(data.get("published")))


def run_offline(
    lines: Iterable[str], engine: Deduplicator | None = None
) -> Iterator[dict[str, Any]]:
    engine = engine or Deduplicator()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        data: Any = None
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise ValueError("line is not a JSON object")
            article = article_from_line(data)
        except ValueError as exc:
            logger.warning("line %d not deduplicated: %s", number, exc)
            line_id = data.get("id") if isinstance(data, dict) else None
            yield {
                "id": line_id,
                "story_id": None,
                "copy_of": None,
                "error": f"line {number}: {exc}",
            }
            continue
        decision, _ = engine.decide(article)
        yield {"id": article.article_id, "story_id": decision.story_id, "copy_of": decision.copy_of}


def load_seed_articles(directory: Path) -> list[ArticleIn]:
    """The bundled seed texts (first non-empty line is the headline), in file order."""
    articles = []
    for path in sorted(directory.glob("*.txt")):
        text = path.read_text(encoding="utf-8").strip()
        title = text.split("\n", 1)[0].strip()
        article_id = hashlib.sha256(path.stem.encode()).hexdigest()[:16]
        articles.append(ArticleIn(article_id, title, text))
    return articles
