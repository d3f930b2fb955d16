"""Safe fetching against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from services.common.http import (
    BlockedAddressError,
    FetchSettings,
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

    app = web.Application()
    app.router.add_get("/page", page)
    app.router.add_get("/endless", endless)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/loop", loop)
    app.router.add_get("/moved", moved)
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
