"""Handing articles to the coding processes in batches (``services/coder/batches.py``)."""

from __future__ import annotations

import asyncio

import pytest

from services.coder.batches import Batches


class Recorder:
    """A ``run_batch`` that doubles numbers, remembers its batches and fails on request."""

    def __init__(self, *, poison: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.poison = poison
        self.release = asyncio.Event()

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        await self.release.wait()
        if self.poison in items:
            raise RuntimeError(f"cannot code {self.poison}")
        return [2 * item for item in items]


async def test_waiting_items_go_together_up_to_the_batch_size_and_get_their_own_results() -> None:
    run = Recorder()
    batches = Batches(run, lanes=1, batch_size=3)
    first = asyncio.create_task(batches.submit(1))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the lane took item 1 alone: nothing waits for a batch to fill
    assert run.batches == [[1]]
    rest = [asyncio.create_task(batches.submit(n)) for n in range(2, 7)]
    await asyncio.sleep(0)
    run.release.set()
    assert await first == 2
    assert await asyncio.gather(*rest) == [4, 6, 8, 10, 12]
    assert run.batches == [[1], [2, 3, 4], [5, 6]]
    await batches.stop()


async def test_each_lane_takes_its_own_batch() -> None:
    run = Recorder()
    batches = Batches(run, lanes=2, batch_size=2)
    tasks = [asyncio.create_task(batches.submit(n)) for n in range(1, 6)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert run.batches == [[1, 2], [3, 4]]  # both lanes busy at once
    run.release.set()
    assert await asyncio.gather(*tasks) == [2, 4, 6, 8, 10]
    assert run.batches[2:] == [[5]]
    await batches.stop()


async def test_a_failing_batch_is_run_again_one_item_at_a_time_and_only_the_culprit_fails() -> None:
    run = Recorder(poison=3)
    run.release.set()
    batches = Batches(run, lanes=1, batch_size=4)
    results = await asyncio.gather(
        *(batches.submit(n) for n in range(1, 5)), return_exceptions=True
    )
    assert results[:2] == [2, 4] and results[3] == 8
    assert isinstance(results[2], RuntimeError) and "cannot code 3" in str(results[2])
    assert run.batches == [[1, 2, 3, 4], [1], [2], [3], [4]]
    assert await batches.submit(5) == 10  # the lane keeps going
    await batches.stop()


async def test_a_wrong_number_of_results_fails_the_batch_instead_of_mismatching() -> None:
    async def short(items: list[int]) -> list[int]:
        return [0] if len(items) > 1 else [7 * items[0]]

    batches = Batches(short, lanes=1, batch_size=2)
    assert list(await asyncio.gather(batches.submit(1), batches.submit(2))) == [7, 14]
    await batches.stop()


async def test_stop_cancels_what_still_waits() -> None:
    run = Recorder()
    batches = Batches(run, lanes=1, batch_size=1)
    tasks = [asyncio.create_task(batches.submit(n)) for n in (1, 2)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    await batches.stop()
    for task in tasks:
        with pytest.raises(asyncio.CancelledError):
            await task


def test_lanes_and_batch_size_must_be_positive() -> None:
    async def run(items: list[int]) -> list[int]:
        return items

    with pytest.raises(ValueError, match="at least 1"):
        Batches(run, lanes=0, batch_size=1)
