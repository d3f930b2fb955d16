"""Graceful stop on SIGTERM/SIGINT: the loop finishes its batch, commits, then exits."""

from __future__ import annotations

import asyncio
import logging
import signal

logger = logging.getLogger(__name__)


class GracefulStop:
    """An event set by SIGTERM or SIGINT; long-running loops check ``stopping`` between batches."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if not self.event.is_set():
            logger.info("received %s: finishing the current batch, then stopping", sig.name)
        self.event.set()

    def request(self) -> None:
        self.event.set()

    @property
    def stopping(self) -> bool:
        return self.event.is_set()

    async def wait(self, timeout: float | None = None) -> bool:
        """Sleep until stop is requested or ``timeout`` passes; True when stopping."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
        except TimeoutError:
            return False
        return True
