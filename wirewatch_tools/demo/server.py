"""A local feed server made from the five seed articles, so `make run` needs no internet.

Serves ``/feed.xml`` (RSS 2.0) and ``/articles/<n>.html`` on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import html
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from importlib import resources

from aiohttp import web

from services.common.metrics import bound_port

logger = logging.getLogger(__name__)

SEED_PUBLISHED = datetime(2025, 3, 17, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class SeedArticle:
    number: int
    slug: str
    title: str
    paragraphs: tuple[str, ...]
    outlet: str
    published: datetime


def load_seed_articles() -> list[SeedArticle]:
    """The seed texts in file order; the headline is the first line that carries words."""
    folder = resources.files("wirewatch_tools.demo") / "seeds"
    files = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".txt")),
        key=lambda entry: entry.name,
    )
    articles = []
    for number, entry in enumerate(files):
        lines = [line.strip() for line in entry.read_text(encoding="utf-8").splitlines()]
        meaningful = [line for line in lines if len(line) > 3]
        title = meaningful[0]
        body = tuple(line for line in meaningful[1:] if line != title)
        articles.append(
            SeedArticle(
                number=number,
                slug=entry.name.removesuffix(".txt"),
                title=title,
                paragraphs=body,
                outlet=f"Seed Outlet {chr(ord('A') + number)}",
                published=SEED_PUBLISHED + timedelta(minutes=37 * number),
            )
        )
    return articles


def render_article_page(article: SeedArticle, base_url: str) -> str:
    url = f"{base_url}/articles/{article.number}.html"
    paragraphs = "\n".join(f"<p>{html.escape(p)}</p>" for p in article.paragraphs)
    title = html.escape(article.title)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{title} | {html.escape(article.outlet)}</title>
<link rel="canonical" href="{url}">
<meta property="og:title" content="{title}">
<meta property="og:site_name" content="{html.escape(article.outlet)}">
<meta property="article:published_time" content="{article.published.isoformat()}">
<meta name="author" content="{html.escape(article.outlet)} staff">
</head><body>
<header><nav><a href="/">Home</a> | <a href="/world">World</a> |
<a href="/politics">Politics</a></nav></header>
<main><article>
<h1>{title}</h1>
<p class="byline">By {html.escape(article.outlet)} staff, {article.published:%d %B %Y}</p>
{paragraphs}
</article></main>
<footer><p>&copy; {html.escape(article.outlet)}. Demo page served by wirewatch.</p></footer>
</body></html>
"""


def render_feed(articles: list[SeedArticle], base_url: str) -> str:
    items = []
    for article in articles:
        url = f"{base_url}/articles/{article.number}.html"
        summary = html.escape(article.paragraphs[0] if article.paragraphs else article.title)
        items.append(
            f"""<item><title>{html.escape(article.title)}</title><link>{url}?utm_source=rss</link>
<guid isPermaLink="false">wirewatch-demo-{article.slug}</guid>
<pubDate>{format_datetime(article.published)}</pubDate>
<description>{summary}</description></item>"""
        )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>wirewatch demo feed</title><link>{base_url}/</link>
<description>The five seed articles: one story, five outlets.</description>
<ttl>1</ttl>
{"".join(items)}
</channel></rss>
"""


def make_app(base_url_holder: list[str]) -> web.Application:
    articles = load_seed_articles()

    async def feed(_: web.Request) -> web.Response:
        return web.Response(
            text=render_feed(articles, base_url_holder[0]), content_type="application/rss+xml"
        )

    async def page(request: web.Request) -> web.Response:
        try:
            article = articles[int(request.match_info["number"])]
        except (ValueError, IndexError):
            raise web.HTTPNotFound() from None
        return web.Response(
            text=render_article_page(article, base_url_holder[0]), content_type="text/html"
        )

    app = web.Application()
    app.router.add_get("/feed.xml", feed)
    app.router.add_get("/articles/{number}.html", page)
    return app


async def serve(
    host: str = "127.0.0.1",
    port: int = 8008,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    holder = [f"http://{host}:{port}"]
    runner = web.AppRunner(make_app(holder), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    if port == 0:
        holder[0] = f"http://{host}:{bound_port(site)}"
    logger.info("demo feed at %s/feed.xml", holder[0])
    if ready is not None:
        ready.set()
    try:
        await (stop.wait() if stop is not None else asyncio.Event().wait())
    finally:
        await runner.cleanup()
