"""A minimal Faust worker that reports when it has consumed its first message.

Run by test_faust_ready.py as ``python -m tests.integration.faust_ready_app BOOTSTRAP TOPIC``;
the time from process start to the first message is what "ready" means to a user.
"""

import os
import sys
import time

STARTED = time.monotonic()

from services.common.faust_app import make_faust_app  # noqa: E402
from services.common.logging import configure_logging  # noqa: E402
from services.common.settings import KafkaSettings  # noqa: E402

BOOTSTRAP, TOPIC = sys.argv[1], sys.argv[2]
configure_logging("WARNING")
app = make_faust_app(f"ready-probe-{TOPIC}", KafkaSettings(bootstrap_servers=BOOTSTRAP))
topic = app.topic(TOPIC, value_serializer="raw")


@app.agent(topic)
async def consume(stream):  # type: ignore[no-untyped-def]
    async for _ in stream:
        # Straight to the file descriptor: the Faust worker redirects sys.stdout into its log.
        os.write(1, f"READY {time.monotonic() - STARTED:.2f}\n".encode())
        os._exit(0)


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn", "--without-web"]
    app.main()
