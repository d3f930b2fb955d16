"""The worker pool behind the coder: calls run in other processes, and a dead worker is replaced."""

from __future__ import annotations

import functools
import os

import pytest

from services.common.workers import WorkerDied, WorkerPool, worker_count


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
