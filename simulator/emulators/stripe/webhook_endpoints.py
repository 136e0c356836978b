"""The WebhookEndpoints API (docs.stripe.com/api/webhook_endpoints): create, retrieve, list, update,
delete, and delivery of the account's events to each enabled endpoint, signed with its own secret.

What the pinned version's types and Stripe's pages say, and this module follows:

* Parameters are those of ``stripe.params.WebhookEndpointCreateParams`` / ``…UpdateParams`` /
  ``…ListParams`` (checked by ``contract``): ``api_version`` is a create parameter only (no update
  changes it), ``enabled_events`` is required at creation and each entry is one of the version's
  event types or ``*``.
* ``secret`` "is only returned at creation" (``stripe.WebhookEndpoint.secret``, "The endpoint's
  secret, used to generate webhook signatures. Only returned at creation."): retrieve, list and
  update answer it as null.
* Events are rendered in the endpoint's ``api_version``, or the account's default API version when
  the endpoint has none ("Webhook versioning": an endpoint created without a version gets the
  account's default). The emulator renders one shape (the pinned version's) and labels the event
  with the version it would have; that label is what a handler can check.
* A ``disabled`` endpoint receives nothing; a deleted one stops its retries.

Each endpoint has a ``WebhookDispatcher`` of its own (``endpoint_deliveries``): same retries,
signing and test switches as the endpoint configured through the control API.
"""

from __future__ import annotations

import secrets

import stripe

from simulator.emulators.stripe import errors, params
from simulator.emulators.stripe.listing import list_page
from simulator.emulators.stripe.objects import Json, copy_json, new_id, shaped
from simulator.emulators.stripe.state import Ctx, StripeState
from simulator.emulators.stripe.webhook_settings import check_url

_OBJECT = "webhook_endpoint"


def _url(p: Json) -> str:
    url = str(p["url"])
    try:
        return check_url(url)
    except ValueError:
        raise errors.invalid("Invalid URL: URL must be publicly accessible.", param="url") from None


def _events(p: Json) -> list[str]:
    enabled = [str(e) for e in p["enabled_events"]]
    if not enabled:
        raise errors.invalid("You must specify at least one event type.", param="enabled_events")
    return enabled


def _endpoint(state: StripeState, endpoint_id: str | None) -> Json:
    endpoint = state.endpoints.objects.get(endpoint_id or "")
    if endpoint is None:
        raise errors.no_such(_OBJECT, endpoint_id or "", "id")
    return endpoint


def _shown(endpoint: Json) -> Json:
    return {**copy_json(endpoint), "secret": None}  # only the create answer carries the secret


# -- the API's handlers (routes) ------------------------------------------------------------------


def create(state: StripeState, ctx: Ctx, p: Json, _: str | None) -> Json:
    params.expand(p, set())
    secret = f"whsec_{secrets.token_urlsafe(24)}"
    endpoint = shaped(
        stripe.WebhookEndpoint,
        {
            "id": new_id("we"),
            "object": _OBJECT,
            "api_version": params.text(p, "api_version"),
            "application": None,
            "created": ctx.now,
            "description": params.text(p, "description"),
            "enabled_events": _events(p),
            "livemode": False,
            "metadata": params.metadata(p),
            "secret": None,
            "status": "enabled",
            "url": _url(p),
        },
    )
    state.endpoints.add(endpoint, secret)
    return {**copy_json(endpoint), "secret": secret}


def retrieve(state: StripeState, ctx: Ctx, p: Json, endpoint_id: str | None) -> Json:
    params.expand(p, set())
    return _shown(_endpoint(state, endpoint_id))


def list_endpoints(state: StripeState, ctx: Ctx, p: Json, _: str | None) -> Json:
    params.expand(p, set())
    endpoints = list(state.endpoints.objects.values())
    return list_page(endpoints, p, "/v1/webhook_endpoints", _shown, kind=_OBJECT)


def update(state: StripeState, ctx: Ctx, p: Json, endpoint_id: str | None) -> Json:
    params.expand(p, set())
    endpoint = _endpoint(state, endpoint_id)
    dispatcher = state.endpoints.dispatchers[endpoint["id"]]
    if "url" in p:
        endpoint["url"] = _url(p)
    if "enabled_events" in p:
        endpoint["enabled_events"] = _events(p)
    if "description" in p:
        endpoint["description"] = params.text(p, "description")
    if "metadata" in p:
        merged = {**endpoint["metadata"], **p["metadata"]}  # an empty value unsets its key
        endpoint["metadata"] = params.metadata({"metadata": merged})
    if "disabled" in p:
        endpoint["status"] = "disabled" if params.flag(p, "disabled") else "enabled"
    dispatcher.configure(endpoint["url"], enabled_events=endpoint["enabled_events"])
    return _shown(endpoint)


def delete(state: StripeState, ctx: Ctx, p: Json, endpoint_id: str | None) -> Json:
    endpoint = _endpoint(state, endpoint_id)
    state.endpoints.remove(endpoint["id"])
    return {"id": endpoint["id"], "object": _OBJECT, "deleted": True}
