"""Reading PaymentIntents in bulk: search (eventually consistent) and list (consistent)."""

from __future__ import annotations

from typing import Any

from simulator.emulators.stripe import errors, params
from simulator.emulators.stripe.intent_objects import EXPANDABLE, render
from simulator.emulators.stripe.listing import list_page
from simulator.emulators.stripe.objects import Json
from simulator.emulators.stripe.state import Ctx, StripeState
from simulator.emulators.stripe.wire import SearchQueryError, clause_matches, parse_search

SEARCH_FIELDS = frozenset({"amount", "currency", "customer", "status", "created"})


def search(state: StripeState, ctx: Ctx, p: Json, _: str | None) -> Json:
    """docs.stripe.com/search: new or changed objects can take up to a minute (longer during an
    outage) to appear, so a PaymentIntent stays invisible for ``search_lag_ms`` after creation."""
    expand = params.expand(p, EXPANDABLE)
    try:
        clauses, joiner = parse_search(str(p["query"]))
    except SearchQueryError as exc:
        raise errors.invalid(str(exc), param="query") from None
    for clause in clauses:
        if not clause.field.startswith("metadata.") and clause.field not in SEARCH_FIELDS:
            raise errors.invalid(
                f"Field `{clause.field}` is an unsupported search field for resource `payment_intents`.",
                param="query",
            )
    limit = params.limit(p)
    combine = all if joiner == "AND" else any
    now = state.clock.now()
    visible = [pi for pi in state.payment_intents.values() if state.searchable_from[pi["id"]] <= now]
    newest_first = sorted(reversed(visible), key=lambda pi: int(pi["created"]), reverse=True)
    hits = [pi for pi in newest_first if combine(clause_matches(c, _field(pi, c.field)) for c in clauses)]
    page = params.text(p, "page")
    start = int(page) if page and page.isdigit() else 0
    more = start + limit < len(hits)
    return {
        "object": "search_result",
        "data": [render(state, pi, expand) for pi in hits[start : start + limit]],
        "has_more": more,
        "next_page": str(start + limit) if more else None,
        "url": "/v1/payment_intents/search",
    }


def list_intents(state: StripeState, ctx: Ctx, p: Json, _: str | None) -> Json:
    """docs.stripe.com/api/payment_intents/list: newest first, filtered by ``customer`` and ``created``."""
    expand = params.expand(p, EXPANDABLE)
    customer = params.text(p, "customer")
    history = state.history
    objects = list(state.payment_intents.values())
    if history is not None and customer is None:
        first, last = _created_bounds(p.get("created"), ctx.now)
        objects += history.between(first, last)

    def shown(pi: Json) -> Json:
        if history is not None and pi["id"].startswith("pi_history"):
            pi = {**history.template, **pi, "metadata": {}}
        return render(state, pi, expand)

    return list_page(
        objects,
        p,
        "/v1/payment_intents",
        shown,
        kind="payment_intent",
        keep=lambda pi: customer in (None, pi.get("customer")),
    )


def _created_bounds(condition: Any, now: int) -> tuple[int, int]:
    """The ``created`` range a list request asks for, as inclusive unix seconds, never past ``now``."""
    if condition is None:
        return 0, now
    if isinstance(condition, str):
        return int(condition), int(condition)
    first = max(int(condition.get("gte", 0)), int(condition.get("gt", -1)) + 1)
    last = min(int(condition.get("lte", now)), int(condition.get("lt", now + 1)) - 1, now)
    return first, last


def _field(pi: Json, name: str) -> Any:
    if name.startswith("metadata."):
        return pi["metadata"].get(name.removeprefix("metadata."))
    return pi.get(name)
