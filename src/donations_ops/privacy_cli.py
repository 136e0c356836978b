"""donations-ops donor export | erase: one donor's data on request (donations_ops.donor_data).

    donations-ops donor export --email ada@example.org [--output FILE] [--yes]
    donations-ops donor erase --email ada@example.org [--wait SECONDS] [--yes]

Both ask before acting (``--yes`` does not): an export prints the donor's personal data, an erasure
cannot be undone. What they print about the donor beyond the export itself shows the address masked.
An erasure queues the deletion of the donor's Stripe Customers for the tokenize function and waits up
to ``--wait`` seconds to report each one deleted, else pending.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from donations.customer_erasure import CustomerDeletion
from donations.redaction import mask_email
from donations_ops import donor_data
from donations_ops.aws import Clients
from donations_ops.cli_shared import OK, PROBLEMS, print_json
from donations_ops.stack_resources import Stack, discover


def register(donor_commands: Any, target: argparse.ArgumentParser) -> None:
    """Add ``export`` and ``erase`` to the ``donor`` sub-commands."""
    export = donor_commands.add_parser(
        "export", parents=[target], help="everything held about a donor, as JSON: donations, pledges, statements"
    )
    export.add_argument("--email", required=True)
    export.add_argument("--output", type=Path, help="write the JSON to this file (mode 600) instead of stdout")
    export.add_argument("--yes", action="store_true", help="do not ask first")
    export.set_defaults(command=cmd_export)
    erase = donor_commands.add_parser(
        "erase", parents=[target], help="cancel the donor's pledges, erase their personal data, keep the books"
    )
    erase.add_argument("--email", required=True)
    erase.add_argument("--yes", action="store_true", help="do not ask first")
    erase.add_argument(
        "--wait", type=float, default=30.0, help="seconds to wait for the Stripe Customer deletion (default 30)"
    )
    erase.set_defaults(command=cmd_erase)


def confirm(question: str, yes: bool) -> bool:
    """True with ``--yes``, else the operator's answer (anything but y/yes is no; no terminal is no)."""
    if yes:
        return True
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    try:
        answer = input()
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def cmd_export(args: argparse.Namespace, clients: Clients) -> int:
    stack = discover(clients, args.stack_name)
    donor = mask_email(args.email)
    if not confirm(f"Export everything held about {donor} from {stack.name}?", args.yes):
        print("Nothing exported.", file=sys.stderr)
        return PROBLEMS
    held = donor_data.find(clients, stack, args.email)
    exported = held.export()
    if args.output:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(exported, out, indent=2)
        print(f"Wrote {_counts(held)} held about {donor} to {args.output}.", file=sys.stderr)
    else:
        print_json(exported)
    return OK


def cmd_erase(args: argparse.Namespace, clients: Clients) -> int:
    stack = discover(clients, args.stack_name)
    donor = mask_email(args.email)
    question = f"Erase {donor}'s personal data from {stack.name} and cancel their pledges? This cannot be undone."
    if not confirm(question, args.yes):
        print("Nothing erased.", file=sys.stderr)
        return PROBLEMS
    erased = donor_data.erase(clients, stack, args.email)
    deleted = _wait_for_deletions(clients, stack, erased.customer_deletions, args.wait)
    pending = sorted({d.customer_id for d in erased.customer_deletions} - set(deleted))
    if args.json:
        counts = {k: v for k, v in vars(erased).items() if k != "customer_deletions"}
        customers = {"stripe_customers_deleted": deleted, "stripe_customers_pending": pending}
        print_json({"stack": stack.name, **counts, **customers})
        return OK
    print(
        f"{donor}: {erased.pledges_canceled} pledge(s) canceled, {erased.pledges_erased} pledge(s) and "
        f"{erased.donations_erased} donation(s) erased (amounts, dates and Stripe ids kept), "
        f"{erased.statements_deleted} statement marker(s) deleted."
    )
    for customer in deleted:
        print(f"Stripe Customer {customer}: deleted.")
    for customer in pending:
        print(
            f"Stripe Customer {customer}: deletion pending (queued for the tokenize function; "
            "`donations-ops dlq peek tokenize` shows it if it fails)."
        )
    return OK


def _wait_for_deletions(clients: Clients, stack: Stack, deletions: list[CustomerDeletion], seconds: float) -> list[str]:
    """The Customers deleted within ``seconds`` (checked once a second)."""
    deadline = time.monotonic() + max(0.0, seconds)
    while True:
        deleted = donor_data.deletions_done(clients, stack, deletions)
        if len(deleted) == len(deletions) or time.monotonic() >= deadline:
            return deleted
        _pause(1.0)


def _pause(seconds: float) -> None:
    """While the tokenize function works (tests run the pipeline here instead)."""
    time.sleep(seconds)


def _counts(held: donor_data.DonorData) -> str:
    return f"{len(held.donations)} donation(s), {len(held.pledges)} pledge(s), {len(held.statements)} statement(s)"
