"""donations-ops statements send | status | preview: the year-end statements (donations.statements).

    donations-ops statements status --year 2026
    donations-ops statements send --year 2026 [--dry-run] [--yes]
    donations-ops statements send --year 2026 --email ada@example.org [--again] [--yes]
    donations-ops statements preview --year 2026 --email ada@example.org

``send`` finds the year's donors (donations.statement_run: queries, never a scan, the same run as the
January schedule's), says how many have their statement already or queued, and queues the others' on
the receipt queue; ``--dry-run`` and ``status`` only count. Run it again at any time, after a crash
too: each donor gets one statement per year. ``--email``
queues one donor's; with ``--again`` a donor who lost theirs gets another (their marker is cleared
first). ``preview`` prints what a donor's statement would say, sending nothing.
"""

from __future__ import annotations

import argparse
from typing import Any

from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError

from donations import statement_run
from donations.redaction import mask_email
from donations.statement_run import QueueRefused, YearOfDonors
from donations.statements import SENT, statement_data, statement_key, statement_of
from donations_ops import operator_store, statements_run
from donations_ops.aws import Clients
from donations_ops.cli_shared import OK, PROBLEMS, print_json
from donations_ops.privacy_cli import confirm
from donations_ops.stack_resources import OpsError, Stack, discover

FIRST_YEAR, LAST_YEAR = 2000, 2999


def register(commands: Any, target: argparse.ArgumentParser) -> None:
    statements = commands.add_parser("statements", help="year-end statements: queue a year's, preview one")
    sub = statements.add_subparsers(title="statements commands", required=True, metavar="COMMAND")
    send = sub.add_parser("send", parents=[target], help="queue the year's statements not sent yet (resumable)")
    send.add_argument("--year", type=_year, required=True)
    send.add_argument("--email", help="only this donor's statement")
    send.add_argument("--again", action="store_true", help="with --email: send it even if it was sent")
    send.add_argument("--dry-run", action="store_true", help="count donors, sent and to send; queue nothing")
    send.add_argument("--yes", action="store_true", help="do not ask first")
    send.set_defaults(command=cmd_send)
    status = sub.add_parser("status", parents=[target], help="the year's progress: donors, sent, queued, to send")
    status.add_argument("--year", type=_year, required=True)
    status.set_defaults(command=cmd_status)
    preview = sub.add_parser("preview", parents=[target], help="what a donor's statement says; sends nothing")
    preview.add_argument("--year", type=_year, required=True)
    preview.add_argument("--email", required=True)
    preview.set_defaults(command=cmd_preview)


def cmd_send(args: argparse.Namespace, clients: Clients) -> int:
    if args.again and not args.email:
        raise OpsError("--again sends one donor's statement again: give --email")
    stack = discover(clients, args.stack_name)
    store = statements_run.statement_store(clients, stack)
    if args.email:
        year = _one_donor(clients, stack, args.email, args.year)
        shown = mask_email(args.email)
    else:
        year = statement_run.donors_of_year(store, args.year, statements_run.receipt_time_zone(clients, stack))
        shown = "all donors"
    if args.again and year.sent and not args.dry_run:
        if not confirm(f"{shown} has the {args.year} statement already. Send it again?", args.yes):
            return PROBLEMS
        _forget_sent(statements_run.statements_table(clients, stack), year.sent[0], args.year)
        year = YearOfDonors(year.year, year.gifts, [])
    counts = _counts(year)
    if args.dry_run or not year.to_send:
        return _report(args, stack, counts, queued=0)
    if not confirm(f"Queue {len(year.to_send)} {args.year} statement(s) ({shown}) in {stack.name}?", args.yes):
        return PROBLEMS
    try:
        queued = statement_run.queue_statements(store, clients("sqs"), statements_run.receipt_queue_url(stack), year)
    except QueueRefused as refused:
        raise OpsError(str(refused)) from refused
    return _report(args, stack, counts, queued=queued)


def cmd_status(args: argparse.Namespace, clients: Clients) -> int:
    """How far the year's statements are (the January run's or an operator's): counts, queueing nothing."""
    stack = discover(clients, args.stack_name)
    store = statements_run.statement_store(clients, stack)
    counts = _counts(statement_run.donors_of_year(store, args.year, statements_run.receipt_time_zone(clients, stack)))
    if args.json:
        print_json({"stack": stack.name, **counts})
    else:
        print(f"{_progress(counts)}.")
    return OK


def _counts(year: YearOfDonors) -> dict[str, int]:
    return {
        "year": year.year,
        "donors": len(year.donors),
        "sent": len(year.sent),
        "queued_not_sent": len(year.queued),
        "to_send": len(year.to_send),
    }


def _progress(counts: dict[str, int]) -> str:
    on_the_way = f"{counts['queued_not_sent']} queued and not sent yet, " if counts["queued_not_sent"] else ""
    return (
        f"{counts['year']}: {counts['donors']} donor(s) with gifts, {counts['sent']} statement(s) sent, "
        f"{on_the_way}{counts['to_send']} to send"
    )


def cmd_preview(args: argparse.Namespace, clients: Clients) -> int:
    from donations.settings import MailSettings

    stack = discover(clients, args.stack_name)
    identifiers = operator_store.identifiers(clients, stack)
    donations = operator_store.by_email(operator_store.donations_table(clients, stack), args.email, identifiers)
    zone = statements_run.receipt_time_zone(clients, stack)
    statement = statement_of(identifiers.donor_key(args.email), args.year, donations, zone)
    if statement is None:
        print(f"{mask_email(args.email)} has no gift in {args.year}: no statement.")
        return PROBLEMS
    parameters = statements_run.stack_parameters(clients, stack)
    settings = MailSettings(
        receipt_template_id=parameters.get("ReceiptTemplateId") or "-",
        receipt_from_email=parameters.get("ReceiptFromEmail") or "-",
        org_name=parameters.get("OrgName") or "-",
        org_address=parameters.get("OrgAddress", ""),
        org_tax_id=parameters.get("OrgTaxId", ""),
        goods_or_services_statement=parameters.get("GoodsOrServicesStatement", ""),
        support_email=parameters.get("SupportEmail") or "-",
        receipt_locale=parameters.get("ReceiptLocale") or "en_US",
        receipt_time_zone=zone,
    )
    print_json({"to": mask_email(statement.email), "year": args.year, **statement_data(statement, settings)})
    return OK


def _one_donor(clients: Clients, stack: Stack, email: str, year: int) -> YearOfDonors:
    """One donor who asks: queued unless sent (a queued marker of theirs does not hold it back)."""
    identifiers = operator_store.identifiers(clients, stack)
    donations = operator_store.by_email(operator_store.donations_table(clients, stack), email, identifiers)
    zone = statements_run.receipt_time_zone(clients, stack)
    statement = statement_of(identifiers.donor_key(email), year, donations, zone)
    if statement is None:
        raise OpsError(f"{mask_email(email)} has no gift in {year}: no statement to send")
    # The key the January run gives this donor's statement (their legacy key if no record has the keyed one).
    donor = statement_key([d for d in donations if d.donation_id in {g.donation_id for g in statement.gifts}])
    marker = statements_run.statement_store(clients, stack).markers([donor], year).get(donor) or {}
    gifts = {donor: [gift.donation_id for gift in statement.gifts]}
    return YearOfDonors(year, gifts, [donor] if marker.get("status") == SENT else [])


def _forget_sent(statements: Any, donor: str, year: int) -> None:
    try:
        statements.delete_item(Key={"donor_key": donor, "year": year}, ConditionExpression=Attr("status").eq(SENT))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise


def _report(args: argparse.Namespace, stack: Stack, counts: dict[str, int], *, queued: int) -> int:
    if args.json:
        print_json({"stack": stack.name, **counts, "queued": queued, "dry_run": bool(args.dry_run)})
        return OK
    print(f"{_progress(counts)}; {queued} queued{' (dry run)' if args.dry_run else ''}.")
    return OK


def _year(text: str) -> int:
    year = int(text)
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise argparse.ArgumentTypeError(f"a calendar year ({FIRST_YEAR}-{LAST_YEAR})")
    return year
