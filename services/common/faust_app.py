"""One way to build a Faust app, with the settings that make it start fast on Tansu."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import tempfile
from collections.abc import Collection, Mapping
from typing import Any, cast

import faust
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport.producer import ProducerBuffer
from faust.types import TP, FutureMessage

from services.common.kafka import probe_end_offsets
from services.common.metrics import ServiceMetrics
from services.common.settings import KafkaSettings

# How often a Faust service updates its consumer-lag gauge.
LAG_INTERVAL_SECONDS = 5.0


def faust_broker_url(kafka: KafkaSettings) -> str:
    return ";".join(f"kafka://{server.strip()}" for server in kafka.bootstrap_servers.split(","))


def faust_credentials(kafka: KafkaSettings) -> Any:
    if kafka.sasl_mechanism:
        password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
        return SASLCredentials(
            username=kafka.sasl_username,
            password=password,
            mechanism=kafka.sasl_mechanism,
            ssl_context=(_ssl_context(kafka) if kafka.security_protocol == "SASL_SSL" else None),
        )
    if kafka.security_protocol == "SSL":
        return SSLCredentials(_ssl_context(kafka))
    return None


def _ssl_context(kafka: KafkaSettings) -> Any:
    from aiokafka.helpers import create_ssl_context

    return create_ssl_context(cafile=kafka.ssl_cafile)


def faust_data_root() -> str:
    root = os.environ.get("WIREWATCH_FAUST_DATADIR") or os.path.join(
        tempfile.gettempdir(), "wirewatch-faust"
    )
    os.makedirs(root, exist_ok=True)
    return root


logger = logging.getLogger(__name__)

END_OFFSETS_RETRY_SECONDS = 1.0


class _PromptFetchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer with the app's fetch wait (Faust fixes it at 1.5 s), and end offsets
    that are the real ends.

    Faust recovers a table by reading its changelog up to the end offsets this returns, and
    then stops reading it. Tansu's ListOffsets answer falls short of the end (see
    ``end_offsets``), so a restarted worker came back with a table missing its latest writes.
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka hands this to its fetcher when the consumer starts, which is after this.
        consumer._fetch_max_wait_ms = cast("WirewatchFaustApp", self.app).fetch_max_wait_ms
        return consumer

    async def getmany(self, active_partitions: set[TP] | None, timeout: float) -> Any:
        """Fetch records of the partitions active now, from a copy of Faust's set of them.

        Faust hands over its live set, which table recovery empties while the fetch waits (it
        pauses the changelog when done reading it), and aiokafka reads an empty set as "every
        partition": it handed over the stream records it had prefetched, Faust dropped them as
        not active, and the consumer's position had moved past them.
        """
        if active_partitions is not None:
            active_partitions = set(active_partitions)
            if not active_partitions:
                return {}
        return await super().getmany(active_partitions, timeout)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        return cast("Mapping[TP, int]", await self.call_thread(self._seek_to_committed_or_start))

    async def _seek_to_committed_or_start(self) -> Mapping[Any, Any]:
        """aiokafka's seek to the committed offsets, plus a seek to the start of every stream
        partition the group has not committed yet (the group's reset policy is "earliest").

        Faust seeks to the committed offsets after each rebalance so that what it fetched but
        did not process (see ``getmany``) is fetched again. aiokafka does not move a partition
        without a committed offset, so a worker restarted before its first commit lost what its
        consumer had fetched during table recovery: it waited for more records forever.
        """
        consumer = self._ensure_consumer()
        committed: dict[Any, Any] = await consumer.seek_to_committed()
        if self.app.conf.consumer_auto_offset_reset == "earliest":
            changelogs = self.app.tables.changelog_topics
            unstarted = [
                tp
                for tp, offset in committed.items()
                if (offset is None or offset <= 0) and tp.topic not in changelogs
            ]
            if unstarted:
                await consumer.seek_to_beginning(*unstarted)
        return committed

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        if self.consumer.in_transaction:
            return await super()._highwaters(partitions)
        kafka = cast("WirewatchFaustApp", self.app).kafka
        wanted = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
        attempt = 0
        while True:
            try:
                ends = await probe_end_offsets(kafka, wanted)
                return {TP(tp.topic, tp.partition): end for tp, end in ends.items()}
            except KafkaError as exc:
                # A rebalance while the broker is down asks for these too; an exception here
                # would crash Faust's table recovery and stop the worker.
                attempt += 1
                logger.warning(
                    "end offsets unavailable (attempt %d, retrying in %.0f s): %s",
                    attempt,
                    END_OFFSETS_RETRY_SECONDS,
                    exc,
                )
                await asyncio.sleep(END_OFFSETS_RETRY_SECONDS)


class _PromptFetchConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> Any:
        return _PromptFetchConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _DrainingProducerBuffer(ProducerBuffer):
    """Faust's buffer of table (changelog) writes, with a flush that really drains it.

    Faust flushes this buffer before it commits offsets, but its flush stops waiting after
    0.1 s without progress, and counts a message as flushed as soon as it leaves the queue,
    before it reaches the Kafka client. Either way an offset could be committed ahead of the
    table write it caused; a crash at that moment left the table without that write for good.
    """

    _in_flight = 0

    async def _send_pending(self, fut: FutureMessage) -> None:
        self._in_flight += 1
        try:
            await super()._send_pending(fut)
        finally:
            self._in_flight -= 1

    async def flush(self) -> None:
        while self.size or self._in_flight:
            if self.state != "running":
                raise RuntimeError("Cannot flush: Producer not Running")
            await asyncio.sleep(0.005)


class _DrainingProducer(faust_aiokafka.Producer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        buffer = _DrainingProducerBuffer(loop=self.loop, beacon=self.beacon)
        buffer.app = self.app
        self.buffer = buffer


class _PromptFetchTransport(faust_aiokafka.Transport):
    Consumer = _PromptFetchConsumer
    Producer = _DrainingProducer


class WirewatchFaustApp(faust.App):
    """A Faust app whose consumers wait ``fetch_max_wait_ms`` for data, not Faust's 1.5 s,
    and whose offset commits wait for every table write before them to reach the broker."""

    fetch_max_wait_ms = 1500
    kafka: KafkaSettings

    def _new_transport(self) -> Any:
        return _PromptFetchTransport(self.conf.broker_consumer, self)


def _consumer_thread_state(consumer: Any) -> list[str]:
    """In the consumer thread: aiokafka's view of each assigned partition, and its tasks."""
    lines = []
    client = consumer._ensure_consumer()  # noqa: SLF001
    assignment = client._subscription.subscription.assignment  # noqa: SLF001
    fetcher = client._fetcher  # noqa: SLF001
    for tp in sorted(client.assignment()):
        state = assignment.state_value(tp)
        position = state.position if state.has_valid_position else "none"
        lines.append(
            f"  aiokafka {tp.topic}:{tp.partition} position={position} "
            f"highwater={state.highwater} paused={state.paused} "
            f"awaiting_reset={state.awaiting_reset} buffered={tp in fetcher._records}"  # noqa: SLF001
        )
    for task in asyncio.all_tasks():
        frames = task.get_stack(limit=3)
        where = " < ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in frames)
        lines.append(f"  thread task {task.get_coro()!r:.60} at {where}")
    return lines


def consumer_state(app: faust.App) -> str:
    """Where the app's consumer stands: Faust's flow and partition sets, and aiokafka's
    positions. Logged on SIGUSR2, for a worker that stopped consuming."""
    consumer: Any = app.consumer
    tables: Any = app.tables
    lines = [
        f"consumer state: flow_active={consumer.flow_active} "
        f"flow_control_active={app.flow_control.is_active()} rebalancing={app.rebalancing} "
        f"recovery_completed={tables.recovery.completed.is_set()}",
        f"  active={sorted(map(tuple, consumer._active_partitions or ()))}",  # noqa: SLF001
        f"  paused={sorted(map(tuple, consumer._paused_partitions))}",  # noqa: SLF001
        f"  read={ {tuple(k): v for k, v in consumer._read_offset.items()} }",  # noqa: SLF001
        f"  committed={ {tuple(k): v for k, v in consumer._committed_offset.items()} }",  # noqa: SLF001
    ]
    thread = consumer._thread  # noqa: SLF001

    async def in_thread() -> list[str]:
        return _consumer_thread_state(thread)

    try:
        future = asyncio.run_coroutine_threadsafe(in_thread(), thread.thread_loop)
        lines += future.result(timeout=2)
    except Exception as exc:  # noqa: BLE001 - a report: say why it is incomplete
        lines.append(f"  consumer thread did not answer: {exc!r}")
    return "\n".join(lines)


async def report_consumer_lag(
    app: faust.App, metrics: ServiceMetrics, topics: Collection[str]
) -> None:
    """Set ``consumer_lag_messages`` for the assigned partitions of ``topics``: the high
    watermark of the consumer's latest fetch (which costs no request) minus its position."""
    consumer = app.consumer
    lags: dict[TopicPartition, int] = {}
    try:
        for tp in consumer.assignment():
            if tp.topic not in topics:
                continue
            position = await consumer.position(tp)
            end = consumer.highwater(tp)
            if position is not None and end is not None:
                lags[TopicPartition(tp.topic, tp.partition)] = max(0, end - position)
    except Exception as exc:  # noqa: BLE001 - metrics must never stop the worker
        logger.debug("consumer lag unavailable: %s", exc)
        return
    metrics.set_consumer_lag(lags)


def log_consumer_state_on_sigusr2(app: faust.App) -> None:
    """Install the SIGUSR2 handler (call from the running loop)."""
    asyncio.get_running_loop().add_signal_handler(
        signal.SIGUSR2, lambda: logger.warning("%s", consumer_state(app))
    )


def make_faust_app(
    app_id: str,
    kafka: KafkaSettings,
    *,
    store: str = "memory://",
    partitions: int = 4,
    **overrides: Any,
) -> faust.App:
    """A Faust app on ``kafka``; session/heartbeat are short because Tansu delays JoinGroup.

    Faust's own web server is off: each service serves /metrics and probes itself. The
    logging handlers configure_logging() installed (JSON lines) are kept; left alone, the Faust
    worker replaces them with its own text format.
    """
    options: dict[str, Any] = {
        "broker": faust_broker_url(kafka),
        "broker_credentials": faust_credentials(kafka),
        "store": store,
        "topic_partitions": partitions,
        "topic_replication_factor": kafka.replication_factor,
        "broker_session_timeout": kafka.session_timeout_ms / 1000,
        "broker_heartbeat_interval": kafka.heartbeat_interval_ms / 1000,
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        "web_enabled": False,
        "processing_guarantee": "at_least_once",
        "stream_wait_empty": False,
        # Faust writes a data directory even for memory stores; keep it out of the working tree.
        "datadir": os.path.join(faust_data_root(), "{conf.name}-data"),
    }
    if kafka.one_record_per_batch:
        options["producer_max_batch_size"] = 1
        options["producer_linger"] = 0.0
    root_handlers = list(logging.getLogger().handlers)
    if root_handlers:
        options["loghandlers"] = root_handlers
        options["logging_config"] = {"version": 1, "disable_existing_loggers": False}
    options.update(overrides)
    app = WirewatchFaustApp(app_id, **options)
    app.fetch_max_wait_ms = kafka.fetch_max_wait_ms
    app.kafka = kafka

    @app.task  # type: ignore[untyped-decorator]
    async def _report_consumer_state_on_request() -> None:
        log_consumer_state_on_sigusr2(app)

    return app
