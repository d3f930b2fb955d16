"""``python -m services.coder``: the coder service (a Faust worker)."""

from __future__ import annotations

import asyncio
import sys

from services.coder.app import SERVICE, create_app, mentions_topic_name
from services.coder.settings import CoderSettings
from services.common.logging import configure_logging
from services.common.metrics import HealthServer, ServiceMetrics
from services.common.settings import TopicNames
from services.common.topics import DAY_MS, TopicSpec, ensure_topics, pipeline_topics


def main(log_level: str | None = None) -> int:
    """``log_level`` (the command line's ``--log-level``) overrides the service's setting."""
    settings = CoderSettings()
    log_level = log_level or settings.log_level
    configure_logging(log_level)
    (settings.data_dir / settings.app_id).mkdir(parents=True, exist_ok=True)
    specs = pipeline_topics(settings.topics)
    # What the aggregate agent cannot read from its internal topic goes to that topic's DLQ.
    dlq_config = {"cleanup.policy": "delete", "retention.ms": str(14 * DAY_MS)}
    specs.append(TopicSpec(TopicNames.dlq(mentions_topic_name(settings)), 1, dlq_config))
    asyncio.run(ensure_topics(settings.kafka, specs))
    metrics = ServiceMetrics(SERVICE)
    health = HealthServer(
        host=settings.metrics_host,
        port=settings.metrics_port,
        is_ready=lambda: metrics.ready._value.get() == 1,
    )
    service = create_app(settings, metrics, health)
    sys.argv = [sys.argv[0], "worker", "--loglevel", log_level.lower(), "--without-web"]
    service.app.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
