"""Worker processes for a service's CPU-bound step, so one service can use every core.

The pool's processes come from a fork server that has already imported the step's module, so a
new or replacement worker starts in a fraction of a second; a worker that dies (killed, out of
memory, a crash in native code) costs the call one retry on a fresh pool.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class WorkerDied(RuntimeError):
    """The worker process running a call died, and so did the one that retried it."""


def worker_count(configured: int) -> int:
    """``configured`` workers, or one per CPU core when it is 0."""
    return configured if configured > 0 else (os.cpu_count() or 1)


class WorkerPool:
    """A process pool that replaces itself when a worker dies."""

    def __init__(
        self,
        workers: int,
        *,
        preload: Sequence[str],
        initializer: Callable[..., None] | None = None,
        initargs: tuple[Any, ...] = (),
        start_method: str = "forkserver",
    ) -> None:
        self.workers = workers
        self._start_method = start_method
        self._preload = list(preload)
        self._initializer = initializer
        self._initargs = initargs
        self.executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context(self._start_method)
        if self._start_method == "forkserver":
            context.set_forkserver_preload(self._preload)
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=context,
            initializer=self._initializer,
            initargs=self._initargs,
        )

    async def run(self, call: Callable[[], T], *, what: str) -> T:
        """``call()`` in a worker; raises ``WorkerDied`` if the worker dies twice."""
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            executor = self.executor
            try:
                return await loop.run_in_executor(executor, call)
            except BrokenProcessPool:
                logger.error("a worker process died (attempt %d, %s)", attempt, what)
                if self.executor is executor:
                    self.replace()
        raise WorkerDied(f"the worker process died twice ({what})")

    async def start_all(self, call: Callable[[], Any]) -> None:
        """Run ``call`` once per worker, so that every process is up before the first real job."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self.executor, call) for _ in range(self.workers))
        )

    def replace(self) -> None:
        broken = self.executor
        self.executor = self._new_executor()
        broken.shutdown(wait=False, cancel_futures=True)

    def shutdown(self, *, wait: bool = True) -> None:
        self.executor.shutdown(wait=wait, cancel_futures=True)
