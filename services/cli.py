"""The ``wirewatch`` entry point: one subcommand a service or tool.

Service packages add their own subcommands through a ``services/<name>/cli.py`` module with a
``register(subparsers)`` function, so adding a service never edits this file.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable, Sequence

from services.common.logging import configure_logging

logger = logging.getLogger(__name__)

# The pipeline's stages, in data order; `wirewatch run` starts those that exist.
SERVICE_NAMES = ("poller", "extractor", "dedup", "coder")
# Packages that only add commands (no long-running service).
TOOL_NAMES = ("replay",)

Handler = Callable[[argparse.Namespace], int]


def command_modules() -> list[str]:
    """The importable ``services.<name>.cli`` modules, in a stable order."""
    found = []
    for name in ("core", *SERVICE_NAMES, *TOOL_NAMES):
        module = f"services.{name}.cli"
        if importlib.util.find_spec(f"services.{name}") is None:
            continue
        if importlib.util.find_spec(module) is not None:
            found.append(module)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wirewatch",
        description="News feeds in, deduplicated diplomatic events out, on Kafka.",
    )
    parser.add_argument(
        "--log-level",
        default=None,
        help="DEBUG, INFO, WARNING or ERROR (default: a service's WIREWATCH_<SERVICE>_LOG_LEVEL, "
        "else INFO)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in command_modules():
        module = importlib.import_module(module_name)
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level or "INFO")
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`wirewatch tail … | head`): not an error worth a traceback.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
