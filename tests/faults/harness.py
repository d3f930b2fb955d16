"""The fault suite's pipeline: every service a real process on the s3-backed embedded broker.

One :class:`CasePipeline` per case, on topics, groups and app ids of its own, with the
environment ``wirewatch run`` gives the services. A :class:`Collector` reads every output topic
from the start while the case runs; :func:`account` then checks the books exactly:

- every entry accepted into the entries topic (the feed items, plus anything injected) has an
  article or a dead letter, and every feed item was accepted;
- every article has a dedup result or a dead letter;
- the compacted event view (latest value per key of the events topic, tombstones deleting
  keys) equals the clean run's: the same event ids, each with the same set of article ids.

Fields that depend on the wall clock or on arrival order (``first_seen``/``last_seen``, the
order of evidence, story ids, votes between tied codes) are not part of the view; which article
counts in which event is, and it is what losing or duplicating would change.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from services.common.kafka import end_offsets, make_consumer
from services.common.settings import KafkaSettings, TopicNames
from services.common.topics import TopicSpec, ensure_topics, pipeline_topics

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("poller", "extractor", "dedup", "coder")
EventView = dict[str, tuple[str, ...]]
FAUST_SERVICES = ("dedup", "coder")


@dataclass(frozen=True)
class CaseNames:
    """Everything a case owns on the broker."""

    topics: TopicNames
    poller_state: str
    extractor_group: str
    dedup_app: str
    coder_app: str

    @classmethod
    def fresh(cls, case: str) -> CaseNames:
        base = f"faults-{case}-{uuid.uuid4().hex[:8]}"
        topics = TopicNames(
            entries=f"{base}-entries",
            articles=f"{base}-articles",
            deduplicated=f"{base}-deduplicated",
            events=f"{base}-events",
            failed_articles=f"{base}-articles-failed",
        )
        return cls(
            topics, f"{base}-poller-state", f"{base}-extractor", f"{base}-dedup", f"{base}-coder"
        )

    @property
    def window_topic(self) -> str:
        return f"{self.dedup_app}-window"

    @property
    def mentions_topic(self) -> str:
        return f"{self.coder_app}-mentions"

    @property
    def dead_letter_topics(self) -> list[str]:
        t = self.topics
        return [
            TopicNames.dlq(t.entries),
            t.failed_articles,
            TopicNames.dlq(t.articles),
            TopicNames.dlq(t.deduplicated),
        ]

    @property
    def collected_topics(self) -> list[str]:
        t = self.topics
        mentions_dlq = TopicNames.dlq(self.mentions_topic)
        return [
            t.entries,
            t.articles,
            t.deduplicated,
            t.events,
            *self.dead_letter_topics,
            mentions_dlq,
        ]


@dataclass
class ServiceProcess:
    """``python -m services.<service>`` in its own session, so a kill takes its workers too.

    ``name`` is the replica's (``coder``, ``coder-2``); ``service`` the module it runs."""

    name: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    service: str = ""
    # Killed on purpose and not restarted: its exit is no crash.
    retired: bool = False

    def __post_init__(self) -> None:
        self.service = self.service or self.name

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.starts + 1} at {time.time():.3f} =====\n".encode())
            self.process = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.service}"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole process group (the extractor's worker processes included)."""
        assert self.process is not None
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(15)

    def stop(self, timeout: float = 30) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        try:  # leftovers of the group (workers) go too
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return self.process.returncode

    def log_tail(self, size: int = 4000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-size:]

    def metrics_url(self) -> str | None:
        """Where the current run serves /metrics and /readyz, as its log says (port 0 picks)."""
        if not self.log_path.exists():
            return None
        text = self.log_path.read_text(errors="replace")
        current = text[text.rfind("===== start ") :]
        ports = re.findall(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", current)
        return f"http://127.0.0.1:{ports[-1]}" if ports else None


@dataclass
class Collector:
    """Reads every output topic of a case from the beginning, in the background."""

    kafka: KafkaSettings
    topics: list[str]
    records: dict[str, list[tuple[bytes | None, bytes | None]]] = field(default_factory=dict)
    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.records = {topic: [] for topic in self.topics}
        self._consumer = make_consumer(self.kafka, *self.topics, group_id=None)
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=200)
            for partition, records in batch.items():
                sink = self.records[partition.topic]
                sink.extend((record.key, record.value) for record in records)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._consumer is not None:
            await self._consumer.stop()

    def check_running(self) -> None:
        """A collector that stopped reading would make a case look stalled: say so instead."""
        if self._task is not None and self._task.done():
            error = self._task.exception() if not self._task.cancelled() else None
            raise AssertionError(f"the collector stopped reading the case's topics: {error!r}")

    def keys(self, topic: str) -> set[bytes]:
        return {key for key, _ in self.records[topic] if key is not None}

    def count(self, topic: str) -> int:
        return len(self.records[topic])

    def objects(self, topic: str) -> list[tuple[str | None, dict[str, Any]]]:
        """(key, JSON object) of every record that is one; injected poison is skipped."""
        found = []
        for key, value in self.records[topic]:
            try:
                decoded = json.loads(value) if value is not None else None
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(decoded, dict):
                found.append((key.decode() if key is not None else None, decoded))
        return found

    def ids(self, topic: str, field: str) -> set[str]:
        return {str(obj[field]) for _, obj in self.objects(topic) if field in obj}

    def event_view(self, topic: str) -> EventView:
        latest: dict[str, dict[str, Any] | None] = {}
        for key, value in self.records[topic]:
            assert key is not None, "an event without a key"
            latest[key.decode()] = json.loads(value) if value is not None else None
        return {
            event_id: tuple(sorted(event["article_ids"]))
            for event_id, event in latest.items()
            if event is not None
        }


@dataclass
class Books:
    """What a case's run adds up to; ``lost`` and ``duplicated`` must be 0."""

    accepted: int
    emitted: int
    dlq: int
    lost_entries: list[str]
    lost_articles: list[str]
    lost_events: list[str]
    duplicated_events: list[str]
    dead_letter_reasons: dict[str, str]

    @property
    def lost(self) -> int:
        return len(self.lost_entries) + len(self.lost_articles) + len(self.lost_events)

    @property
    def duplicated(self) -> int:
        return len(self.duplicated_events)

    def line(self, case: str) -> str:
        return (
            f"case={case} accepted={self.accepted} emitted={self.emitted} dlq={self.dlq} "
            f"lost={self.lost} duplicated={self.duplicated}"
        )


def account(
    names: CaseNames, collected: Collector, feed_items: set[str], clean: EventView | None
) -> Books:
    t = names.topics
    accepted = {key.decode() for key in collected.keys(t.entries)}
    emitted = {key.decode() for key in collected.keys(t.articles)} & accepted
    reasons: dict[str, str] = {}
    for topic in (TopicNames.dlq(t.entries), t.failed_articles):
        for key, letter in collected.objects(topic):
            if key is not None:
                reasons[key] = letter["reason"]
    lost_entries = sorted((accepted - emitted - set(reasons)) | (feed_items - accepted))
    article_keys = {
        key: article["article_id"]
        for key, article in collected.objects(t.articles)
        if key is not None and "article_id" in article
    }
    decided = collected.ids(t.deduplicated, "article_id")
    refused = {key.decode() for key in collected.keys(TopicNames.dlq(t.articles))}
    lost_articles = sorted(
        article_id
        for key, article_id in article_keys.items()
        if article_id not in decided and key not in refused
    )
    view = collected.event_view(t.events)
    lost_events: list[str] = []
    duplicated: list[str] = []
    if clean is not None:
        for event_id, articles in clean.items():
            have = view.get(event_id, ())
            lost_events += [f"{event_id}/{a}" for a in articles if a not in have]
        for event_id, articles in view.items():
            want = clean.get(event_id, ())
            duplicated += [f"{event_id}/{a}" for a in articles if a not in want]
    return Books(
        accepted=len(accepted),
        emitted=len(emitted),
        dlq=len(reasons.keys() & accepted),
        lost_entries=lost_entries,
        lost_articles=lost_articles,
        lost_events=lost_events,
        duplicated_events=duplicated,
        dead_letter_reasons=reasons,
    )


class CasePipeline:
    """The services of one case, the feeds they read, and the collector watching them.

    One process a service unless ``replicas`` asks for more; a replica after the first is named
    ``<service>-<n>`` and has a data directory of its own, as a second pod would."""

    def __init__(
        self,
        case: str,
        *,
        kafka: KafkaSettings,
        feed_urls: list[str],
        workdir: Path,
        replicas: dict[str, int] | None = None,
    ) -> None:
        self.case = case
        self.kafka = kafka
        self.names = CaseNames.fresh(case)
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        feeds_file = workdir / "feeds.yaml"
        feeds_file.write_text(
            "feeds:\n"
            + "".join(f"  - url: {url}\n    name: feed-{n}\n" for n, url in enumerate(feed_urls))
        )
        self.collector = Collector(kafka, self.names.collected_topics)
        t = self.names.topics
        self._common = dict(
            os.environ,
            KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap_servers,
            WIREWATCH_TOPIC_ENTRIES=t.entries,
            WIREWATCH_TOPIC_ARTICLES=t.articles,
            WIREWATCH_TOPIC_DEDUPLICATED=t.deduplicated,
            WIREWATCH_TOPIC_EVENTS=t.events,
            WIREWATCH_TOPIC_FAILED_ARTICLES=t.failed_articles,
            WIREWATCH_FETCH_ALLOWED_NETWORKS="127.0.0.1/32",
            WIREWATCH_FETCH_CONNECT_TIMEOUT_SECONDS="2",
            WIREWATCH_FETCH_READ_TIMEOUT_SECONDS="2",
            WIREWATCH_FETCH_TOTAL_TIMEOUT_SECONDS="5",
            WIREWATCH_FETCH_MAX_BYTES="1000000",
        )
        self._per_service = {
            "poller": {
                "WIREWATCH_POLLER_FEEDS": str(feeds_file),
                "WIREWATCH_POLLER_STATE_TOPIC": self.names.poller_state,
                # Failed feeds are retried after seconds, not minutes.
                "WIREWATCH_POLLER_MIN_INTERVAL_SECONDS": "2",
                # A killed poller's successor waits this long for its lease to lapse.
                "WIREWATCH_POLLER_LEASE_SECONDS": "6",
            },
            "extractor": {
                "WIREWATCH_EXTRACTOR_GROUP_ID": self.names.extractor_group,
                "WIREWATCH_EXTRACTOR_WORKERS": "1",
                "WIREWATCH_EXTRACTOR_RETRY_BASE_SECONDS": "0.5",
                "WIREWATCH_FETCH_MIN_HOST_INTERVAL_SECONDS": "0",
                "WIREWATCH_FETCH_PER_HOST_CONCURRENCY": "2",
            },
            # Faust's rebalance and recovery messages are what a stalled case needs.
            "dedup": {
                "WIREWATCH_DEDUP_APP_ID": self.names.dedup_app,
                "WIREWATCH_LIBRARY_LOG_LEVEL": "INFO",
            },
            "coder": {
                "WIREWATCH_CODER_APP_ID": self.names.coder_app,
                "WIREWATCH_LIBRARY_LOG_LEVEL": "INFO",
            },
        }
        self.services: dict[str, ServiceProcess] = {}
        for service in SERVICES:
            for _ in range((replicas or {}).get(service, 1)):
                self._add(service)
        self.kills: list[str] = []

    def _add(self, service: str) -> ServiceProcess:
        count = sum(1 for s in self.services.values() if s.service == service)
        name = service if count == 0 else f"{service}-{count + 1}"
        data = self.workdir / name
        env = {
            **self._common,
            **self._per_service[service],
            "WIREWATCH_FAUST_DATADIR": str(data / "faust"),
        }
        if service == "coder":
            env["WIREWATCH_CODER_DATA_DIR"] = str(data / "coder")
        process = ServiceProcess(name, env, self.workdir / f"{name}.log", service=service)
        self.services[name] = process
        return process

    def replicas(self, service: str) -> list[ServiceProcess]:
        return [s for s in self.services.values() if s.service == service and not s.retired]

    async def add_replica(self, service: str) -> ServiceProcess:
        """Start one more replica of ``service``, as scaling a deployment up does."""
        process = self._add(service)
        process.start()
        return process

    async def start(self) -> None:
        specs = pipeline_topics(self.names.topics)
        specs.append(TopicSpec(self.names.window_topic, 1))
        specs.append(TopicSpec(self.names.mentions_topic, 4))
        specs.append(TopicSpec(TopicNames.dlq(self.names.mentions_topic), 1))
        await ensure_topics(self.kafka, specs)
        await self.collector.start()
        for service in self.services.values():
            service.start()

    async def stop(self) -> dict[str, int | None]:
        """Stop every replica; the exit codes of those not killed on purpose."""
        codes = {name: await asyncio.to_thread(s.stop) for name, s in self.services.items()}
        await self.collector.stop()
        return {name: code for name, code in codes.items() if not self.services[name].retired}

    def crashed(self) -> list[str]:
        return [
            name
            for name, s in self.services.items()
            if s.process is not None and not s.running and not s.retired
        ]

    def hidden_crashes(self) -> list[str]:
        """Crashes the processes survived: a Faust agent restarted by its supervisor, a task
        that died. Each one dropped whatever it was doing, so each one is a finding."""
        found = []
        for name, service in self.services.items():
            if service.log_path.exists():
                for line in service.log_path.read_text(errors="replace").splitlines():
                    if "Crashed reason=" in line:
                        found.append(f"{name}: {line[:300]}")
        return found

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{s.log_tail()}" for name, s in self.services.items())

    async def stall_report(self) -> str:
        """Where a case that stopped moving stands: each consumer group's committed offset
        against the end of every partition it reads; and each Faust worker writes every thread's
        stack and asyncio task to its log (mode's worker does that on SIGUSR1), and its consumer's
        partition sets and positions (SIGUSR2, ``services.common.faust_app``)."""
        for service in self.services.values():
            if service.service in FAUST_SERVICES and service.running:
                assert service.process is not None
                service.process.send_signal(signal.SIGUSR2)  # the consumer's state
                service.process.send_signal(signal.SIGUSR1)
        t = self.names.topics
        groups = {
            self.names.extractor_group: [t.entries],
            self.names.dedup_app: [t.articles, self.names.window_topic],
            self.names.coder_app: [t.deduplicated, self.names.mentions_topic],
        }
        lines = ["stalled; committed/end per partition:"]
        for group, topics in groups.items():
            try:
                positions = await self.group_positions(group, topics)
            except Exception as exc:  # noqa: BLE001 - a report, not a check
                lines.append(f"  {group}: unavailable ({exc!r})")
                continue
            lines.append(
                f"  {group}: "
                + ", ".join(f"{tp}={done}/{end}" for tp, (done, end) in positions.items())
            )
        await asyncio.sleep(2)  # the task dumps reach the logs
        return "\n".join(lines)

    async def kill_and_restart(self, name: str) -> None:
        service = self.services[name]
        await asyncio.to_thread(service.kill)
        self.kills.append(name)
        service.start()

    async def wait_until(self, condition: Callable[[], bool], *, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if crashed := self.crashed():
                raise AssertionError(f"{crashed} exited while waiting for {what}\n{self.logs()}")
            if time.monotonic() > deadline:
                stall = await self.stall_report()
                raise AssertionError(
                    f"timed out after {timeout:.0f}s waiting for {what}\n{stall}\n{self.logs()}"
                )
            await asyncio.sleep(0.1)

    async def group_caught_up(self, group: str, topics: list[str]) -> bool:
        """The group has committed every record of ``topics``."""
        positions = await self.group_positions(group, topics)
        return all(done >= end for done, end in positions.values())

    async def group_positions(self, group: str, topics: list[str]) -> dict[str, tuple[int, int]]:
        """``topic:partition`` -> (the group's committed offset, the partition's end)."""
        admin = AIOKafkaAdminClient(**self.kafka.client_options())
        consumer = make_consumer(self.kafka, group_id=None)
        await admin.start()
        await consumer.start()
        try:
            partitions = [
                TopicPartition(topic, p)
                for topic in topics
                for p in sorted(
                    consumer.partitions_for_topic(topic) or await _partitions(consumer, topic)
                )
            ]
            ends = await end_offsets(consumer, partitions)
            committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
            positions = {}
            for tp in partitions:
                meta = committed.get(tp)
                done = meta.offset if meta is not None and meta.offset >= 0 else 0
                positions[f"{tp.topic}:{tp.partition}"] = (done, ends.get(tp, 0))
            return positions
        finally:
            await consumer.stop()
            await admin.close()

    async def drained(self, feed_items: set[str], extra_entries: int = 0) -> bool:
        return await self.not_drained_because(feed_items, extra_entries) is None

    async def not_drained_because(self, feed_items: set[str], extra_entries: int = 0) -> str | None:
        """What is still missing, or None once everything was processed and committed."""
        t = self.names.topics
        c = self.collector
        c.check_running()
        accepted = {k.decode() for k in c.keys(t.entries)}
        if not feed_items <= accepted or len(accepted) < len(feed_items) + extra_entries:
            return (
                f"{len(accepted)} entries accepted of {len(feed_items) + extra_entries}; "
                f"feed items not yet in {t.entries}: {sorted(feed_items - accepted)[:5]}"
            )
        finished = (
            c.keys(t.articles) | c.keys(t.failed_articles) | c.keys(TopicNames.dlq(t.entries))
        )
        if unfinished := {k.encode() for k in accepted} - finished:
            return f"entries without an article or dead letter: {sorted(unfinished)[:5]}"
        refused = {k.decode() for k in c.keys(TopicNames.dlq(t.articles))}
        waiting = {
            article["article_id"]
            for key, article in c.objects(t.articles)
            if "article_id" in article and key not in refused
        }
        if undecided := waiting - c.ids(t.deduplicated, "article_id"):
            return f"articles without a dedup result: {sorted(undecided)[:5]}"
        for group, topics in (
            (self.names.dedup_app, [t.articles, self.names.window_topic]),
            (self.names.coder_app, [t.deduplicated, self.names.mentions_topic]),
        ):
            if not await self.group_caught_up(group, topics):
                return f"{group} has not committed all of {topics}"
        return None

    async def drain(
        self, feed_items: set[str], *, timeout: float, extra_entries: int = 0, quiet: float = 4.0
    ) -> None:
        """Wait until everything was processed and committed, and the events stay put."""
        deadline = time.monotonic() + timeout
        while True:
            if crashed := self.crashed():
                raise AssertionError(f"{crashed} exited while draining\n{self.logs()}")
            if time.monotonic() > deadline:
                missing = await self.not_drained_because(feed_items, extra_entries)
                stall = await self.stall_report()
                raise AssertionError(
                    f"not drained after {timeout:.0f}s: {missing}\n{stall}\n{self.logs()}"
                )
            if await self.drained(feed_items, extra_entries):
                before = self.collector.count(self.names.topics.events)
                await asyncio.sleep(quiet)
                if self.collector.count(self.names.topics.events) == before and await self.drained(
                    feed_items, extra_entries
                ):
                    return
            await asyncio.sleep(0.5)


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # noqa: SLF001 - no public way to refresh
    return consumer.partitions_for_topic(topic) or set()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - 127.0.0.1 only
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


async def counter_total(process: ServiceProcess, name: str) -> float:
    """The sum over labels of counter ``name`` (``…_total``) on the replica's /metrics now."""
    base = process.metrics_url()
    if base is None or not process.running:
        return 0.0
    status, text = await asyncio.to_thread(_get, f"{base}/metrics")
    if status != 200:
        return 0.0
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


async def is_ready(process: ServiceProcess) -> bool:
    base = process.metrics_url()
    if base is None or not process.running:
        return False
    status, _ = await asyncio.to_thread(_get, f"{base}/readyz")
    return status == 200
