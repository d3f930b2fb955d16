"""``python -m services.poller``: the feed poller service."""

from __future__ import annotations

import argparse
import sys

from services.poller.cli import run_poller


def main() -> int:
    """Configured from the environment alone, as ``wirewatch poller`` without options."""
    return run_poller(argparse.Namespace(feeds=None, log_level=None))


if __name__ == "__main__":
    sys.exit(main())
