"""donations-ops commands for the operator at 3 a.m.: parked messages, safe redrives, donors, the report.

Looking (``dlq list``, ``dlq show``, ``donor``, ``report``) reads the Donations table and SQS's
counts: it never receives a message, so it changes no count. ``dlq peek`` does receive (it says so).
Acting (``redrive``, ``dlq discard``, ``donor fix-email``) is noted on the donation.

Exit codes, beyond donations_ops.cli's (0 ok, 1 problems, 2 usage): 3 when a redrive left messages
in the DLQ because they would fail the same way again, or moved none because the step's alarm is
still in ALARM (nothing went wrong; see what it printed).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from donations_ops import actions, lookup, parked, privacy_cli, report
from donations_ops.aws import Clients
from donations_ops.cli_shared import (
    OK,
    PROBLEMS,
    SKIPPED,
    cell,
    positive_float,
    positive_int,
    print_json,
    stdout_console,
)
from donations_ops.queues import PEEK_LIMIT, list_dlq
from donations_ops.stack_resources import discover, resolve_dlq
from donations_ops.target import Target


def add_operator_commands(commands: Any, target: argparse.ArgumentParser) -> None:
    """Register ``dlq``, ``redrive``, ``donor`` and ``report`` on the CLI's sub-command parser."""
    _dlq_commands(commands, target)
    move = commands.add_parser(
        "redrive", parents=[target], help="move a DLQ's messages back, skipping those that would fail again"
    )
    move.add_argument("queue", metavar="DLQ")
    move.add_argument("--donation", metavar="DONATION_ID", help="only this donation's message")
    move.add_argument("--reason", help="only messages whose reason contains this text")
    move.add_argument(
        "--force",
        action="store_true",
        help="the cause was fixed: redrive permanent failures too, and even while the step's alarm is in ALARM",
    )
    move.add_argument("--note", default="", help="recorded on each redriven donation (e.g. a ticket)")
    move.add_argument("--max", type=positive_int, dest="max_messages", help="move at most N messages")
    move.add_argument("--rate", type=positive_float, help="at most this many messages per second")
    move.add_argument("--dry-run", action="store_true", help="say what would move and what not; move nothing")
    move.add_argument("--method", choices=["auto", "move-task", "copy"], default="auto")
    move.add_argument("--wait", type=float, default=60.0, help="seconds to wait for a move task (default 60)")
    move.set_defaults(command=cmd_redrive)
    _donor_commands(commands, target)
    period = commands.add_parser("report", parents=[target], help="donations, receipts and cards for a period")
    period.add_argument("--date", help="one UTC day: YYYY-MM-DD, today or yesterday (default yesterday)")
    period.add_argument("--from", dest="first", help="first UTC day of the period")
    period.add_argument("--to", dest="last", help="last UTC day of the period (default: --from)")
    period.add_argument("--csv", action="store_true", help="one row per donation, as CSV")
    period.set_defaults(command=cmd_report)


def _dlq_commands(commands: Any, target: argparse.ArgumentParser) -> None:
    dlq = commands.add_parser("dlq", help="what is parked in a dead-letter queue, and why")
    sub = dlq.add_subparsers(title="dlq commands", required=True, metavar="COMMAND")
    listing = sub.add_parser("list", parents=[target], help="parked and retrying donations (receives nothing)")
    listing.add_argument("queue", metavar="QUEUE", help="receipt, tokenize, ReceiptDLQ, a queue name or URL")
    listing.add_argument("--reason", help="only those whose reason contains this text")
    listing.add_argument("--donation", metavar="DONATION_ID")
    listing.set_defaults(command=cmd_dlq_list)
    show = sub.add_parser("show", parents=[target], help="one parked message: body, reason, attempts, history")
    show.add_argument("donation_id", metavar="DONATION_ID")
    show.set_defaults(command=cmd_dlq_show)
    peek = sub.add_parser("peek", parents=[target], help="receive and hand back a DLQ's messages (counts change)")
    peek.add_argument("queue", metavar="QUEUE")
    peek.add_argument("--limit", type=positive_int, default=PEEK_LIMIT, help="look at most at N messages")
    peek.set_defaults(command=cmd_dlq_peek)
    drop = sub.add_parser("discard", parents=[target], help="delete a donation's parked message, with a note")
    drop.add_argument("queue", metavar="QUEUE")
    drop.add_argument("donation_id", metavar="DONATION_ID")
    drop.add_argument("--note", required=True, help="why (recorded on the donation)")
    drop.set_defaults(command=cmd_dlq_discard)


def _donor_commands(commands: Any, target: argparse.ArgumentParser) -> None:
    donor = commands.add_parser("donor", help="find a donor's donations; what happened to one; fix an address")
    sub = donor.add_subparsers(title="donor commands", required=True, metavar="COMMAND")
    find = sub.add_parser("find", parents=[target], help="by --email, or by --last4 and --date")
    find.add_argument("--email")
    find.add_argument("--last4", help="the card's last 4 digits (with --date)")
    find.add_argument("--date", help="the UTC day of the donation (YYYY-MM-DD)")
    find.set_defaults(command=cmd_donor_find)
    show = sub.add_parser("show", parents=[target], help="told, charged, saved, sent: one donation's story")
    show.add_argument("donation_id", metavar="DONATION_ID")
    show.set_defaults(command=cmd_donor_show)
    fix = sub.add_parser("fix-email", parents=[target], help="correct the address and send the receipt to it")
    fix.add_argument("donation_id", metavar="DONATION_ID")
    fix.add_argument("--email", required=True)
    fix.add_argument("--note", required=True, help="why (recorded on the donation)")
    fix.set_defaults(command=cmd_donor_fix_email)
    # export | erase: the donor's data on request (donations_ops.privacy_cli)
    privacy_cli.register(sub, target)


# --------------------------------------------------------------------------- dlq


def cmd_dlq_list(args: argparse.Namespace, clients: Clients) -> int:
    stack = discover(clients, args.stack_name)
    dlq = resolve_dlq(stack, args.queue)
    found = parked.view(clients, stack, dlq, reason=args.reason, donation_id=args.donation)
    if args.json:
        print_json({"stack": stack.name, **dataclasses.asdict(found)})
        return OK
    console = stdout_console(soft_wrap=True)
    console.print(
        f"{found.dlq}: {found.dlq_messages} message(s) in the DLQ, {found.queue_messages} in its queue "
        "(SQS's counts; nothing was received).",
        highlight=False,
    )
    table = Table(title=f"{found.step}: donations needing attention", title_justify="left")
    columns = ("donation", "state", "kind", "reason", "attempts", "since", "redrives", "redrive?", "donor")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in found.rows:
        verdict = Text("yes" if row.redrive else f"no: {row.why}", style="" if row.redrive else "yellow")
        values = (row.donation_id, row.state, row.kind, row.reason, row.attempts, row.since, row.redrives)
        table.add_row(*map(cell, values), verdict, cell(row.donor))
    console.print(table)
    if found.without_record:
        console.print(
            f"{found.without_record} DLQ message(s) have no parked donation (malformed, or for an unknown "
            f"donation): `{args.target.command(f'dlq peek {args.queue}')}` shows them (it receives them).",
            highlight=False,
        )
    return OK


def cmd_dlq_show(args: argparse.Namespace, clients: Clients) -> int:
    stack = discover(clients, args.stack_name)
    shown = parked.show(clients, stack, args.donation_id)
    if args.json:
        print_json({"stack": stack.name, **shown})
        return OK
    console = stdout_console(soft_wrap=True)
    for key in ("donation_id", "step", "state", "kind", "reason", "attempts", "failing_since", "parked_at"):
        console.print(f"{key:<15} {shown[key] if shown[key] is not None else '—'}", highlight=False)
    console.print(f"{'redrives':<15} {shown['redrives']}", highlight=False)
    console.print(f"{'redrive now?':<15} {'yes' if shown['redrive'] else 'no'}: {shown['why']}", highlight=False)
    if shown["hint"]:
        console.print(Text(f"{'what to do':<15} {args.target.complete(shown['hint'])}", style="yellow"))
    message = shown["message"]
    console.print(f"{'message body':<15} {message['body'] or '—'}", highlight=False, markup=False)
    for name, value in sorted(message["attributes"].items()):
        console.print(f"  {name} = {value}", highlight=False, markup=False)
    donation = shown["donation"]
    console.print(f"{'donation':<15} " + ", ".join(f"{k} {v}" for k, v in donation.items()), highlight=False)
    _print_log(console, shown["operator_log"])
    return OK


def _print_log(console: Console, entries: list[dict[str, str]]) -> None:
    if not entries:
        console.print(f"{'history':<15} (no operator action yet)", highlight=False)
        return
    console.print("history", highlight=False)
    for entry in entries:
        details = " ".join(f"{k}={v}" for k, v in entry.items() if k not in ("at", "action", "note"))
        console.print(f"  {entry['at']} {entry['action']} {details} — {entry.get('note', '')}", markup=False)


def cmd_dlq_peek(args: argparse.Namespace, clients: Clients) -> int:
    stack = discover(clients, args.stack_name)
    dlq = resolve_dlq(stack, args.queue)
    messages = list_dlq(clients, stack, dlq, limit=args.limit)
    if args.json:
        print_json({"stack": stack.name, "dlq": dlq.logical_id, "queue_name": dlq.name, "messages": messages})
        return OK
    console = stdout_console(soft_wrap=True)
    console.print(Text("peek receives each message (its receive count goes up); `dlq list` does not.", "yellow"))
    table = Table(title=f"{dlq.logical_id}: {len(messages)} message(s)", title_justify="left")
    columns = ("message id", "donation id", "type", "failed step", "reason", "reason from", "receives")
    for column in columns:
        table.add_column(column, overflow="fold")
    for m in messages:
        values = (m.message_id, m.donation_id, m.type, m.failed_step, m.failure_reason, m.reason_source)
        table.add_row(*map(cell, values), cell(m.receive_count))
    console.print(table)
    return OK


def cmd_dlq_discard(args: argparse.Namespace, clients: Clients) -> int:
    stack = discover(clients, args.stack_name)
    dlq = resolve_dlq(stack, args.queue)
    removed = actions.discard(clients, stack, dlq, args.donation_id, args.note)
    if args.json:
        print_json({"stack": stack.name, "donation_id": args.donation_id, "removed_messages": removed})
    else:
        stdout_console(soft_wrap=True).print(
            f"Discarded {args.donation_id}'s {parked.step_of(stack, dlq).value} step (note recorded on the "
            f"donation); {removed} message(s) removed from {dlq.logical_id}.",
            highlight=False,
        )
    return OK


# --------------------------------------------------------------------------- redrive


def cmd_redrive(args: argparse.Namespace, clients: Clients) -> int:
    stack = discover(clients, args.stack_name)
    dlq = resolve_dlq(stack, args.queue)
    firing = actions.alarms_against_redrive(clients, stack, dlq)
    if firing and not args.force and not args.dry_run:
        return _refuse_redrive(args, dlq.logical_id, firing)
    # moto (the local stack) has no SQS move task: copy at once rather than ask for one.
    method = "copy" if args.local and args.method == "auto" else args.method
    result = actions.redrive_safely(
        clients, stack, dlq, donation_id=args.donation, reason=args.reason, force=args.force, note=args.note,
        max_messages=args.max_messages, rate=args.rate, dry_run=args.dry_run, method=method,
        wait_seconds=args.wait,
    )  # fmt: skip
    if firing and not args.json:
        _warn_still_failing(stdout_console(soft_wrap=True), firing, forced=args.force)
    code = PROBLEMS if not result.ok else SKIPPED if result.skipped else OK
    if args.json:
        print_json({"stack": stack.name, **dataclasses.asdict(result), "ok": result.ok, "exit_code": code})
        return code
    _print_redrive(stdout_console(soft_wrap=True), result, args.queue, args.target)
    return code


def _refuse_redrive(args: argparse.Namespace, dlq: str, firing: list[str]) -> int:
    """Nothing moved: the step still fails, so its messages would come straight back (exit 3, as for a
    redrive that left messages which would fail again)."""
    if args.json:
        print_json({"stack": args.stack_name, "dlq": dlq, "moved": [], "alarms_firing": firing, "exit_code": SKIPPED})
        return SKIPPED
    console = stdout_console(soft_wrap=True)
    _warn_still_failing(console, firing, forced=False)
    chosen = [f"--{name} {shlex.quote(value)}" for name, value in (("donation", args.donation), ("reason", args.reason))
              if value]  # fmt: skip
    again = " ".join(["redrive", args.queue, *chosen, "--force"])
    console.print(f"Once the cause is fixed (or to redrive anyway): {args.target.command(again)}", markup=False)
    return SKIPPED


def _warn_still_failing(console: Console, firing: list[str], *, forced: bool) -> None:
    alarms = f"{', '.join(firing)} {'is' if len(firing) == 1 else 'are'} in ALARM: the step still fails"
    outcome = "redriven anyway (--force)" if forced else "a redrive now would park its messages again; nothing moved"
    console.print(Text(f"{alarms}; {outcome}.", style="yellow bold"))


def _print_redrive(console: Console, result: actions.SafeRedrive, queue: str, target: Target) -> None:
    verb = "Would move" if result.method == "dry-run" else "Moved"
    if result.fallback_reason:
        console.print(Text(f"Copying message by message: {result.fallback_reason}."))
    if result.task is not None:
        state = result.task.task_status or "started"
        console.print(f"Move task {result.task.task_handle}: {state}, {result.task.moved} moved so far.", markup=False)
        if result.task.note:
            console.print(f"Note: {result.task.note}", markup=False)
    console.print(
        f"{verb} {len(result.moved)} message(s) from {result.dlq} to {result.destination}"
        + (f": {', '.join(result.moved)}." if result.moved else "."),
        highlight=False,
        markup=False,
    )
    if result.skipped:
        console.print(
            Text(f"Left {len(result.skipped)} in the DLQ: they would fail the same way again.", style="yellow bold")
        )
        for skipped in result.skipped:
            reason = f" ({skipped.reason})" if skipped.reason else ""
            console.print(Text(f"  {skipped.donation_id or '(no donation)'}: {skipped.why}{reason}", style="yellow"))
            if skipped.hint:
                console.print(f"    → {target.complete(skipped.hint)}", markup=False, highlight=False)
        console.print(f"Once the cause is fixed: {target.command(f'redrive {queue} --force')}", markup=False)
    if result.without_record and result.method == "dry-run":
        console.print(f"{result.without_record} message(s) without a parked donation are decided as they move.")
    if result.not_deleted:
        console.print(Text(f"Sent but still in the DLQ (will arrive twice): {', '.join(result.not_deleted)}"))
    if result.error:
        console.print(Text(f"Stopped: {result.error}", style="red"))


# --------------------------------------------------------------------------- donors and the report


def cmd_donor_find(args: argparse.Namespace, clients: Clients) -> int:
    stack = discover(clients, args.stack_name)
    day = report.parse_day(args.date) if args.date else None
    rows = [lookup.summary_row(d) for d in lookup.find(clients, stack, email=args.email, last4=args.last4, day=day)]
    if args.json:
        print_json({"stack": stack.name, "donations": rows})
        return OK
    table = Table(title=f"{len(rows)} donation(s)", title_justify="left")
    for column in ("donation_id", "created_at", "status", "amount", "donor", "card", "receipt", "receipt_sent_at"):
        table.add_column(column.replace("_", " "), overflow="fold")
    for row in rows:
        table.add_row(*(cell(row[c]) for c in row))
    stdout_console(soft_wrap=True).print(table)
    return OK if rows else PROBLEMS


# The pledge in a donation's story: enough to answer a monthly donor on the phone (donations-ops pledges show: all).
_PLEDGE_SHOWN = ("pledge_id", "state", "amount", "next_charge_on", "renewals", "card", "retry_on", "last_failure")


def cmd_donor_show(args: argparse.Namespace, clients: Clients) -> int:
    stack = discover(clients, args.stack_name)
    story = lookup.story(clients, stack, args.donation_id)
    if args.json:
        print_json({"stack": stack.name, **story})
        return OK
    console = stdout_console(soft_wrap=True)
    console.print(f"{story['donation_id']}, made {story['created_at']} by {story['donor']['name']}", markup=False)
    console.print(f"  told      {story['told']}", markup=False)
    for part in ("charged", "card", "receipt"):
        shown = ", ".join(f"{k} {v}" for k, v in story[part].items() if v not in (None, ""))
        console.print(f"  {part:<9} {shown}", markup=False, highlight=False)
    pledge = story["pledge"]
    if pledge:
        shown = ", ".join(f"{k} {v}" for k, v in pledge.items() if k in _PLEDGE_SHOWN and v not in (None, ""))
        console.print(f"  pledge    {shown}", markup=False, highlight=False)
    trouble = story["trouble"]
    if trouble:
        shown = ", ".join(f"{k} {v}" for k, v in trouble.items() if v not in (None, ""))
        console.print(Text(f"  trouble   {shown}", style="yellow"))
    _print_log(console, story["operator_log"])
    return OK


def cmd_donor_fix_email(args: argparse.Namespace, clients: Clients) -> int:
    stack = discover(clients, args.stack_name)
    removed = actions.fix_email_and_resend(clients, stack, args.donation_id, args.email, args.note)
    if args.json:
        print_json({"stack": stack.name, "donation_id": args.donation_id, "removed_messages": removed})
    else:
        stdout_console(soft_wrap=True).print(
            f"{args.donation_id}: address corrected (note recorded); receipt queued for sending; "
            f"{removed} parked message(s) removed. Check with: {args.target.command(f'donor show {args.donation_id}')}",
            highlight=False,
        )
    return OK


def cmd_report(args: argparse.Namespace, clients: Clients) -> int:
    stack = discover(clients, args.stack_name)
    first = report.parse_day(args.first or args.date or "yesterday")
    last = report.parse_day(args.last) if args.last else first
    found = report.build(clients, stack, first, last)
    if args.csv:
        sys.stdout.write(report.as_csv(found))
        return OK
    if args.json:
        payload = dataclasses.asdict(found)
        print_json({"stack": stack.name, **payload, "receipts_answer": found.receipts_answer})
        return OK
    print_report(stdout_console(soft_wrap=True), found)
    return OK


def print_monthly(console: Console, monthly: report.MonthlyGiving) -> None:
    console.print("Monthly giving", style="bold", highlight=False)
    rows = Table(show_header=False, box=None)
    rows.add_row("renewals charged", str(monthly.renewals_charged))
    rows.add_row("renewals failed", str(monthly.renewals_failed))
    rows.add_row("renewals waiting for the donor", str(monthly.renewals_waiting_for_donor))
    if monthly.renewals_not_finished:
        rows.add_row("renewals not finished", str(monthly.renewals_not_finished))
    rows.add_row("recurring income", ", ".join(monthly.recurring_income.values()) or "—")
    if monthly.active_pledges is None:
        rows.add_row("pledges", "— (this stack has no Pledges table)")
    else:
        rows.add_row("pledges lapsed in the period", str(monthly.pledges_lapsed))
        rows.add_row("pledges active now", str(monthly.active_pledges))
        rows.add_row("pledges waiting for the donor or an operator now", str(monthly.pledges_needing_attention))
    console.print(rows)


def print_report(console: Console, found: report.Report) -> None:
    period = str(found.first_day) + ("" if found.last_day == found.first_day else f" to {found.last_day}")
    console.print(f"Donations {period} (UTC): {found.donations}", style="bold", highlight=False)
    console.print(Text(f"Receipts: {found.receipts_answer}", style="bold"))
    summary = Table(show_header=False, box=None)
    # Counts, then money: "received 2 donations" and "amount received 50.00 USD", each row labelled.
    for outcome, count in found.outcomes.items():
        summary.add_row(outcome, f"{count} donation{'' if count == 1 else 's'}")
    summary.add_row("amount received", ", ".join(found.received.values()) or "—")
    if found.refunded:
        summary.add_row("amount refunded", ", ".join(found.refunded.values()))
    if found.disputed:
        states = ", ".join(f"{count} {status}" for status, count in found.disputes.items())
        summary.add_row("amount disputed", f"{', '.join(found.disputed.values())} ({states})")
    if found.lost_to_disputes:
        summary.add_row("amount lost to disputes", ", ".join(found.lost_to_disputes.values()))
    if found.dispute_fees:
        summary.add_row("dispute fees (a cost, not in net)", ", ".join(found.dispute_fees.values()))
    if found.refunds_failed:
        summary.add_row("refunds failed (owed back)", ", ".join(found.refunds_failed.values()))
    summary.add_row("net amount (kept)", ", ".join(found.net.values()) or "—")
    summary.add_row("cards saved", f"{found.cards_saved} of {found.cards_asked} asked")
    console.print(summary)
    print_monthly(console, found.monthly)
    for title, problems in (
        ("Receipts missing", found.receipts_missing),
        ("Cards not saved", found.cards_missing),
        ("Stuck", found.stuck),
    ):
        if not problems:
            continue
        table = Table(title=f"{title}: {len(problems)}", title_justify="left")
        for column in ("donation", "made", "amount", "what", "why"):
            table.add_column(column, overflow="fold")
        for p in problems:
            table.add_row(*map(cell, (p.donation_id, p.created_at, p.amount, p.what, p.why)))
        console.print(table)
