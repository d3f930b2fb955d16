"""``python -m services.dedup``: run the dedup service (a Faust worker) until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import sys

import faust

from services.common.logging import configure_logging
from services.common.topics import TopicSpec, ensure_topics, pipeline_topics
from services.dedup.app import DedupMetrics, DedupService
from services.dedup.settings import DedupSettings

logger = logging.getLogger(__name__)


def main(log_level: str | None = None) -> int:
    """``log_level`` (the command line's ``--log-level``) overrides the service's setting."""
    settings = DedupSettings()
    log_level = log_level or settings.log_level
    configure_logging(log_level)
    specs = pipeline_topics(settings.topics)
    specs.append(TopicSpec(DedupService.window_topic_name(settings), 1))
    asyncio.run(ensure_topics(settings.kafka, specs))
    asyncio.set_event_loop(asyncio.new_event_loop())
    service = DedupService(settings, DedupMetrics())
    logger.info(
        "dedup: %s -> %s, window %.0f h",
        settings.topics.articles,
        settings.topics.deduplicated,
        settings.window_hours,
    )
    worker = faust.Worker(service.app, loglevel=log_level.lower(), quiet=True)
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
