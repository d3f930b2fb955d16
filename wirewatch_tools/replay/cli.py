"""``wirewatch replay copy|rewind``: reprocess a retained range, or move a group back in time."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from services.common import ranges
from services.common.errors import WirewatchError
from services.common.ranges import ReplayError
from services.common.shutdown import GracefulStop
from wirewatch_tools.replay import app
from wirewatch_tools.replay.plan import (
    GroupActiveError,
    format_offset_changes,
    format_plan,
    job_id,
    parse_instant,
    parse_offsets,
)
from wirewatch_tools.replay.progress import Progress

EXIT_INVALID = 2
EXIT_GROUP_ACTIVE = 3
EXIT_INTERRUPTED = 130


def register(subparsers: Any) -> None:
    replay = subparsers.add_parser(
        "replay", help="copy a retained range into a topic, or rewind a consumer group"
    )
    replay.set_defaults(needs_broker=True)
    actions = replay.add_subparsers(dest="replay_command", metavar="ACTION", required=True)

    copy = actions.add_parser(
        "copy",
        help="copy a time or offset range of a topic into another topic (resumable)",
        description=(
            "Copy [--since, --until) or [--from-offsets, --to-offsets) of --topic into --into, "
            "keeping keys, headers and timestamps. Rerunning the same command after an "
            "interruption resumes the copy without duplicating what was already copied."
        ),
    )
    copy.add_argument("--topic", required=True, help="source topic")
    copy.add_argument("--into", required=True, help="target topic (created like the source)")
    start = copy.add_mutually_exclusive_group()
    start.add_argument("--since", help="first record time, ISO 8601 (inclusive; no zone = UTC)")
    start.add_argument(
        "--from-offsets", help="start offsets, e.g. 0:120,1:80 (other partitions skipped)"
    )
    stop = copy.add_mutually_exclusive_group()
    stop.add_argument("--until", help="end time, ISO 8601 (exclusive); default: the end now")
    stop.add_argument("--to-offsets", help="end offsets (exclusive), e.g. 0:500,1:310")
    copy.add_argument("--dry-run", action="store_true", help="print the per-partition plan only")
    copy.add_argument("--max-rate", type=float, default=None, help="messages per second at most")
    copy.add_argument(
        "--restart", action="store_true", help="ignore the checkpoint of an earlier identical run"
    )
    copy.add_argument("--job", default=None, help="job id (default: derived from the request)")
    copy.set_defaults(handler=run_copy)

    rewind = actions.add_parser(
        "rewind",
        help="set a consumer group's committed offsets back to a time or the earliest",
        description=(
            "Commit the group's offsets for --topic back to --to-datetime (or the earliest). "
            "Refuses while consumers of the group are alive, unless --force."
        ),
    )
    rewind.add_argument("--group", required=True)
    rewind.add_argument(
        "--topic", action="append", required=True, help="topic to rewind (repeatable)"
    )
    target = rewind.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--to-datetime", help="ISO 8601; the group resumes at the first record then"
    )
    target.add_argument("--to-earliest", action="store_true", help="the oldest retained record")
    rewind.add_argument("--force", action="store_true", help="rewind even with live members")
    rewind.add_argument("--dry-run", action="store_true", help="print the offsets only")
    rewind.set_defaults(handler=run_rewind)

    recode = actions.add_parser(
        "recode",
        help="run the coder over a retained range of articles and emit the events again",
        description=(
            "Code the articles of a range of --topic (dedup_result.v1 or article.v1) with this "
            "coder version and send the events to --into, keyed by their deterministic event_id."
        ),
    )
    recode.add_argument(
        "--topic", default=None, help="articles topic (default: WIREWATCH_TOPIC_DEDUPLICATED)"
    )
    recode.add_argument(
        "--into", default=None, help="events topic (default: WIREWATCH_TOPIC_EVENTS)"
    )
    recode_start = recode.add_mutually_exclusive_group()
    recode_start.add_argument("--since", help="first article time, ISO 8601 (inclusive)")
    recode_start.add_argument("--from-offsets", help="start offsets, e.g. 0:120,1:80")
    recode_stop = recode.add_mutually_exclusive_group()
    recode_stop.add_argument("--until", help="end time, ISO 8601 (exclusive)")
    recode_stop.add_argument("--to-offsets", help="end offsets (exclusive)")
    recode.add_argument("--coder-version", default=None, help="stamped on the events")
    recode.add_argument("--dry-run", action="store_true", help="list the events, send nothing")
    recode.set_defaults(handler=run_recode)

    backfill = actions.add_parser(
        "backfill-feed",
        help="send a feed's whole history (RFC 5005 archives or pages) to feeds.entries",
        description=(
            "Read URL and every archive (prev-archive) or page (next) it links to, and send the "
            "entries the poller has not emitted to feeds.entries, oldest first; then record them "
            "as seen in the poller's state so that the poller does not emit them again. Pass "
            "the URL exactly as it is (or will be) in the poller's feed list."
        ),
    )
    backfill.add_argument("url")
    backfill.add_argument("--max-pages", type=int, default=100, help="documents to read at most")
    backfill.add_argument("--dry-run", action="store_true", help="read the feed, send nothing")
    backfill.set_defaults(handler=run_backfill)


def _request(args: argparse.Namespace) -> ranges.CopyRequest:
    return ranges.CopyRequest(
        source=args.topic,
        target=args.into,
        since_ms=parse_instant(args.since) if args.since else None,
        until_ms=parse_instant(args.until) if args.until else None,
        from_offsets=parse_offsets(args.from_offsets) if args.from_offsets else None,
        to_offsets=parse_offsets(args.to_offsets) if args.to_offsets else None,
    )


def run_copy(args: argparse.Namespace) -> int:
    try:
        if args.topic == args.into:
            raise ReplayError("--into must differ from --topic")
        request = _request(args)
        return asyncio.run(_copy(args, request))
    except WirewatchError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return EXIT_INVALID


async def _copy(args: argparse.Namespace, request: ranges.CopyRequest) -> int:
    settings = app.ReplaySettings()
    kafka = settings.kafka
    job = args.job or job_id(request.source, request.target, request.describe())
    plan, checkpoint = await app.prepare_copy(kafka, settings, request, job, restart=args.restart)
    if checkpoint is not None and checkpoint.done:
        print(f"job {job} already finished ({checkpoint.copied} copied); --restart copies again")
        return 0
    if args.dry_run:
        for line in format_plan(plan, job):
            print(line)
        if checkpoint is not None:
            print(f"an interrupted run of this job exists: {checkpoint.remaining()} left to copy")
        print("dry run: nothing copied")
        return 0
    stop = GracefulStop()
    stop.install()
    outcome = await app.copy_range(
        kafka,
        settings,
        plan,
        job,
        checkpoint=checkpoint,
        stop=stop.event,
        progress=lambda total: Progress(total, label=f"{plan.source} -> {plan.target}"),
        max_rate=args.max_rate,
    )
    rate = outcome.copied / outcome.seconds if outcome.seconds > 0 else 0.0
    print(
        f"copied {outcome.copied} messages from {plan.source} into {plan.target} "
        f"in {outcome.seconds:.1f}s ({rate:.0f} msg/s), job {job}; "
        f"{outcome.already_copied} copied before this run; "
        f"{outcome.skipped} skipped (timestamps outside the range)"
    )
    if not outcome.finished:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def run_rewind(args: argparse.Namespace) -> int:
    try:
        to_ms = parse_instant(args.to_datetime) if args.to_datetime else None
        changes = asyncio.run(
            app.rewind_group(
                app.ReplaySettings().kafka,
                args.group,
                args.topic,
                to_ms=to_ms,
                force=args.force,
                dry_run=args.dry_run,
            )
        )
    except GroupActiveError as exc:
        print(f"replay: refused: {exc}", file=sys.stderr)
        return EXIT_GROUP_ACTIVE
    except WirewatchError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return EXIT_INVALID
    for line in format_offset_changes(args.group, changes):
        print(line)
    if args.dry_run:
        print("dry run: nothing committed")
        return 0
    return 0 if all(change.applied for change in changes) else 1


def run_recode(args: argparse.Namespace) -> int:
    # The coder (spaCy and its dictionaries) loads only for this command.
    from services.coder import CODER_VERSION, recode

    settings = app.ReplaySettings()
    args.topic = args.topic or settings.topics.deduplicated
    args.into = args.into or settings.topics.events
    try:
        outcome = asyncio.run(
            recode.recode_range(
                settings.kafka,
                _request(args),
                coder_version=args.coder_version or CODER_VERSION,
                dry_run=args.dry_run,
            )
        )
    except WirewatchError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return EXIT_INVALID
    for event in outcome.events:
        source, target = event["source"]["cameo_code"], event["target"]["cameo_code"]
        print(
            f"  {event['event_id']} {event['action']['cameo_code']} {source}->{target} "
            f"{event['event_date']} articles={event['num_articles']}"
        )
    verb = "would send" if args.dry_run else "sent"
    where = "" if args.dry_run else f", sent to {args.topic}.dlq"
    print(
        f"coded {outcome.articles} articles from {args.topic} "
        f"({outcome.rejected} unusable{where}); {verb} {len(outcome.events)} events "
        f"to {args.into} (coder {outcome.coder_version})"
    )
    if args.dry_run:
        print("dry run: nothing sent")
    return 0


def run_backfill(args: argparse.Namespace) -> int:
    from services.common.http import FetchSettings
    from services.poller import backfill

    settings = app.ReplaySettings()
    poller = backfill.PollerStateSettings()
    try:
        outcome = asyncio.run(
            backfill.backfill_feed(
                settings.kafka,
                settings.topics,
                FetchSettings(),
                args.url,
                state_topic=poller.state_topic,
                seen_bound=poller.seen_entries_per_feed,
                max_pages=args.max_pages,
                dry_run=args.dry_run,
            )
        )
    except WirewatchError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return EXIT_INVALID
    history = outcome.history
    for url, fresh in history.pages:
        print(f"  read {url}: {fresh} entries not on an earlier page")
    for url, reason in history.failures:
        print(f"  could not read {url}: {reason}", file=sys.stderr)
    if history.truncated:
        print(f"  stopped after {args.max_pages} documents (--max-pages)", file=sys.stderr)
    total = len(history.entries)
    if args.dry_run:
        print(
            f"{total} entries in {len(history.pages)} documents; "
            f"{outcome.already_seen} already seen (poller state); dry run: nothing sent"
        )
        return 0
    print(
        f"sent {outcome.emitted} entries to {settings.topics.entries} "
        f"({outcome.already_seen} already seen (poller state), "
        f"{outcome.dead_lettered} without a link sent to {settings.topics.entries}.dlq)"
        + ("; poller state written" if outcome.state_written else "")
    )
    return 0 if not history.failures else 1
