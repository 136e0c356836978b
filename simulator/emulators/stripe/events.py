"""Stripe events: recorded for inspection and queued for signed webhook delivery."""

from __future__ import annotations

import stripe

from simulator.emulators.stripe.objects import Json, copy_json, new_id, shaped
from simulator.emulators.stripe.state import Ctx, StripeState
from simulator.emulators.stripe.version import DEFAULT_API_VERSION


def emit(state: StripeState, ctx: Ctx, type_: str, obj: Json, *, automatic: bool = False) -> Json:
    """Record an event about ``obj`` and queue it for the webhook endpoint (never blocks on the network).

    ``automatic``: caused by Stripe itself (e.g. a dispute), so ``request`` holds nulls
    (docs.stripe.com/api/events/object#event_object-request). The event carries the API version it
    was rendered with: the request's Stripe-Version, else the pinned one (the account default here);
    each endpoint created through the WebhookEndpoints API receives it in that endpoint's version.
    """
    request = shaped(
        stripe.Event.Request, {} if automatic else {"id": ctx.request_id, "idempotency_key": ctx.idempotency_key}
    )
    event = shaped(
        stripe.Event,
        {
            "id": new_id("evt"),
            "object": "event",
            "api_version": ctx.api_version or DEFAULT_API_VERSION,
            "created": ctx.now,
            "data": shaped(stripe.Event.Data, {"object": copy_json(obj)}),
            "livemode": False,
            "pending_webhooks": int(state.webhooks.accepts(type_)) + len(state.endpoints.subscribed(type_)),
            "request": request,
            "type": type_,
        },
    )
    state.events.append(event)
    state.events_by_id[event["id"]] = event
    if state.webhooks.accepts(type_):
        state.webhooks.submit(copy_json(event))
    state.endpoints.submit(event)
    return event
