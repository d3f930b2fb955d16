"""The worker pool behind the coder: calls run in other processes, and a dead worker is replaced."""

from __future__ import annotations

import asyncio
import functools
import os
import select
import time

import pytest

from services.common.workers import WorkerDied, WorkerPool, WorkerTimedOut, worker_count


async def test_calls_run_in_worker_processes_and_a_dead_worker_is_replaced() -> None:
    pool = WorkerPool(2, preload=["os"])
    try:
        await pool.start_all(os.getpid)
        worker = await pool.run(os.getpid, what="pid")
        assert worker != os.getpid()
        first_executor = pool.executor
        with pytest.raises(WorkerDied, match="died twice"):
            await pool.run(functools.partial(os._exit, 3), what="a call that kills its worker")
        assert pool.executor is not first_executor
        assert await pool.run(os.getpid, what="pid") != os.getpid()
    finally:
        pool.shutdown()


async def test_an_exception_in_the_call_reaches_the_caller_and_the_pool_lives_on() -> None:
    pool = WorkerPool(1, preload=["os"])
    try:
        executor = pool.executor
        with pytest.raises(ValueError, match="invalid literal"):
            await pool.run(functools.partial(int, "not a number"), what="int")
        assert pool.executor is executor
        assert await pool.run(functools.partial(int, "7"), what="int") == 7
    finally:
        pool.shutdown()


def test_zero_workers_means_one_per_core() -> None:
    assert worker_count(0) == (os.cpu_count() or 1)
    assert worker_count(3) == 3


async def test_a_call_past_its_time_limit_is_abandoned_and_the_pool_replaced() -> None:
    """A worker stuck in a call (here: sleeping) is killed; other calls get a fresh pool."""
    pool = WorkerPool(2, preload=["time"])
    try:
        await pool.start_all(os.getpid)
        stuck = pool.executor
        # In flight on the other worker when the pool is killed: retried, not cancelled.
        wait_two_seconds = functools.partial(select.select, [], [], [], 2.0)
        other = asyncio.ensure_future(pool.run(wait_two_seconds, what="other"))
        started = time.monotonic()
        with pytest.raises(WorkerTimedOut, match="ran past 1 s"):
            await pool.run(functools.partial(time.sleep, 3600), what="stuck", timeout=1.0)
        assert time.monotonic() - started < 30
        assert pool.executor is not stuck
        assert await other == ([], [], [])
        assert await pool.run(os.getpid, what="pid") != os.getpid()
    finally:
        pool.shutdown()
