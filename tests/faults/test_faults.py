"""Fault injection: the whole pipeline as real processes on the s3-backed embedded broker.

A clean run gives the reference event view; each case then runs the same feeds on fresh topics
and groups with one kind of fault, drains, and checks the books exactly (see ``harness``):
nothing accepted is lost, no event is lost or counted twice, and the event view equals the
clean run's. Each case prints ``case=… accepted=… emitted=… dlq=… lost=0 duplicated=0``.

Cases (the scale-out ones are described in ``replicas``): ``kill -9`` of each service at
random points mid-stream, each followed by a restart; the broker stopped mid-stream and
restarted; poison messages (invalid JSON, wrong schema, huge) in every topic a service reads;
the page and feed server failing in every way (stalls, resets, 5xx bursts, endless bodies,
redirect chains to internal addresses); two replicas of each stage scaled up, killed and
restarted in turn mid-stream. ``make test-faults`` is the full suite: two kills per service,
a 30 s outage, every replica restarted. ``make test`` runs the same cases reduced: one kill per
service, a 10 s outage, one replica of each service restarted, without the cases in
``OPEN_FAILURES``.
``WIREWATCH_FAULTS_SEED`` replays the kill points of a run (each line prints its seed).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.common.kafka import make_producer
from services.common.settings import KafkaSettings, TopicNames
from services.poller.feeds import canonicalize_url
from tests.faults.conftest import SUMMARY, full_suite
from tests.faults.harness import Books, CasePipeline, EventView, ServiceProcess, account
from tests.faults.pages import (
    PERMANENT_FAULTS,
    TRANSIENT_PAGE_FAULTS,
    FaultPlan,
    FaultServer,
)
from tests.faults.replicas import (
    REPLICA_CASES,
    initial_replicas,
    joiners_work,
    kill_replicas,
    rolling_restart,
    scale_up,
)
from wirewatch_tools.broker import EmbeddedBroker

CASE_TIMEOUT = 300.0
FULL_OUTAGE_SECONDS = 30.0
REDUCED_OUTAGE_SECONDS = 10.0
# A "huge" poison message: under the producers' 4 MiB request cap, so the broker
# takes it, but too big to travel back whole, base64-encoded, inside a dead letter.
HUGE_BYTES = 3 * 1024 * 1024

CASES = [
    "kill-poller",
    "kill-extractor",
    "kill-dedup",
    "kill-coder",
    "broker-outage",
    "poison",
    "http-faults",
    *REPLICA_CASES,
]
# Cases known to fail now and then (README, Reliability): `make test-faults` runs them and fails
# on such runs until they are fixed; `make test` leaves them out meanwhile so that everyone's test
# run is not red by chance. None at the moment (kill-dedup's stall was fixed on 2026-11-29).
OPEN_FAILURES: frozenset[str] = frozenset()


def selected_cases() -> list[str]:
    return [case for case in CASES if full_suite() or case not in OPEN_FAILURES]


def kills_per_case() -> int:
    """The full suite kills each service twice (the second time while it catches up)."""
    return 2 if full_suite() else 1


def outage_seconds() -> float:
    return FULL_OUTAGE_SECONDS if full_suite() else REDUCED_OUTAGE_SECONDS


@dataclass(frozen=True)
class CleanRun:
    view: EventView
    event_keys: int  # distinct keys sent to the events topic (replaced ids included)
    articles: int


def feed_items(server: FaultServer) -> set[str]:
    urls = {canonicalize_url(f"{server.base_url}/a/{page.page_id}.html") for page in server.pages}
    return {url for url in urls if url}


def record(case: str, books: Books, extra: str = "") -> None:
    line = books.line(case) + (f" {extra}" if extra else "")
    SUMMARY.append(line)
    print(line)  # noqa: T201 - the per-case figure, also in the terminal summary


def assert_books(books: Books, pipeline: CasePipeline, clean: EventView | None) -> None:
    details = (
        f"lost entries {books.lost_entries[:5]}, lost articles {books.lost_articles[:5]}, "
        f"lost events {books.lost_events[:5]}, duplicated {books.duplicated_events[:5]}"
    )
    assert books.lost == 0 and books.duplicated == 0, f"{details}\n{pipeline.logs()}"
    if clean is not None:
        view = pipeline.collector.event_view(pipeline.names.topics.events)
        assert view == clean, f"event view differs from the clean run: {details}"


async def run_case(
    name: str,
    *,
    broker: EmbeddedBroker,
    server: FaultServer,
    workdir: Path,
    plan: FaultPlan | None = None,
    replicas: dict[str, int] | None = None,
) -> CasePipeline:
    server.set_plan(plan or FaultPlan())
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    pipeline = CasePipeline(
        name,
        kafka=kafka,
        feed_urls=server.feed_urls(),
        workdir=workdir / name,
        replicas=replicas,
    )
    await pipeline.start()
    return pipeline


@pytest.fixture(scope="session")
async def clean_run(
    faults_broker: EmbeddedBroker,
    fault_server: FaultServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> CleanRun:
    """The reference: the same feeds with no fault at all."""
    workdir = tmp_path_factory.mktemp("faults")
    items = feed_items(fault_server)
    pipeline = await run_case("clean", broker=faults_broker, server=fault_server, workdir=workdir)
    try:
        await pipeline.drain(items, timeout=CASE_TIMEOUT)
        books = account(pipeline.names, pipeline.collector, items, clean=None)
        assert books.lost == 0, f"the clean run lost {books.lost_entries} {books.lost_articles}"
        assert books.dlq == 0, books.dead_letter_reasons
        view = pipeline.collector.event_view(pipeline.names.topics.events)
        assert view, "the clean run coded no event: nothing to compare against"
        record("clean", books, f"events={len(view)}")
        return CleanRun(
            view=view,
            event_keys=len(pipeline.collector.keys(pipeline.names.topics.events)),
            articles=books.emitted,
        )
    finally:
        await pipeline.stop()


def progress_target(rng: random.Random, total: int) -> int:
    """A random point well inside the stream: between a fifth and three fifths of it."""
    return max(1, int(total * rng.uniform(0.2, 0.6)))


def kill_points(rng: random.Random, total: int, kills: int) -> list[int]:
    """``kills`` random points inside the stream, in order, apart from each other."""
    if kills == 1:
        return [progress_target(rng, total)]
    return [max(1, int(total * rng.uniform(0.15, 0.4))), int(total * rng.uniform(0.5, 0.8))]


def case_rng(name: str) -> tuple[random.Random, int]:
    seed = int(os.environ.get("WIREWATCH_FAULTS_SEED") or random.SystemRandom().randrange(10**6))
    return random.Random(f"{name}-{seed}"), seed  # noqa: S311 - kill points, not secrets


async def kill_mid_stream(
    pipeline: CasePipeline, service: str, rng: random.Random, clean: CleanRun, items: set[str]
) -> str:
    """SIGKILL ``service`` (process group) when its output reaches random points; restart it.

    Progress is counted in distinct keys, so what a restarted service sends again does not
    count twice."""
    t = pipeline.names.topics
    output, total = {
        "poller": (t.entries, len(items)),
        "extractor": (t.articles, len(items)),
        "dedup": (t.deduplicated, clean.articles),
        "coder": (t.events, clean.event_keys),
    }[service]
    reached: list[str] = []
    done = 0
    for point in kill_points(rng, total, kills_per_case()):
        # A later kill waits for the restarted service to have sent something again.
        target = max(point, done + 1)

        def has_reached(target: int = target) -> bool:
            return len(pipeline.collector.keys(output)) >= target

        await pipeline.wait_until(
            has_reached,
            timeout=CASE_TIMEOUT,
            what=f"{target} records on {output}",
        )
        done = len(pipeline.collector.keys(output))
        if not reached:
            assert done < total, (
                f"the kill of {service} came after its stream ended ({done}/{total})"
            )
        await pipeline.kill_and_restart(service)
        # A restarted service may clear its backlog in one burst before the second kill point:
        # that kill still happens (to a service that finished) and the line says so.
        reached.append(f"{done}/{total}" + (" (after the end)" if done >= total else ""))
    return f"killed_at={','.join(reached)}"


async def stop_broker_mid_stream(
    pipeline: CasePipeline, broker: EmbeddedBroker, rng: random.Random, items: set[str]
) -> str:
    """Stop Tansu (the S3 store keeps the data) for ``outage_seconds()``, then start it again on
    the same port, while the services keep running."""
    articles = pipeline.names.topics.articles
    target = progress_target(rng, len(items))
    await pipeline.wait_until(
        lambda: len(pipeline.collector.keys(articles)) >= target,
        timeout=CASE_TIMEOUT,
        what="articles",
    )
    done = len(pipeline.collector.keys(articles))
    assert done < len(items), "the outage came after the stream ended"
    await asyncio.to_thread(broker.stop_broker)
    started = time.monotonic()
    await asyncio.sleep(outage_seconds())
    await asyncio.to_thread(broker.start)
    return f"stopped_for={time.monotonic() - started:.0f}s at={done}/{len(items)}"


@pytest.mark.timeout(CASE_TIMEOUT * 3)
@pytest.mark.parametrize("case", selected_cases())
async def test_fault_case_loses_nothing_and_duplicates_no_event(
    case: str,
    clean_run: CleanRun,
    faults_broker: EmbeddedBroker,
    fault_server: FaultServer,
    tmp_path: Path,
) -> None:
    items = feed_items(fault_server)
    rng, seed = case_rng(case)
    plan = FaultPlan(transient_pages=True, transient_feeds=True, permanent=True)
    pipeline = await run_case(
        case,
        broker=faults_broker,
        server=fault_server,
        workdir=tmp_path,
        plan=plan if case == "http-faults" else None,
        replicas=initial_replicas(case) if case in REPLICA_CASES else None,
    )
    extra = f"seed={seed}"
    injected = 0
    joiners: list[ServiceProcess] = []
    try:
        if case == "kill-replica":
            t = pipeline.names.topics
            outputs = {
                "extractor": (t.articles, len(items)),
                "dedup": (t.deduplicated, clean_run.articles),
                "coder": (t.events, clean_run.event_keys),
            }
            extra += " " + await kill_replicas(pipeline, rng, outputs, CASE_TIMEOUT)
        elif case.startswith("kill-"):
            extra += " " + await kill_mid_stream(
                pipeline, case.removeprefix("kill-"), rng, clean_run, items
            )
        elif case == "broker-outage":
            extra += " " + await stop_broker_mid_stream(pipeline, faults_broker, rng, items)
        elif case == "poison":
            articles = pipeline.names.topics.articles
            target = progress_target(rng, len(items))
            await pipeline.wait_until(
                lambda: len(pipeline.collector.keys(articles)) >= target,
                timeout=CASE_TIMEOUT,
                what="articles",
            )
            injected = await inject_poison(pipeline)
        elif case == "scale-up":
            joined, joiners = await scale_up(pipeline, rng, len(items), CASE_TIMEOUT)
            extra += " " + joined
        elif case == "rolling-restart":
            extra += " " + await rolling_restart(pipeline, rng, len(items), CASE_TIMEOUT)
        await pipeline.drain(items, timeout=CASE_TIMEOUT, extra_entries=injected)
        if joiners:
            extra += " " + await joiners_work(joiners)
        books = account(pipeline.names, pipeline.collector, items, clean=clean_run.view)
        record(case, books, extra)
        assert_books(books, pipeline, clean_run.view)
        assert not pipeline.hidden_crashes(), "\n".join(pipeline.hidden_crashes())
        if case == "poison":
            check_poison_dead_letters(pipeline)
        if case == "http-faults":
            check_http_faults(fault_server, books)
        else:
            assert books.dlq == injected, books.dead_letter_reasons
    finally:
        codes = await pipeline.stop()
    crashed = {name: code for name, code in codes.items() if code not in (0, None)}
    assert not crashed, f"services did not stop cleanly: {crashed}"


POISON_KINDS = {
    "invalid-json": b"\xff{ not json",
    "wrong-schema": json.dumps({"schema": "article.v1", "hello": "world"}).encode(),
    "huge": json.dumps({"schema": "feed_entry.v1", "junk": "x" * HUGE_BYTES}).encode(),
}


def poison_targets(pipeline: CasePipeline) -> dict[str, str]:
    """Each topic a service reads, and the dead-letter topic its poison must end in."""
    t = pipeline.names.topics
    return {
        t.entries: TopicNames.dlq(t.entries),
        t.articles: TopicNames.dlq(t.articles),
        pipeline.names.window_topic: TopicNames.dlq(t.articles),
        t.deduplicated: TopicNames.dlq(t.deduplicated),
        pipeline.names.mentions_topic: TopicNames.dlq(pipeline.names.mentions_topic),
    }


async def inject_poison(pipeline: CasePipeline) -> int:
    producer = make_producer(pipeline.kafka)
    await producer.start()
    try:
        for topic in poison_targets(pipeline):
            for kind, value in POISON_KINDS.items():
                await producer.send_and_wait(topic, value, key=f"poison-{kind}-{topic}".encode())
    finally:
        await producer.stop()
    return len(POISON_KINDS)  # the entries topic's poison counts as accepted entries


def check_poison_dead_letters(pipeline: CasePipeline) -> None:
    c = pipeline.collector
    for topic, dlq in poison_targets(pipeline).items():
        letters = {
            key: letter for key, letter in c.objects(dlq) if key and key.startswith("poison-")
        }
        for kind in POISON_KINDS:
            key = f"poison-{kind}-{topic}"
            assert key in letters, f"no dead letter for {key} in {dlq}: {sorted(letters)}"


def check_http_faults(server: FaultServer, books: Books) -> None:
    expected: dict[str, str] = {}
    for url, reason in server.permanent_fault_urls().items():
        canonical = canonicalize_url(url)
        assert canonical is not None, f"{url} has no canonical form"
        expected[canonical] = reason
    got = {url: books.dead_letter_reasons.get(url) for url in expected}
    assert got == expected
    assert books.dlq == len(PERMANENT_FAULTS)
    for page_id in TRANSIENT_PAGE_FAULTS:
        assert server.requests[f"/a/{page_id}.html"] > 2, f"{page_id} was not retried"
