"""donations-ops: queue depths, DLQ contents, alarm states and redrives for one pipeline stack; the
card-testing attack mode (donations_ops.card_testing_cli).

The CLI only parses arguments and prints; the work is done by the functions in donations_ops.
Exit codes: 0 ok, 1 problems found (or a redrive/replay that did not fully succeed),
2 usage or configuration error (unknown stack or queue, no credentials, endpoint unreachable),
3 a redrive left messages that would fail again (donations_ops.cli_operator).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from donations_ops import card_testing_cli, pledges_cli, statements_cli
from donations_ops.alarms import AlarmState, stack_alarms
from donations_ops.aws import Clients, make_clients, resolve_endpoint
from donations_ops.cli_operator import add_operator_commands
from donations_ops.cli_shared import (
    INTERRUPTED,
    OK,
    PROBLEMS,
    USAGE,
    cell,
    positive_int,
    print_json,
    stdout_console,
)
from donations_ops.queues import QueueDepth, queue_depths
from donations_ops.receipts_cli import add_receipt_commands
from donations_ops.redrive import MessageNotFound, replay
from donations_ops.refunds_cli import add_refund_commands
from donations_ops.stack_resources import OpsError, Stack, discover, resolve_dlq
from donations_ops.stripe_cli import add_stripe_commands
from donations_ops.target import DEFAULT_STACK, Target

LOCAL_STACK_ENV = "DONATIONS_STACK_NAME"


def main(argv: Sequence[str] | None = None, *, clients: Clients | None = None) -> int:
    """Run one command. ``clients`` (service name -> boto3 client) replaces the target options, for tests."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2, already printed)
        return int(exit_.code or 0)
    _fill_target_defaults(args)
    try:
        return int(args.command(args, clients or _clients(args)))
    except OpsError as error:
        return _fail(str(error), USAGE)
    except MessageNotFound as error:
        return _fail(str(error), PROBLEMS)
    except (ClientError, BotoCoreError) as error:
        # Permissions, credentials, region, an unreachable endpoint: the target is misconfigured.
        return _fail(f"AWS: {error}", USAGE)
    except KeyboardInterrupt:
        # A redrive hands back what it had not sent yet; anything sent and not deleted arrives twice.
        return _fail("interrupted", INTERRUPTED)


def _clients(args: argparse.Namespace) -> Clients:
    endpoint = resolve_endpoint(args.endpoint_url, local=args.local)
    return make_clients(endpoint_url=endpoint, region=args.region, local=args.local)


def _fail(message: str, code: int) -> int:
    print(f"donations-ops: error: {message}", file=sys.stderr)
    return code


# --------------------------------------------------------------------------- arguments


def build_parser() -> argparse.ArgumentParser:
    target = _target_options()
    parser = argparse.ArgumentParser(
        prog="donations-ops", description="Operate the donation pipeline's queues, DLQs and alarms.", parents=[target]
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    status = commands.add_parser("status", parents=[target], help="queue depths, DLQs and alarm states")
    status.add_argument("--fail-on-alarm", action="store_true", help="exit 1 if an alarm fires or a DLQ holds messages")
    status.add_argument(
        "--peek-sources",
        action="store_true",
        help="when CloudWatch has no age metric, also peek source queues (each look counts as a receive)",
    )
    status.set_defaults(command=cmd_status)

    alarms = commands.add_parser("alarms", parents=[target], help="alarm states")
    alarms.add_argument("--fail-on-alarm", action="store_true", help="exit 1 if an alarm is in ALARM")
    alarms.set_defaults(command=cmd_alarms)

    # dlq list/show/peek/discard, the safe redrive, donor, report (imported here: it uses this module's helpers)

    add_operator_commands(commands, target)

    one = commands.add_parser("replay", parents=[target], help="move one DLQ message back to its source queue")
    one.add_argument("queue", metavar="DLQ")
    one.add_argument("message_id", metavar="MESSAGE_ID", help="the SQS message id (see `dlq list`)")
    one.set_defaults(command=cmd_replay)

    # receipts install-template: donations_ops.receipts_cli
    add_receipt_commands(commands)
    # stripe install-webhook: donations_ops.stripe_cli
    add_stripe_commands(commands, target)
    # refund DONATION, disputes: money going back to donors (donations_ops.refunds_cli)
    add_refund_commands(commands, target)
    # card-testing status | on | off | auto: the attack mode and offenders (donations_ops.card_testing_cli)
    card_testing_cli.register(commands, target, positive_int)
    # pledges list | show: monthly pledges needing attention, or due on a day (donations_ops.pledges_cli)
    pledges_cli.register(commands, target)
    # statements send | preview: the year-end statements (donations_ops.statements_cli)
    statements_cli.register(commands, target)
    return parser


def _target_options() -> argparse.ArgumentParser:
    # Accepted before or after the command; SUPPRESS keeps a subcommand from resetting a value given before it.
    target = argparse.ArgumentParser(add_help=False)
    group = target.add_argument_group("target")
    group.add_argument("--stack-name", default=argparse.SUPPRESS, help=f"default {DEFAULT_STACK}")
    group.add_argument(
        "--endpoint-url",
        default=argparse.SUPPRESS,
        help="AWS API endpoint (default $DONATIONS_OPS_ENDPOINT; none = real AWS)",
    )
    group.add_argument(
        "--local",
        action="store_true",
        default=argparse.SUPPRESS,
        help="the local stack: moto on 127.0.0.1:$DONATIONS_MOTO_PORT (default 4566) and stack "
        "$DONATIONS_STACK_NAME (default donations-local) unless given; dummy credentials",
    )
    group.add_argument("--region", default=argparse.SUPPRESS, help="AWS region (default: your configuration)")
    group.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    return target


_TARGET_DEFAULTS: dict[str, Any] = {
    "stack_name": DEFAULT_STACK,
    "endpoint_url": None,
    "local": False,
    "region": None,
    "json": False,
}


def _fill_target_defaults(args: argparse.Namespace) -> None:
    stack_name_given = hasattr(args, "stack_name")
    for name, default in _TARGET_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    if args.local and not stack_name_given:
        # The run command names its stack $DONATIONS_STACK_NAME; --local finds the same one.
        args.stack_name = os.environ.get(LOCAL_STACK_ENV) or DEFAULT_STACK
    # The commands this one suggests are written for the stack it ran against.
    args.target = Target(args.stack_name, local=args.local, endpoint_url=args.endpoint_url, region=args.region)


# --------------------------------------------------------------------------- commands


def cmd_status(args: argparse.Namespace, clients: Clients) -> int:
    stack = discover(clients, args.stack_name)
    depths = queue_depths(clients, stack, peek_sources=args.peek_sources)
    alarms = stack_alarms(clients, stack)
    problems = _alarm_problems(alarms) + [
        f"{d.logical_id} holds {d.total} message(s)" for d in depths if d.role == "dlq" and d.total
    ]
    if args.json:
        print_json({"stack": stack.name, "queues": depths, "alarms": alarms, "problems": problems})
    else:
        console = stdout_console()
        console.print(_queue_table(stack, depths))
        console.print(_alarm_table(alarms))
        _print_problems(console, problems)
    return PROBLEMS if args.fail_on_alarm and problems else OK


def cmd_alarms(args: argparse.Namespace, clients: Clients) -> int:
    stack = discover(clients, args.stack_name)
    alarms = stack_alarms(clients, stack)
    problems = _alarm_problems(alarms)
    if args.json:
        print_json({"stack": stack.name, "alarms": alarms, "problems": problems})
    else:
        console = stdout_console()
        console.print(_alarm_table(alarms))
        _print_problems(console, problems)
    return PROBLEMS if args.fail_on_alarm and problems else OK


def cmd_replay(args: argparse.Namespace, clients: Clients) -> int:
    stack = discover(clients, args.stack_name)
    dlq = resolve_dlq(stack, args.queue)
    destination = stack.source_of(dlq)
    result = replay(clients("sqs"), dlq_url=dlq.url, destination_url=destination.url, message_id=args.message_id)
    if args.json:
        payload = {**dataclasses.asdict(result), "dlq": dlq.logical_id, "destination": destination.logical_id}
        print_json({"stack": stack.name, **payload})
    else:
        console = stdout_console()
        console.print(
            f"Replayed {result.message_id} from {dlq.logical_id} to {destination.logical_id} "
            f"(new message id {result.new_message_id}).",
            highlight=False,
        )
        if not result.deleted:
            console.print("Warning: it could not be deleted from the DLQ; it will be delivered twice.", style="yellow")
    return OK if result.deleted else PROBLEMS


def _alarm_problems(alarms: list[AlarmState]) -> list[str]:
    return [f"alarm {a.name} is in ALARM" for a in alarms if a.firing]


# --------------------------------------------------------------------------- output


def _queue_table(stack: Stack, depths: list[QueueDepth]) -> Table:
    table = Table(title=f"Queues of {stack.name}", title_justify="left")
    for column in ("queue", "role", "visible", "in flight", "delayed", "oldest message", "age from", "name"):
        table.add_column(column, justify="right" if column in ("visible", "in flight", "delayed") else "left")
    for depth in depths:
        role = f"DLQ of {depth.dlq_of}" if depth.role == "dlq" else depth.role
        age = _duration(depth.oldest_age_seconds)
        table.add_row(
            *map(cell, (depth.logical_id, role, depth.visible, depth.in_flight, depth.delayed, age)),
            cell(depth.age_source),
            cell(depth.name),
        )
    return table


def _alarm_table(alarms: list[AlarmState]) -> Table:
    table = Table(title="Alarms", title_justify="left")
    for column in ("alarm", "state", "reason", "last update"):
        table.add_column(column, overflow="fold")
    for alarm in alarms:
        state = Text(alarm.state, style="bold red" if alarm.firing else "")
        table.add_row(cell(alarm.name), state, cell(alarm.reason), cell(_timestamp(alarm.updated_at)))
    if not alarms:
        table.add_row(cell("(no alarms found)"), cell(None), cell(None), cell(None))
    return table


def _print_problems(console: Console, problems: list[str]) -> None:
    for problem in problems:
        console.print(Text(f"! {problem}", style="yellow"))


def _duration(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{value}{unit}" for value, unit in parts if value][:2]
    return " ".join(shown) or "0s"


def _timestamp(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else None
