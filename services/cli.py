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

from services.common.errors import BrokerUnreachableError
from services.common.logging import configure_logging

logger = logging.getLogger(__name__)

# The pipeline's stages, in data order; `wirewatch run` starts those that exist.
SERVICE_NAMES = ("poller", "extractor", "dedup", "coder")
# Packages that only add commands (no long-running service).
TOOL_NAMES = ("replay", "export")

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


def broker_address() -> str:
    from services.common.settings import KafkaSettings

    return KafkaSettings().bootstrap_servers


def check_broker() -> None:
    """Fail in one line for a tool that needs the broker (``set_defaults(needs_broker=True)``)."""
    from services.common.kafka import require_broker
    from services.common.settings import KafkaSettings

    require_broker(KafkaSettings())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level or "INFO")
    handler: Handler = args.handler
    # A command's ``needs_broker`` default: a bool, or a function of its arguments.
    needs_broker = getattr(args, "needs_broker", False)
    if callable(needs_broker):
        needs_broker = needs_broker(args)
    try:
        if needs_broker:
            check_broker()
        return handler(args)
    except BrokerUnreachableError as exc:
        print(exc, file=sys.stderr)  # noqa: T201
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`wirewatch tail … | head`): not an error worth a traceback.
        sys.stderr.close()
        return 0
    except Exception as exc:
        from aiokafka.errors import KafkaConnectionError

        # The broker went away between the check and the client's start: the same one line.
        if needs_broker and isinstance(exc, KafkaConnectionError):
            reason = "it did not answer as a Kafka broker"
            print(BrokerUnreachableError(broker_address(), reason), file=sys.stderr)  # noqa: T201
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
