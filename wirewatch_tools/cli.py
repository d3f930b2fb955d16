"""The ``wirewatch`` entry point: one subcommand a service or tool.

Each stage adds its subcommands through ``services/<name>/cli.py`` and each tool through
``wirewatch_tools/<name>/cli.py``, a module with a ``register(subparsers)`` function, so adding
a service never edits this file. It lives with the tools because it imports them; nothing in
``services`` imports it back.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable, Sequence

from services import SERVICE_NAMES
from services.common.errors import BrokerUnreachableError
from services.common.logging import configure_logging

logger = logging.getLogger(__name__)

# Tool packages that add commands (no long-running service), in the order of `wirewatch -h`.
TOOL_NAMES = ("replay", "export")

Handler = Callable[[argparse.Namespace], int]


def command_modules() -> list[str]:
    """The importable ``cli`` modules of the tools and stages, in a stable order."""
    packages = [
        "wirewatch_tools.local",
        *(f"services.{name}" for name in SERVICE_NAMES),
        *(f"wirewatch_tools.{name}" for name in TOOL_NAMES),
    ]
    found = []
    for package in packages:
        if importlib.util.find_spec(package) is None:
            continue
        if importlib.util.find_spec(f"{package}.cli") is not None:
            found.append(f"{package}.cli")
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
