"""donations-ops card-testing status | on | off | auto: the commands and their output.

Exit codes as the rest of donations-ops: 0 ok, 1 ``status --fail-on-attack`` while under attack.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from donations.ports import AttackMode
from donations_ops.aws import Clients
from donations_ops.card_testing import (
    CardTestingStatus,
    automatic_attack_mode,
    card_testing_status,
    force_attack_mode,
)
from donations_ops.cli_shared import print_json, stdout_console
from donations_ops.stack_resources import Stack, discover

OK, UNDER_ATTACK = 0, 1


def register(commands: Any, target: argparse.ArgumentParser, positive_int: Callable[[str], int]) -> None:
    card = commands.add_parser("card-testing", help="the attack mode (CAPTCHA for every donation) and offenders")
    card_commands = card.add_subparsers(title="card-testing commands", required=True, metavar="COMMAND")
    status = card_commands.add_parser("status", parents=[target], help="mode, recent declines, top offenders")
    status.add_argument("--top", type=positive_int, default=10, help="offenders shown per kind (default 10)")
    status.add_argument("--day", help="UTC day of the offenders, YYYY-MM-DD (default today)")
    status.add_argument("--fail-on-attack", action="store_true", help="exit 1 while under attack")
    status.set_defaults(command=cmd_status)
    for name, help_text in (
        ("on", "hold the attack mode on: every new donation needs a CAPTCHA"),
        ("off", "hold it off: declines do not switch it on (a false alarm, a telethon)"),
    ):
        force = card_commands.add_parser(name, parents=[target], help=help_text)
        force.add_argument("--minutes", type=positive_int, default=60, help="for how long (default 60)")
        force.add_argument("--by", default=os.environ.get("USER") or "operator", help="who (shown in the status)")
        force.set_defaults(command=cmd_force, on=name == "on")
    auto = card_commands.add_parser("auto", parents=[target], help="back to automatic")
    auto.add_argument("--close", action="store_true", help="also end a mode the declines opened")
    auto.set_defaults(command=cmd_auto)


def cmd_status(args: argparse.Namespace, clients: Clients) -> int:
    stack = discover(clients, args.stack_name)
    status = card_testing_status(clients, stack, top=args.top, day=args.day)
    if args.json:
        print_json({"stack": stack.name, **dataclasses.asdict(status)})
    else:
        _print_status(stdout_console(), status)
    return UNDER_ATTACK if args.fail_on_attack and status.mode.under_attack else OK


def cmd_force(args: argparse.Namespace, clients: Clients) -> int:
    stack = discover(clients, args.stack_name)
    return _print_mode(args, stack, force_attack_mode(clients, stack, on=args.on, minutes=args.minutes, by=args.by))


def cmd_auto(args: argparse.Namespace, clients: Clients) -> int:
    stack = discover(clients, args.stack_name)
    return _print_mode(args, stack, automatic_attack_mode(clients, stack, close=args.close))


def _print_mode(args: argparse.Namespace, stack: Stack, mode: AttackMode) -> int:
    if args.json:
        print_json({"stack": stack.name, "mode": dataclasses.asdict(mode)})
    else:
        stdout_console().print(Text(f"Attack mode: {mode_text(mode)}"))
    return OK


def mode_text(mode: AttackMode) -> str:
    state = "ON (a CAPTCHA for every new donation)" if mode.under_attack else "off"
    until = f" until {_time(mode.until)}" if mode.until else ""
    return f"{state}{until}" + (f"; {mode.reason}" if mode.reason else "")


def _print_status(console: Console, status: CardTestingStatus) -> None:
    console.print(Text(f"Attack mode: {mode_text(status.mode)}", style="bold red" if status.mode.under_attack else ""))
    if status.opened_at and status.mode.under_attack:
        console.print(Text(f"Opened at {_time(status.opened_at)}"))
    recent = Table(title="Last minutes (UTC)", title_justify="left")
    for column in ("minute", "declines", "refused while under attack"):
        recent.add_column(column, justify="left" if column == "minute" else "right")
    minutes = sorted(status.declines_per_minute.keys() | status.refusals_per_minute.keys())
    for minute in minutes:
        counts = (status.declines_per_minute.get(minute, 0), status.refusals_per_minute.get(minute, 0))
        recent.add_row(_time(minute * 60, "%H:%M"), *(str(count) for count in counts))
    if not minutes:
        recent.add_row("(none)", "0", "0")
    console.print(recent)
    offenders = Table(title="Most declines today, by kind", title_justify="left")
    for column in ("kind", "who", "declines"):
        offenders.add_column(column, justify="right" if column == "declines" else "left")
    for kind, found in status.offenders.items():
        for offender in found:
            # Text, not markup: a label is client input (an address, a masked email).
            offenders.add_row(kind, Text(offender.label), str(offender.declines))
    if not any(status.offenders.values()):
        offenders.add_row("(none)", "—", "—")
    console.print(offenders)


def _time(unix: float, layout: str = "%Y-%m-%d %H:%M:%SZ") -> str:
    return datetime.fromtimestamp(unix, UTC).strftime(layout)
