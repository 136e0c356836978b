"""donations-ops statements send | preview: the year-end statements (donations.statements).

    donations-ops statements send --year 2026 [--dry-run] [--yes]
    donations-ops statements send --year 2026 --email ada@example.org [--again] [--yes]
    donations-ops statements preview --year 2026 --email ada@example.org

``send`` finds the year's donors (donations_ops.statements_run: queries, never a scan), says how many
have their statement already, and queues the others' on the receipt queue; ``--dry-run`` only counts.
Run it again at any time, after a crash too: each donor gets one statement per year. ``--email``
queues one donor's; with ``--again`` a donor who lost theirs gets another (their marker is cleared
first). ``preview`` prints what a donor's statement would say, sending nothing.
"""

from __future__ import annotations

import argparse
from typing import Any

from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError

from donations.redaction import mask_email
from donations.statements import SENT, statement_data, statement_of
from donations_ops import operator_store, statements_run
from donations_ops.aws import Clients
from donations_ops.cli_shared import OK, PROBLEMS, print_json
from donations_ops.privacy_cli import confirm
from donations_ops.stack_resources import OpsError, Stack, discover
from donations_ops.statements_run import YearOfDonors

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
    preview = sub.add_parser("preview", parents=[target], help="what a donor's statement says; sends nothing")
    preview.add_argument("--year", type=_year, required=True)
    preview.add_argument("--email", required=True)
    preview.set_defaults(command=cmd_preview)


def cmd_send(args: argparse.Namespace, clients: Clients) -> int:
    if args.again and not args.email:
        raise OpsError("--again sends one donor's statement again: give --email")
    stack = discover(clients, args.stack_name)
    donations = operator_store.donations_table(clients, stack)
    statements = statements_run.statements_table(clients, stack)
    if args.email:
        year = _one_donor(clients, stack, args.email, args.year)
        shown = mask_email(args.email)
    else:
        zone = statements_run.receipt_time_zone(clients, stack)
        year = statements_run.donors_of_year(donations, statements, args.year, zone)
        shown = "all donors"
    if args.again and year.sent and not args.dry_run:
        if not confirm(f"{shown} has the {args.year} statement already. Send it again?", args.yes):
            return PROBLEMS
        _forget_sent(statements, year.sent[0], args.year)
        year = YearOfDonors(year.year, year.gifts, [])
    counts = {"year": args.year, "donors": len(year.donors), "sent": len(year.sent), "to_send": len(year.to_send)}
    if args.dry_run or not year.to_send:
        return _report(args, stack, counts, queued=0)
    if not confirm(f"Queue {len(year.to_send)} {args.year} statement(s) ({shown}) in {stack.name}?", args.yes):
        return PROBLEMS
    queue = stack.queues.get(statements_run.RECEIPT_QUEUE)
    if queue is None:
        raise OpsError(f"stack {stack.name!r} has no {statements_run.RECEIPT_QUEUE}")
    queued = statements_run.queue_statements(clients("sqs"), queue.url, year)
    return _report(args, stack, counts, queued=queued)


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
    identifiers = operator_store.identifiers(clients, stack)
    donations = operator_store.by_email(operator_store.donations_table(clients, stack), email, identifiers)
    zone = statements_run.receipt_time_zone(clients, stack)
    donor = identifiers.donor_key(email)
    statement = statement_of(donor, year, donations, zone)
    if statement is None:
        raise OpsError(f"{mask_email(email)} has no gift in {year}: no statement to send")
    statements = statements_run.statements_table(clients, stack)
    gifts = {donor: [gift.donation_id for gift in statement.gifts]}
    return YearOfDonors(year, gifts, statements_run.sent_of(statements, [donor], year))


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
    print(
        f"{counts['year']}: {counts['donors']} donor(s) with gifts, {counts['sent']} statement(s) sent, "
        f"{counts['to_send']} to send; {queued} queued{' (dry run)' if args.dry_run else ''}."
    )
    return OK


def _year(text: str) -> int:
    year = int(text)
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise argparse.ArgumentTypeError(f"a calendar year ({FIRST_YEAR}-{LAST_YEAR})")
    return year
