"""Articles waiting for a coding process, handed over several at a time.

Each coding process takes every waiting article up to a batch size in one call, and its
sentences are parsed together (``Coder.code_texts``): spaCy's cost per call has a large fixed
part, and so does sending a call to another process. Nothing waits for a batch to fill: a free
process takes what is there, so under light load a batch is one article and adds no delay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

RunBatch = Callable[[list[Item]], Awaitable[Sequence[Result]]]


class Batches(Generic[Item, Result]):
    """``submit(item)`` awaits the item's result from ``run_batch``, which ``lanes`` loops call
    concurrently with up to ``batch_size`` waiting items each.

    A batch that fails is run again one item at a time, so only the item at fault fails (with
    that exception) and the others get their results.
    """

    def __init__(self, run_batch: RunBatch[Item, Result], *, lanes: int, batch_size: int) -> None:
        if lanes < 1 or batch_size < 1:
            raise ValueError("lanes and batch_size must be at least 1")
        self.run_batch = run_batch
        self.lanes = lanes
        self.batch_size = batch_size
        self.waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._arrived = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []

    async def submit(self, item: Item) -> Result:
        if not self._loops:
            self._loops = [asyncio.create_task(self._lane()) for _ in range(self.lanes)]
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self.waiting.append((item, future))
        self._arrived.set()
        return await future

    async def stop(self) -> None:
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []
        for _, future in self.waiting:
            future.cancel()
        self.waiting.clear()

    async def _lane(self) -> None:
        while True:
            while not self.waiting:
                self._arrived.clear()
                await self._arrived.wait()
            batch = self.waiting[: self.batch_size]
            del self.waiting[: self.batch_size]
            await self._run(batch)

    async def _run(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self.run_batch([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for a batch of {len(batch)}")
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            logger.warning(
                "a batch of %d failed (%s: %s); running its items one at a time",
                len(batch),
                type(exc).__name__,
                exc,
            )
            for one in batch:
                await self._run([one])
            return
        for (_, future), result in zip(batch, results, strict=True):  # lengths checked above
            if not future.done():
                future.set_result(result)


def _settle(future: asyncio.Future[Result], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
