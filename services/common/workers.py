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


class WorkerTimedOut(RuntimeError):
    """A call ran past its time limit; its worker was killed (with the pool's others)."""


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

    async def run(self, call: Callable[[], T], *, what: str, timeout: float | None = None) -> T:
        """``call()`` in a worker; raises ``WorkerDied`` if the worker dies twice.

        A call still running after ``timeout`` seconds raises ``WorkerTimedOut``: a worker stuck
        in native code cannot be interrupted, so the pool's processes are killed and replaced
        (calls of the other workers then get their retry on the fresh pool).
        """
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            executor = self.executor
            try:
                return await asyncio.wait_for(loop.run_in_executor(executor, call), timeout)
            except TimeoutError:
                logger.error("%s ran past %.0f s; replacing the worker processes", what, timeout)
                if self.executor is executor:
                    self.replace(kill=True)
                raise WorkerTimedOut(f"{what} ran past {timeout:.0f} s") from None
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

    def replace(self, *, kill: bool = False) -> None:
        broken = self.executor
        self.executor = self._new_executor()
        if kill:
            # The executor has no public way to stop a busy worker; its process table does.
            for process in list(broken._processes.values()):  # noqa: SLF001
                process.kill()
        # After a kill, calls still queued must fail as BrokenProcessPool (and be retried on
        # the new pool), not be cancelled before the executor notices its workers are gone.
        broken.shutdown(wait=False, cancel_futures=not kill)

    def shutdown(self, *, wait: bool = True) -> None:
        self.executor.shutdown(wait=wait, cancel_futures=True)
