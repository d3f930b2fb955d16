"""The scale-out cases: two replicas of the extractor and of the coder, and two dedup workers
(the window topic has one partition, so one worker is active on it and the other holds its
standby), on the case's own topics and groups, with one poller.

- ``scale-up``: one replica of each starts the stream; a second replica of each joins mid-stream,
  so every group rebalances while records are in flight.
- ``kill-replica``: stage after stage, once the stage's own output is at a random point inside
  its stream, SIGKILL one of its two replicas (the busiest one; for dedup the worker active on
  the window) and never restart it: the other carries on.
- ``rolling-restart``: every process, the poller included, stopped with SIGTERM and started again
  in turn, the next one only once the last restarted is ready (``/readyz``), as a deploy does.
  ``make test`` restarts the first replica of each service only.

Each then drains and is checked like every fault case: lost=0, duplicated=0, the event view equal
to the clean run's.
"""

from __future__ import annotations

import asyncio
import random
import time

from tests.faults.conftest import full_suite
from tests.faults.harness import CasePipeline, ServiceProcess, counter_total, is_ready

REPLICA_CASES = ("scale-up", "kill-replica", "rolling-restart")
SCALED = ("extractor", "dedup", "coder")
READY_TIMEOUT = 120.0
# What shows a replica's share of the work: what it consumed; for dedup, the worker that decides
# (active on the window) is the one whose decisions count.
CONSUMED = "wirewatch_{}_messages_in_total"
WORK = {
    "extractor": "wirewatch_extractor_messages_in_total",
    "dedup": "wirewatch_dedup_articles_total",
    "coder": "wirewatch_coder_messages_in_total",
}


def initial_replicas(case: str) -> dict[str, int]:
    return {service: 1 if case == "scale-up" else 2 for service in SCALED}


async def wait_ready(pipeline: CasePipeline, process: ServiceProcess) -> float:
    """Seconds until ``process`` answers /readyz with 200."""
    started = time.monotonic()
    deadline = started + READY_TIMEOUT
    while not await is_ready(process):
        if not process.running:
            raise AssertionError(f"{process.name} exited before it was ready\n{pipeline.logs()}")
        if time.monotonic() > deadline:
            stall = await pipeline.stall_report()
            raise AssertionError(
                f"{process.name} not ready after {READY_TIMEOUT:.0f}s\n{stall}\n{pipeline.logs()}"
            )
        await asyncio.sleep(0.25)
    return time.monotonic() - started


async def reach_mid_stream(
    pipeline: CasePipeline, rng: random.Random, total: int, timeout: float
) -> str:
    """Wait until a random share (a fifth to three fifths) of the entries has an article."""
    articles = pipeline.names.topics.articles
    target = max(1, int(total * rng.uniform(0.2, 0.6)))
    await pipeline.wait_until(
        lambda: len(pipeline.collector.keys(articles)) >= target,
        timeout=timeout,
        what=f"{target} articles",
    )
    done = len(pipeline.collector.keys(articles))
    assert done < total, f"the fault came after the extractors' stream ended ({done}/{total})"
    return f"{done}/{total}"


async def work_done(process: ServiceProcess) -> float:
    return await counter_total(process, WORK[process.service])


async def scale_up(
    pipeline: CasePipeline, rng: random.Random, total: int, timeout: float
) -> tuple[str, list[ServiceProcess]]:
    at = await reach_mid_stream(pipeline, rng, total, timeout)
    joiners = [await pipeline.add_replica(service) for service in SCALED]
    for joiner in joiners:
        await wait_ready(pipeline, joiner)
    return f"joined_at={at}", joiners


async def kill_replicas(
    pipeline: CasePipeline, rng: random.Random, outputs: dict[str, tuple[str, int]], timeout: float
) -> str:
    """Stage after stage, once the stage's output (``outputs``: topic, records of the clean run)
    reaches a random point inside its stream, SIGKILL its busiest replica for good."""
    killed = []
    for service in SCALED:
        topic, total = outputs[service]
        target = max(1, int(total * rng.uniform(0.2, 0.6)))

        def reached(topic: str = topic, target: int = target) -> bool:
            return len(pipeline.collector.keys(topic)) >= target

        await pipeline.wait_until(reached, timeout=timeout, what=f"{target} records on {topic}")
        done = len(pipeline.collector.keys(topic))
        assert done < total, f"the kill of a {service} came after its stream ended ({done})"
        replicas = pipeline.replicas(service)
        work = [await work_done(replica) for replica in replicas]
        victim = replicas[work.index(max(work))]
        victim.retired = True
        await asyncio.to_thread(victim.kill)
        pipeline.kills.append(victim.name)
        killed.append(f"{victim.name}@{done}/{total}(did {max(work):.0f})")
    return "killed=" + ",".join(killed)


async def rolling_restart(
    pipeline: CasePipeline, rng: random.Random, total: int, timeout: float
) -> str:
    at = await reach_mid_stream(pipeline, rng, total, timeout)
    order = [
        replica
        for service in ("poller", *SCALED)
        for replica in pipeline.replicas(service)[: None if full_suite() else 1]
    ]
    started = time.monotonic()
    for replica in order:
        code = await asyncio.to_thread(replica.stop)
        assert code == 0, f"{replica.name} exited {code} on SIGTERM\n{replica.log_tail()}"
        replica.start()
        await wait_ready(pipeline, replica)
    articles = len(pipeline.collector.keys(pipeline.names.topics.articles))
    return (
        f"restarted={len(order)} from={at} to={articles}/{total} "
        f"took={time.monotonic() - started:.0f}s"
    )


async def joiners_work(joiners: list[ServiceProcess]) -> str:
    """What the replicas that joined consumed: a scale-up whose joiners did nothing tested
    nothing (a dedup joiner usually takes articles partitions and the window's standby)."""
    done = {
        joiner.name: await counter_total(joiner, CONSUMED.format(joiner.service))
        for joiner in joiners
    }
    assert sum(done.values()) > 0, f"no joiner got any work: {done}"
    return "joiners_consumed=" + ",".join(f"{name}:{n:.0f}" for name, n in done.items())
