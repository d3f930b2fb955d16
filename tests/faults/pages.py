"""The feed and page server of the fault suite: real article texts, and every way a site fails.

Articles are the 29 real news leads of ``shared/eval/neardup/news_pages_dev.jsonl`` (clusters of
copies and rewrites on the March 2025 Jeddah talks and the May 2025 India-Pakistan ceasefire)
and the five seed articles of ``wirewatch_tools/demo/seeds/`` (rendered by the demo server's
own code).
They are spread over several feeds so that the poller emits them over several seconds (one
request a second per host) and a kill can land in the middle.

Faults, switched on per case:

- *transient* faults on some real pages (a 5xx burst, a stall longer than the read timeout, a
  reset connection, each on the first requests only): the extractor must retry and still emit
  the article, so the event view stays that of the clean run;
- *permanent* faults on extra entries (always stalling, always resetting, always 500, an endless
  body, redirect chains that end at internal addresses or never end): each must end as exactly
  one dead letter;
- the same transient faults on the feeds themselves, which the poller must ride out.

Redirect targets such as 10.0.0.1 and 169.254.169.254 are refused by the fetchers' address
guard after resolution and before any connection, so nothing is ever sent there.

The server runs in its own thread and event loop so that the test's waits never stall it.
"""

from __future__ import annotations

import asyncio
import html
import json
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from aiohttp import web

from wirewatch_tools.demo.server import load_seed_articles, render_article_page

FEEDS = 6
# The first requests of these paths fail, later ones succeed (5xx burst, stall, reset).
TRANSIENT_PAGE_FAULTS = {"np012": "burst", "np019": "stall", "np045": "reset", "seed-2": "burst"}
TRANSIENT_FEED_FAULTS = {0: "burst", 1: "reset", 2: "stall"}
TRANSIENT_FAILURES = 2
# Each page takes a moment, as a real site does: a restarted extractor then works through a
# backlog over seconds, not in one burst that a second kill could not land inside.
PAGE_DELAY_SECONDS = 0.25
STALL_SECONDS = 30.0
ENDLESS_CHUNK = b"<p>" + b"endless " * 8192 + b"</p>\n"
# Entries that can never become an article, and the dead-letter reason each must get.
PERMANENT_FAULTS = {
    "stall": "timeout",
    "reset": "connection_error",
    "always-500": "http_status",
    "endless": "too_large",
    "to-10.0.0.1": "blocked_address",
    "to-169.254.169.254": "blocked_address",
    "to-ipv6-loopback": "blocked_address",
    "to-127.0.0.2": "blocked_address",
    "redirect-loop": "too_many_redirects",
}
REDIRECT_TARGETS = {
    "to-10.0.0.1": "http://10.0.0.1/",
    "to-169.254.169.254": "http://169.254.169.254/latest/meta-data/",
    "to-ipv6-loopback": "http://[::1]:{port}/a/np008.html",
    "to-127.0.0.2": "http://127.0.0.2:{port}/a/np008.html",
}
REDIRECT_HOPS = 3


@dataclass(frozen=True)
class Page:
    page_id: str
    title: str
    html: str
    published: datetime


def _topic_date(row: dict[str, object]) -> datetime:
    """The day of the row's topic (``T02_..._2025-03-11``) at noon UTC; a topic that names only
    a year (``..._2014``) is dated 1 July of it."""
    day = str(row["topic"]).rsplit("_", 1)[-1]
    if len(day) == 4:
        day = f"{day}-07-01"
    return datetime.fromisoformat(f"{day}T12:00:00+00:00")


def _render_lead(row: dict[str, object], url: str, published: datetime) -> str:
    title = str(row["title"]) or str(row["text"]).strip().split("\n", 1)[0][:120]
    paragraphs = [p.strip() for p in str(row["text"]).split("\n") if p.strip()]
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    outlet = html.escape(str(row["source"]).split(" ", 1)[0])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<link rel="canonical" href="{url}">
<meta property="og:site_name" content="{outlet}">
<meta property="article:published_time" content="{published.isoformat()}">
</head><body><main><article><h1>{html.escape(title)}</h1>
{body}
</article></main></body></html>
"""


def load_pages(eval_dir: Path, base_url: str) -> list[Page]:
    rows = [
        json.loads(line)
        for line in (eval_dir / "neardup" / "news_pages_dev.jsonl").open(encoding="utf-8")
    ]
    pages = []
    for row in rows:
        published = _topic_date(row)
        url = f"{base_url}/a/{row['id']}.html"
        pages.append(
            Page(row["id"], str(row["title"]), _render_lead(row, url, published), published)
        )
    for seed in load_seed_articles():
        page_id = f"seed-{seed.number}"
        text = render_article_page(seed, base_url).replace(
            f"/articles/{seed.number}.html", f"/a/{page_id}.html"
        )
        pages.append(Page(page_id, seed.title, text, seed.published))
    return pages


@dataclass
class FaultPlan:
    """What the server does wrong in the current case."""

    transient_pages: bool = False
    transient_feeds: bool = False
    permanent: bool = False


@dataclass
class FaultServer:
    eval_dir: Path
    host: str = "127.0.0.1"
    plan: FaultPlan = field(default_factory=FaultPlan)
    requests: Counter[str] = field(default_factory=Counter)
    port: int = 0
    pages: list[Page] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def feed_urls(self) -> list[str]:
        return [f"{self.base_url}/feed/{n}.xml" for n in range(FEEDS)]

    def permanent_fault_urls(self) -> dict[str, str]:
        """Fault-only entry URLs with the dead-letter reason each must end in."""
        return {
            f"{self.base_url}/fault/{name}.html": reason
            for name, reason in PERMANENT_FAULTS.items()
        }

    def set_plan(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.requests.clear()

    # ---- lifecycle (a thread with its own loop) ------------------------------------------

    def start(self) -> None:
        with socket.socket() as probe:
            probe.bind((self.host, 0))
            self.port = probe.getsockname()[1]
        self.pages = load_pages(self.eval_dir, self.base_url)
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self._thread.start()
        if not started.wait(15):
            raise RuntimeError("fault server did not start")

    def _serve(self, started: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/feed/{n}.xml", self.feed)
        app.router.add_get("/a/{page_id}.html", self.page)
        app.router.add_get("/fault/{name}.html", self.fault)
        app.router.add_get("/hop/{name}/{left}", self.hop)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self.host, self.port)
        self._loop.run_until_complete(site.start())
        started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(15)

    # ---- handlers ---------------------------------------------------------------------------

    def _count(self, request: web.Request) -> int:
        self.requests[request.path] += 1
        return self.requests[request.path]

    async def _fail(self, request: web.Request, how: str) -> web.StreamResponse:
        if how == "burst" or how == "always-500":
            return web.Response(status=503 if how == "burst" else 500, text="unavailable")
        if how == "stall":
            await asyncio.sleep(STALL_SECONDS)
            return web.Response(status=504, text="too late")
        if how == "reset":
            transport = request.transport
            assert transport is not None
            # Zero linger makes the close a TCP reset (RST) rather than an orderly FIN.
            transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            transport.abort()
            raise asyncio.CancelledError  # aiohttp's way for a handler whose client is gone
        raise AssertionError(f"unknown fault {how}")

    async def feed(self, request: web.Request) -> web.StreamResponse:
        number = int(request.match_info["n"])
        seen = self._count(request)
        how = TRANSIENT_FEED_FAULTS.get(number)
        if self.plan.transient_feeds and how is not None and seen <= TRANSIENT_FAILURES:
            return await self._fail(request, how)
        items = [page for i, page in enumerate(self.pages) if i % FEEDS == number]
        links = [
            (page.title or page.page_id, f"{self.base_url}/a/{page.page_id}.html", page.published)
            for page in items
        ]
        if self.plan.permanent and number == FEEDS - 1:
            fault_day = datetime(2025, 3, 11, tzinfo=UTC)
            links += [
                (url.rsplit("/", 1)[-1], url, fault_day) for url in self.permanent_fault_urls()
            ]
        body = "".join(
            f"<item><title>{html.escape(title)}</title><link>{link}</link>"
            f"<guid>{link}</guid><pubDate>{format_datetime(published)}</pubDate></item>"
            for title, link, published in links
        )
        xml = (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>fault suite feed {number}</title><link>{self.base_url}/</link>"
            f"<description>real leads</description>{body}</channel></rss>"
        )
        return web.Response(text=xml, content_type="application/rss+xml")

    async def page(self, request: web.Request) -> web.StreamResponse:
        page_id = request.match_info["page_id"]
        seen = self._count(request)
        how = TRANSIENT_PAGE_FAULTS.get(page_id)
        if self.plan.transient_pages and how is not None and seen <= TRANSIENT_FAILURES:
            return await self._fail(request, how)
        for page in self.pages:
            if page.page_id == page_id:
                await asyncio.sleep(PAGE_DELAY_SECONDS)
                return web.Response(text=page.html, content_type="text/html")
        raise web.HTTPNotFound()

    async def fault(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self._count(request)
        if name in ("stall", "reset", "always-500"):
            return await self._fail(request, name)
        if name == "endless":
            response = web.StreamResponse(headers={"Content-Type": "text/html"})
            await response.prepare(request)
            await response.write(b"<!DOCTYPE html><html><body>")
            while True:  # until the client hangs up at its size cap
                await response.write(ENDLESS_CHUNK)
        if name in REDIRECT_TARGETS or name == "redirect-loop":
            raise web.HTTPFound(f"/hop/{name}/{REDIRECT_HOPS}")
        raise web.HTTPNotFound()

    async def hop(self, request: web.Request) -> web.StreamResponse:
        name, left = request.match_info["name"], int(request.match_info["left"])
        self._count(request)
        if name == "redirect-loop":  # never arrives anywhere
            raise web.HTTPFound(f"/hop/{name}/{left + 1}")
        if left > 0:
            raise web.HTTPFound(f"/hop/{name}/{left - 1}")
        raise web.HTTPFound(REDIRECT_TARGETS[name].format(port=self.port))
