"""donations-ops pledges list | show: monthly pledges for operators (donations.pledges).

``list``: the pledges whose last renewal failed, with what to do: those needing attention, then those
that lapsed (the sparse attention index's two partitions; ``--state`` one of them), or with ``--due DAY``
those due on that day, retries included (the due index). ``show``: one pledge. Queries only, never a scan.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from donations.pledges import LAPSED, NEEDS_ATTENTION, Pledge, PledgeStore
from donations_ops.aws import Clients
from donations_ops.stack_resources import OpsError, Stack, discover

OK = 0
PLEDGES_TABLE = "PledgesTable"
_SHOWN = (
    "pledge_id",
    "state",
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


def cmd_list(args: argparse.Namespace, clients: Clients) -> int:
    stack = discover(clients, args.stack_name)
    store = _store(clients, stack)
    if args.due:
        found = [store.get(pledge_id) for pledge_id in store.due_on(args.due)[: args.limit]]
        rows = [pledge for pledge in found if pledge is not None]
    else:
        states = [args.state] if args.state else [NEEDS_ATTENTION, LAPSED]
        rows = [pledge for state in states for pledge in store.needing_attention(args.limit, state)][: args.limit]
    views = [_view(pledge) for pledge in rows]
    if args.json:
        print(json.dumps({"stack": stack.name, "pledges": views}, indent=2))
        return OK
    title = f"due on {args.due}" if args.due else (args.state or "needing attention or lapsed")
    print(f"{len(views)} pledge(s) {title}")
    for view in views:
        print("  ".join(f"{name}={view[name]}" for name in _SHOWN if view.get(name) is not None))
    return OK


def cmd_show(args: argparse.Namespace, clients: Clients) -> int:
    stack = discover(clients, args.stack_name)
    pledge = _store(clients, stack).get(args.pledge_id)
    if pledge is None:
        raise OpsError(f"no pledge {args.pledge_id!r} in this stack")
    view = _view(pledge)
    if args.json:
        print(json.dumps({"stack": stack.name, "pledge": view}, indent=2))
        return OK
    for name in _SHOWN:
        if view.get(name) is not None:
            print(f"{name:<20} {view[name]}")
    return OK


def _view(pledge: Pledge) -> dict[str, Any]:
    # The donor's address masked, as every operator view shows it; Stripe ids of the card are not shown.
    return {name: value for name, value in pledge.model_dump(mode="json").items() if name in _SHOWN}


def _store(clients: Clients, stack: Stack) -> PledgeStore:
    name = stack.tables.get(PLEDGES_TABLE)
    if name is None:
        raise OpsError(f"stack {stack.name!r} has no {PLEDGES_TABLE}")
    resource = getattr(clients, "resource", None)
    if resource is None:
        raise OpsError("these clients cannot make a DynamoDB resource")
    return PledgeStore(resource("dynamodb").Table(name))
