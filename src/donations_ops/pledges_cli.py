"""donations-ops pledges list | show | cancel | resume: monthly pledges for operators (donations.pledges).

``list``: the pledges whose last renewal failed, with what to do: those needing attention, then those
that lapsed (the sparse attention index's two partitions; ``--state`` one of them), or with ``--due DAY``
those due on that day, retries included (the due index). ``show``: one pledge. Queries only, never a scan.
``cancel``: never charged again (a donor who asked by phone or mail). ``resume``: a canceled or lapsed
pledge, or one whose last renewal failed, back on schedule from its next charge day on (never a period
already charged or failed).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from donations.conditional import ConditionFailed
from donations.pledges import LAPSED, NEEDS_ATTENTION, Pledge, PledgeState, PledgeStore
from donations_ops.aws import Clients
from donations_ops.stack_resources import OpsError, Stack, discover

OK = 0
PLEDGES_TABLE = "PledgesTable"
_SHOWN = (
    "pledge_id",
    "state",
    "waiting_for_donor",
    "amount",
    "currency",
    "email_masked",
    "day_of_month",
    "next_charge_on",
    "renewals",
    "renewal_try",
    "retry_on",
    "lapsed_at",
    "last_period",
    "last_donation_id",
    "last_failure_period",
    "last_failure",
    "canceled_at",
    "canceled_by",
    "paused_at",
    "donor_changes",
    "card_brand",
    "card_last4",
    "card_updated_at",
)


def register(commands: Any, target: argparse.ArgumentParser) -> None:
    pledges = commands.add_parser("pledges", help="monthly pledges: those needing attention, or due on a day; one")
    sub = pledges.add_subparsers(title="pledges commands", required=True, metavar="COMMAND")
    listing = sub.add_parser("list", parents=[target], help="pledges needing attention or lapsed (or --due DAY)")
    listing.add_argument("--due", metavar="YYYY-MM-DD", help="instead: the pledges due on this UTC day")
    listing.add_argument(
        "--state",
        choices=[NEEDS_ATTENTION, LAPSED],
        help="only the pledges needing attention, or only those whose dunning ended (lapsed)",
    )
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    listing.set_defaults(command=cmd_list)
    show = sub.add_parser("show", parents=[target], help="one pledge: its state, next date, last renewal")
    show.add_argument("pledge_id", metavar="PLEDGE_ID")
    show.set_defaults(command=cmd_show)
    cancel = sub.add_parser("cancel", parents=[target], help="cancel a pledge: it is never charged again")
    cancel.add_argument("pledge_id", metavar="PLEDGE_ID")
    cancel.set_defaults(command=cmd_cancel)
    resume = sub.add_parser("resume", parents=[target], help="put a canceled or failed pledge back on schedule")
    resume.add_argument("pledge_id", metavar="PLEDGE_ID")
    resume.set_defaults(command=cmd_resume)


def cmd_list(args: argparse.Namespace, clients: Clients) -> int:
    stack = discover(clients, args.stack_name)
    rows = listed(pledge_store(clients, stack), due=args.due, state=args.state, limit=args.limit)
    views = [pledge_view(pledge) for pledge in rows]
    if args.json:
        print(json.dumps({"stack": stack.name, "pledges": views}, indent=2))
        return OK
    title = f"due on {args.due}" if args.due else (args.state or "needing attention or lapsed")
    print(f"{len(views)} pledge(s) {title}")
    for view in views:
        print("  ".join(f"{name}={view[name]}" for name in _SHOWN if view.get(name) is not None))
    return OK


def listed(store: PledgeStore, *, due: str | None, state: str | None, limit: int) -> list[Pledge]:
    """Those due on ``due`` (a UTC day), or those whose renewal failed: ``state``, or needing attention then lapsed."""
    if due:
        found = [store.get(pledge_id) for pledge_id in store.due_on(due)[:limit]]
        return [pledge for pledge in found if pledge is not None]
    states = [state] if state else [NEEDS_ATTENTION, LAPSED]
    return [pledge for one in states for pledge in store.needing_attention(limit, one)][:limit]


def cmd_show(args: argparse.Namespace, clients: Clients) -> int:
    stack = discover(clients, args.stack_name)
    pledge = pledge_store(clients, stack).get(args.pledge_id)
    if pledge is None:
        raise OpsError(f"no pledge {args.pledge_id!r} in this stack")
    view = pledge_view(pledge)
    if args.json:
        print(json.dumps({"stack": stack.name, "pledge": view}, indent=2))
        return OK
    for name in _SHOWN:
        value = view.get(name)
        if isinstance(value, list):  # the donor's changes, one a line, oldest first
            for number, line in enumerate(value):
                print(f"{name if number == 0 else '':<20} {line}")
        elif value is not None:
            print(f"{name:<20} {value}")
    return OK


def cmd_cancel(args: argparse.Namespace, clients: Clients) -> int:
    stack = discover(clients, args.stack_name)
    store = pledge_store(clients, stack)
    pledge = _existing(store, args.pledge_id)
    if pledge.state is PledgeState.CANCELED:
        raise OpsError(f"pledge {args.pledge_id} is already canceled (by {pledge.canceled_by}, {pledge.canceled_at})")
    try:
        pledge = store.cancel(pledge.pledge_id, by="operator")
    except ConditionFailed:
        raise OpsError(f"pledge {args.pledge_id} changed meanwhile; show it and try again") from None
    return _print(args, stack, pledge, "canceled: it will not be charged again")


def cmd_resume(args: argparse.Namespace, clients: Clients) -> int:
    stack = discover(clients, args.stack_name)
    store = pledge_store(clients, stack)
    pledge = _existing(store, args.pledge_id)
    if pledge.state is PledgeState.ACTIVE:
        raise OpsError(f"pledge {args.pledge_id} is already active, next charge on {pledge.next_charge_on}")
    try:
        pledge = store.resume(pledge, datetime.now(UTC).date())
    except ConditionFailed:
        raise OpsError(f"pledge {args.pledge_id} changed meanwhile; show it and try again") from None
    return _print(args, stack, pledge, f"resumed: next charge on {pledge.next_charge_on}")


def _existing(store: PledgeStore, pledge_id: str) -> Pledge:
    pledge = store.get(pledge_id)
    if pledge is None:
        raise OpsError(f"no pledge {pledge_id!r} in this stack")
    return pledge


def _print(args: argparse.Namespace, stack: Stack, pledge: Pledge, said: str) -> int:
    if args.json:
        print(json.dumps({"stack": stack.name, "pledge": pledge_view(pledge)}, indent=2))
    else:
        print(f"pledge {pledge.pledge_id} {said}")
    return OK


def pledge_view(pledge: Pledge) -> dict[str, Any]:
    # The donor's address masked, as every operator view shows it; Stripe ids of the card are not shown.
    view = {name: value for name, value in pledge.model_dump(mode="json").items() if name in _SHOWN}
    # Active, but a renewal waits for the donor to authenticate it (emailed a link): its period.
    view["waiting_for_donor"] = pledge.awaiting_period if pledge.awaiting_donor else None
    return view


def pledge_store(clients: Clients, stack: Stack) -> PledgeStore:
    name = stack.tables.get(PLEDGES_TABLE)
    if name is None:
        raise OpsError(f"stack {stack.name!r} has no {PLEDGES_TABLE}")
    resource = getattr(clients, "resource", None)
    if resource is None:
        raise OpsError("these clients cannot make a DynamoDB resource")
    return PledgeStore(resource("dynamodb").Table(name))
