"""``python -m services.poller``: the feed poller service."""

from __future__ import annotations

import asyncio
import sys

from services.common.http import FetchSettings
from services.common.logging import configure_logging
from services.poller.app import run_service
from services.poller.settings import PollerSettings


def main() -> int:
    settings = PollerSettings()
    configure_logging(settings.log_level)
    return asyncio.run(run_service(settings, FetchSettings()))


if __name__ == "__main__":
    sys.exit(main())
