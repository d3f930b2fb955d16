"""``python -m services.poller``: the feed poller service."""

from __future__ import annotations

import asyncio
import sys

from pydantic import ValidationError

from services.common.http import FetchSettings
from services.common.logging import configure_logging
from services.poller.app import run_service
from services.poller.settings import PollerSettings


def main() -> int:
    try:
        settings = PollerSettings()
        fetch_settings = FetchSettings()
    except ValidationError as exc:
        print(f"poller: bad configuration: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    configure_logging(settings.log_level)
    return asyncio.run(run_service(settings, fetch_settings))


if __name__ == "__main__":
    sys.exit(main())
