"""Integration fixtures: a real HTTP server on 127.0.0.1 serving real files."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.poller_helpers import FeedServer


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        return


@pytest.fixture
def serve_directory() -> Iterator[Callable[[Path], str]]:
    """Call with a directory; returns the base URL of a static server on 127.0.0.1 for it."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(directory: Path) -> str:
        handler = functools.partial(QuietHandler, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


from tests.integration.prometheus import prometheus  # noqa: E402, F401 - the Prometheus fixture


@pytest.fixture
async def feed_server() -> AsyncIterator[FeedServer]:
    """A feed server on 127.0.0.1 for the poller's tests."""
    server = FeedServer()
    await server.start()
    yield server
    await server.stop()
