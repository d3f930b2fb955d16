"""Settings read from the environment once, at start-up, as frozen objects.

Every service builds one settings object in its ``__main__`` and passes plain values down.
Kafka connection settings are shared (``KAFKA_*``); topic names are shared
(``WIREWATCH_TOPIC_*``); each service adds its own class with its own ``env_prefix``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

# Tansu answers a new group's JoinGroup only after half the session timeout, so a short session
# is what makes consumers (and Faust workers) ready in seconds rather than half a minute.
FAST_SESSION_TIMEOUT_MS = 6000
FAST_HEARTBEAT_INTERVAL_MS = 1000


class KafkaSettings(BaseSettings):
    """How to reach the Kafka cluster; the same variables work for Tansu and Apache Kafka."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", frozen=True, extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    session_timeout_ms: int = FAST_SESSION_TIMEOUT_MS
    heartbeat_interval_ms: int = FAST_HEARTBEAT_INTERVAL_MS
    # Tansu rejects InitProducerId, so idempotence is opt-in for real Kafka clusters only.
    enable_idempotence: bool = False
    replication_factor: int = 1
    # Tansu 0.6 answers ListOffsets(latest) with the last *batch's* base offset + 1, so end
    # offsets (lag, drain checks, replay ranges) undercount when a batch holds several records.
    # One record per batch keeps them exact there; Apache Kafka deployments turn this off.
    one_record_per_batch: bool = True
    # How long a fetch may wait for data. Tansu answers a waiting fetch on a topic of several
    # partitions only when this runs out, so every hop of the pipeline waited it (Faust's fixed
    # 1.5 s, aiokafka's 0.5 s); 100 ms costs an idle consumer ten small requests a second.
    fetch_max_wait_ms: int = 100

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments common to every aiokafka client."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        if self.security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            options["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile)
        return options


class TopicNames(BaseSettings):
    """Topic names, overridable so tests and side pipelines can use their own."""

    model_config = SettingsConfigDict(env_prefix="WIREWATCH_TOPIC_", frozen=True, extra="ignore")

    entries: str = "feeds.entries"
    articles: str = "articles.extracted"
    deduplicated: str = "articles.deduplicated"
    events: str = "events.diplomatic"
    # Feed entries that could not become articles (fetch or extraction failed), with a reason.
    failed_articles: str = "articles.dlq"

    @staticmethod
    def dlq(topic: str) -> str:
        """The dead-letter topic that receives what failed on ``topic``."""
        return f"{topic}.dlq"


class ServiceSettings(BaseSettings):
    """Settings every service has; subclass with ``env_prefix="WIREWATCH_<SERVICE>_"``."""

    model_config = SettingsConfigDict(env_prefix="WIREWATCH_", frozen=True, extra="ignore")

    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=0, description="0 picks a free port (logged at start-up)")
    log_level: str = "INFO"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicNames = Field(default_factory=TopicNames)
