"""``donations-ops refund`` and ``donations-ops disputes``: money going back to donors (donations.refunds).

    STRIPE_API_KEY=sk_... donations-ops --stack-name NAME refund DONATION [--amount 10.00] [--reason R] [--yes]
    donations-ops --stack-name NAME disputes

``refund`` refunds a charged donation in full, or ``--amount`` of it in the currency's units as shown,
through Stripe's Refunds API, once per request (donations_ops.refunding), records it and queues the
donor's corrected receipt. It asks before it acts unless ``--yes``. The key needs Refunds write access
(and Charges read); it is read from the environment, never from the command line.

``disputes`` lists the open disputes, the nearest evidence deadline first (the sparse dispute-index).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import stripe

from donations.models import Donation
from donations.money import with_code
from donations.payments import STRIPE_API_VERSION
from donations.store import DISPUTE_INDEX, DISPUTE_OPEN
from donations_ops import operator_store, refunding
from donations_ops.aws import Clients
from donations_ops.cli_shared import OK, PROBLEMS, cell, print_json, stdout_console
from donations_ops.stack_resources import OpsError, Stack, discover
from donations_ops.stripe_cli import API_BASE_ENV, API_KEY_ENV

NOT_CONFIRMED = PROBLEMS


def add_refund_commands(commands: Any, target: argparse.ArgumentParser) -> None:
    refund = commands.add_parser(
        "refund",
        parents=[target],
        help="refund a donation in full or in part (Stripe's Refunds API); the donor gets a corrected receipt",
        description=f"Reads the Stripe API key from ${API_KEY_ENV}. Asks before refunding unless --yes. Run "
        "again after an error: the same request makes one refund.",
    )
    refund.add_argument("donation_id", metavar="DONATION")
    refund.add_argument(
        "--amount", help="how much, in the currency's units as shown (10.00); default: all that is left"
    )
    refund.add_argument("--reason", choices=refunding.REASONS, default="requested_by_customer")
    refund.add_argument("--note", default="", help="why, for the record's operator log")
    refund.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    refund.add_argument(
        "--again", action="store_true", help="refund the same amount once more (a request made already is not)"
    )
    refund.add_argument(
        "--stripe-api-base", default=None, help=f"Stripe API base URL (default ${API_BASE_ENV}, else Stripe's own)"
    )
    refund.set_defaults(command=cmd_refund)
    disputes = commands.add_parser("disputes", parents=[target], help="open disputes, nearest evidence deadline first")
    disputes.set_defaults(command=cmd_disputes)


def cmd_refund(args: argparse.Namespace, clients: Clients) -> int:
    api_key = os.environ.get(API_KEY_ENV, "")
    if not api_key:
        raise OpsError(f"set {API_KEY_ENV} to a Stripe secret key that may create refunds")
    stack = discover(clients, args.stack_name)
    table = operator_store.donations_table(clients, stack)
    donation = operator_store.require(table, args.donation_id)
    amount = refunding.minor_units(args.amount, donation.currency) if args.amount else None
    planned = refunding.plan(donation, amount, args.reason, again=args.again)
    if isinstance(planned, refunding.RefundDone):
        return _print_done(args, planned)
    if not (args.yes or _confirmed(planned)):
        print("Nothing refunded.")
        return NOT_CONFIRMED
    base = args.stripe_api_base or os.environ.get(API_BASE_ENV)
    client = stripe.StripeClient(
        api_key, stripe_version=STRIPE_API_VERSION, base_addresses={"api": base} if base else {}
    )
    ports = refunding.RefundPorts(table, client, _publisher(clients, stack))
    return _print_done(args, refunding.make_refund(ports, planned, args.note))


def _confirmed(planned: refunding.RefundPlan) -> bool:
    donation = planned.donation
    question = (
        f"Refund {with_code(planned.amount, donation.currency)} of {with_code(donation.amount, donation.currency)} "
        f"({donation.donation_id}, {donation.email_masked}); "
        f"{with_code(max(0, planned.remaining_after), donation.currency)} will remain a gift. Refund? [y/N] "
    )
    if not sys.stdin.isatty():
        raise OpsError("not a terminal: pass --yes to refund without being asked")
    return input(question).strip().lower() in ("y", "yes")


def _publisher(clients: Clients, stack: Stack) -> Any:
    queues = {logical_id: queue.url for logical_id, queue in stack.queues.items()}
    if "ReceiptQueue" not in queues or "TokenizeQueue" not in queues:
        raise OpsError(f"stack {stack.name!r} has no ReceiptQueue: is it this pipeline's stack?")
    return refunding.publisher_for(clients("sqs"), queues["TokenizeQueue"], queues["ReceiptQueue"])


def _print_done(args: argparse.Namespace, done: refunding.RefundDone) -> int:
    if getattr(args, "json", False):
        print_json(done)
        return OK
    said = "Already refunded" if done.already else "Refunded"
    print(
        f"{said} {with_code(done.amount, done.currency)} of {done.donation_id} ({done.refund_id}); "
        f"refunded so far {with_code(done.amount_refunded, done.currency)}, "
        f"remaining gift {with_code(done.net_amount, done.currency)}. The donor's corrected receipt is on its way."
        + (" Pass --again to refund that amount once more." if done.already else "")
    )
    return OK


def open_disputes(table: Any) -> list[Donation]:
    keys: list[str] = []
    arguments: dict[str, Any] = {"IndexName": DISPUTE_INDEX, "KeyConditionExpression": "#open = :open"}
    arguments |= {"ExpressionAttributeNames": {"#open": DISPUTE_OPEN}, "ExpressionAttributeValues": {":open": "open"}}
    while True:
        page = table.query(**arguments)
        keys += [str(item["donation_id"]) for item in page["Items"]]
        if "LastEvaluatedKey" not in page:
            break
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    found = operator_store.many(table, keys)
    return sorted(found.values(), key=lambda d: d.dispute_evidence_due_by or "")


def cmd_disputes(args: argparse.Namespace, clients: Clients) -> int:
    stack = discover(clients, args.stack_name)
    rows = [_dispute_row(d) for d in open_disputes(operator_store.donations_table(clients, stack))]
    if args.json:
        print_json({"stack": stack.name, "disputes": rows})
        return OK
    console = stdout_console(soft_wrap=True)
    console.print(f"{len(rows)} open dispute(s), nearest evidence deadline first", style="bold")
    for row in rows:
        console.print(" ".join(str(cell(value)) for value in row.values()), markup=False)
    return OK


def _dispute_row(donation: Donation) -> dict[str, str | None]:
    return {
        "evidence_due_by": donation.dispute_evidence_due_by,
        "donation_id": donation.donation_id,
        "amount": with_code(donation.dispute_amount or donation.amount, donation.currency),
        "reason": donation.dispute_reason,
        "status": donation.dispute_status,
        "dispute_id": donation.dispute_id,
        "fee": with_code(donation.dispute_fee, donation.dispute_fee_currency or donation.currency)
        if donation.dispute_fee
        else None,
        "pledge": donation.metadata.get("pledge_id"),
    }
