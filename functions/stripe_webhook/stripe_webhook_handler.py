"""POST /webhooks/stripe: verify Stripe's signature, apply the event once, answer fast.

Once per event id with Powertools Idempotency (its own persistence layer on the IdempotencyTable,
keys prefixed ``stripe-webhook-event#``) rather than a hand-written conditional put: it records the
id as in progress before the work and as done after it, deletes the record when the work raises
(so Stripe's retry of a 409/503 is processed, not swallowed), answers a concurrent duplicate with
409 while the first is running, expires stale in-progress records after a timeout, and sets the TTL.
"""

from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from donations.api import answer_idempotency_conflicts, build_resolver, oversized_body, proxy_response
from donations.observability import logger, metrics, tracer
from donations.settings import StripeWebhookSettings
from donations.webhooks import (
    EVENT_KEY_PREFIX,
    EVENT_RECORD_TTL_SECONDS,
    SIGNATURE_HEADER,
    StripeEvent,
    handle_event,
    handles,
    verify_event,
)
from donations.wiring import Wiring

RESPONSES: dict[int, OpenAPIResponse] = {
    200: {"description": "Event applied, already applied, or ignored"},
    400: {"description": "Missing, invalid or stale Stripe-Signature; nothing done"},
    413: {"description": "Body larger than any Stripe event (WEBHOOK_MAX_BODY_BYTES); nothing read or written"},
    409: {"description": "The donation is not recorded yet, or the event is being applied: Stripe retries"},
    503: {"description": "Storage unavailable: Stripe retries"},
}

settings = StripeWebhookSettings.from_env()  # during INIT: a missing variable fails here, naming it
app = build_resolver(settings)
answer_idempotency_conflicts(app)
idempotency_config = IdempotencyConfig(event_key_jmespath="id", expires_after_seconds=EVENT_RECORD_TTL_SECONDS)


@cache
def wiring() -> Wiring:
    return Wiring(settings)


@cache
def apply_once() -> Any:
    persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=wiring().dynamodb)

    @idempotent_function(  # type: ignore[untyped-decorator]  # Powertools' decorator is untyped
        data_keyword_argument="event",
        persistence_store=persistence,
        config=idempotency_config,
        key_prefix=EVENT_KEY_PREFIX,
    )
    def apply(event: dict[str, Any]) -> dict[str, str]:
        deps = wiring()
        outcome = handle_event(
            StripeEvent.model_validate(event), store=deps.store, publisher=deps.publisher, pledges=deps.pledges
        )
        return {"event_id": event["id"], "outcome": outcome.value}

    return apply


@app.post("/webhooks/stripe", responses=RESPONSES, summary="Stripe webhook events", include_in_schema=False)
# Nothing of the event (a PaymentIntent with its client_secret, the donor's email) goes to X-Ray as metadata.
@tracer.capture_method(capture_response=False, capture_error=False)
def receive_stripe_event() -> Response[dict[str, Any]]:
    request = app.current_event
    secret = wiring().api_keys.get(settings.stripe_webhook_secret_name)
    # The raw body as Stripe sent it: the signature covers these exact bytes, so never re-serialise.
    event = verify_event(request.decoded_body or "", request.headers.get(SIGNATURE_HEADER), secret)
    if not handles(event.type):
        return Response(200, content_types.APPLICATION_JSON, {"event_id": event.id, "outcome": "ignored"})
    result = apply_once()(event=event.model_dump(mode="json"))
    return Response(200, content_types.APPLICATION_JSON, result)


# During INIT, not on the first event's path (with SnapStart, in the snapshot; donations.snapstart keeps it safe).
wiring().build_clients()
apply_once()


# clear_state: keys appended for one event (donation_id, stripe_event_id) must not label the next one's logs.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    idempotency_config.register_lambda_context(context)
    # Before the signature check: a flood of large bodies costs no secret read, HMAC or write.
    too_large = oversized_body(event, settings.webhook_max_body_bytes)
    if too_large is not None:
        logger.warning("Webhook body too large", extra={"bytes": len(event.get("body") or "")})
        return proxy_response(too_large, settings)
    return app.resolve(event, context)
