"""Every topic the pipeline uses, with the partitions and retention it needs."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from services.common.settings import KafkaSettings, TopicNames

logger = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 4
    config: dict[str, str] = field(default_factory=dict)


def pipeline_topics(names: TopicNames, *, partitions: int = 4) -> list[TopicSpec]:
    """Entries and articles are kept long for replay; events are compacted by ``event_id``."""
    keep_long = {"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS)}
    keep_dlq = {"cleanup.policy": "delete", "retention.ms": str(14 * DAY_MS)}
    specs = [
        TopicSpec(names.entries, partitions, keep_long),
        TopicSpec(names.articles, partitions, keep_long),
        TopicSpec(names.deduplicated, partitions, keep_long),
        TopicSpec(names.events, partitions, {"cleanup.policy": "compact"}),
    ]
    dlqs = [TopicSpec(TopicNames.dlq(spec.name), 1, keep_dlq) for spec in specs]
    failures = [TopicSpec(names.failed_articles, 1, keep_dlq)]
    return specs + dlqs + failures


async def ensure_topics(kafka: KafkaSettings, specs: list[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    Topics are created explicitly because Tansu auto-creates unknown topics with 4 partitions
    and no configuration.
    """
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if not missing:
            return []
        new_topics = [
            NewTopic(
                spec.name,
                num_partitions=spec.partitions,
                replication_factor=kafka.replication_factor,
                topic_configs=dict(spec.config),
            )
            for spec in missing
        ]
        try:
            await admin.create_topics(new_topics)
        except TopicAlreadyExistsError:
            logger.debug("a topic appeared while creating %s", [s.name for s in missing])
        logger.info("created topics %s", [spec.name for spec in missing])
        return [spec.name for spec in missing]
    finally:
        await admin.close()
