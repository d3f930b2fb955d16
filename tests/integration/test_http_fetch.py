"""Safe fetching against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from services.common.http import (
    BlockedAddressError,
    FetchSettings,
    FetchTimeoutError,
    HostPoliteness,
    TooLargeError,
    TooManyRedirectsError,
    fetch,
    make_session,
)


@pytest.fixture
async def local_server() -> AsyncIterator[str]:
    async def page(_: web.Request) -> web.Response:
        return web.Response(text="<html><body>hello</body></html>", content_type="text/html")

    async def endless(_: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        await _prepare(response, _)
        chunk = b"x" * 65536
        for _n in range(10_000):
            await response.write(chunk)
        return response

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(f"/loop?n={int(request.query.get('n', 0)) + 1}")

    async def moved(_: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("/page")

    async def slow_hops(request: web.Request) -> web.Response:
        """``hops`` redirects, each answered after ``delay`` seconds, then the page."""
        await asyncio.sleep(float(request.query["delay"]))
        hops = int(request.query["hops"])
        if hops == 0:
            return await page(request)
        raise web.HTTPFound(f"/slow?hops={hops - 1}&delay={request.query['delay']}")

    app = web.Application()
    app.router.add_get("/page", page)
    app.router.add_get("/endless", endless)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/loop", loop)
    app.router.add_get("/moved", moved)
    app.router.add_get("/slow", slow_hops)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def _prepare(response: web.StreamResponse, request: web.Request) -> None:
    await response.prepare(request)


LOCAL = FetchSettings(allowed_networks="127.0.0.1/32", max_bytes=100_000)


async def test_allowed_local_page_is_fetched(local_server: str) -> None:
    async with make_session(LOCAL) as session:
        result = await fetch(session, f"{local_server}/page", settings=LOCAL)
    assert result.status == 200 and b"hello" in result.body


async def test_loopback_is_refused_without_the_allow_list(local_server: str) -> None:
    closed = FetchSettings()
    async with make_session(closed) as session:
        with pytest.raises(BlockedAddressError):
            await fetch(session, f"{local_server}/page", settings=closed)
        port = local_server.rsplit(":", 1)[1]
        with pytest.raises(BlockedAddressError):
            await fetch(session, f"http://localhost:{port}/page", settings=closed)


@pytest.mark.parametrize(
    "target", ["http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/", "http://[::1]/"]
)
async def test_redirects_to_internal_addresses_are_refused(local_server: str, target: str) -> None:
    async with make_session(LOCAL) as session:
        with pytest.raises(BlockedAddressError):
            await fetch(session, f"{local_server}/redirect?to={target}", settings=LOCAL)


async def test_endless_body_is_cut_at_the_cap(local_server: str) -> None:
    async with make_session(LOCAL) as session:
        with pytest.raises(TooLargeError):
            await asyncio.wait_for(fetch(session, f"{local_server}/endless", settings=LOCAL), 30)


async def test_redirect_loops_stop_at_the_limit(local_server: str) -> None:
    async with make_session(LOCAL) as session:
        with pytest.raises(TooManyRedirectsError):
            await fetch(session, f"{local_server}/loop", settings=LOCAL)


async def test_permanent_redirect_reports_the_new_location(local_server: str) -> None:
    async with make_session(LOCAL) as session:
        result = await fetch(session, f"{local_server}/moved", settings=LOCAL)
    assert result.status == 200
    assert result.permanent_redirect_target == f"{local_server}/page"


async def test_the_time_limit_covers_a_whole_redirect_chain(local_server: str) -> None:
    """Four hops of 0.4 s each stay under a 1 s limit one by one, not together."""
    settings = FetchSettings(allowed_networks="127.0.0.1/32", total_timeout_seconds=1.0)
    async with make_session(settings) as session:
        with pytest.raises(FetchTimeoutError, match="on the network") as caught:
            await fetch(session, f"{local_server}/slow?hops=3&delay=0.4", settings=settings)
        assert caught.value.reason == "timeout"
        quick = await fetch(session, f"{local_server}/slow?hops=3&delay=0.1", settings=settings)
        assert quick.status == 200 and len(quick.redirects) == 3


async def test_waiting_for_a_hosts_turn_does_not_count_against_the_time_limit(
    local_server: str,
) -> None:
    settings = FetchSettings(allowed_networks="127.0.0.1/32", total_timeout_seconds=1.0)
    politeness = HostPoliteness(global_concurrency=4, per_host_concurrency=1, min_interval=0.4)
    async with make_session(settings) as session:
        started = asyncio.get_running_loop().time()
        result = await fetch(
            session,
            f"{local_server}/slow?hops=3&delay=0.05",
            settings=settings,
            politeness=politeness,
        )
        waited = asyncio.get_running_loop().time() - started
    assert result.status == 200 and len(result.redirects) == 3
    assert waited > settings.total_timeout_seconds  # four starts 0.4 s apart
