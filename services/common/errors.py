"""The one exception hierarchy every wirewatch module raises from."""


class WirewatchError(Exception):
    """Base of every error wirewatch raises on purpose."""


class ConfigurationError(WirewatchError):
    """Settings are missing or contradict each other; raised at start-up."""


class SchemaValidationError(WirewatchError):
    """A message does not match its JSON Schema."""

    def __init__(self, schema_id: str, message: str) -> None:
        super().__init__(f"{schema_id}: {message}")
        self.schema_id = schema_id
        self.detail = message


class BrokerError(WirewatchError):
    """The embedded broker (or its S3 store) could not be started or stopped."""


class BrokerUnreachableError(WirewatchError):
    """No Kafka broker answers at the configured bootstrap address (a tool's one-line error)."""

    def __init__(self, bootstrap_servers: str, reason: str) -> None:
        super().__init__(
            f"no Kafka broker at {bootstrap_servers} ({reason}): start one with `make run` "
            "(it prints its address) or `.venv/bin/wirewatch broker` (127.0.0.1:9092), or set "
            "KAFKA_BOOTSTRAP_SERVERS to a running cluster"
        )
        self.bootstrap_servers = bootstrap_servers
