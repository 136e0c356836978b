"""POST /donations, GET /donations/{donation_id}, POST /warmup and the pledge links' routes (POST /pledges/...,
POST /pledge-links): parse, call the core, shape the answer."""

# ruff: noqa: E402 - the garbage collector is turned off before the imports below, which are most of INIT
from donations import init_phase

init_phase.begin()  # INIT without the cyclic garbage collector (donations.init_phase): a tenth of its CPU time

import math
from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Header
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, StrictInt, StringConstraints

from donations import deadline, models
from donations.api import (
    CHALLENGE_HEADER,
    IDEMPOTENCY_HEADER,
    WARMUP_PATH,
    build_resolver,
    documented_errors,
    early_refusal,
    proxy_response,
    with_canonical_media_type,
)
from donations.card_update import ATTEMPT_ID, CardUpdate, finish_card_update, start_card_update
from donations.charge import DONATION_ID, submit_donation
from donations.errors import DonationNotFound
from donations.models import DonationAnswer, PublicDonation, load_email_validation
from donations.observability import logger, metrics, tracer
from donations.pledge_changes import change_amount, pause, resume, skip_next
from donations.pledge_manage import (
    LINKS_ANSWER,
    Authentication,
    PledgeView,
    cancel_pledge,
    finish_authentication,
    request_manage_links,
    start_authentication,
    view_pledge,
)
from donations.ports import Client
from donations.settings import ChargeSettings
from donations.warmup import warm_up
from donations.wiring import Wiring

IdempotencyKey = Annotated[str, Header(alias=IDEMPOTENCY_HEADER.lower(), pattern=r"^[\x21-\x7e]{1,255}$")]
# The CAPTCHA widget's token, sent only when the API asked for one (403 challenge_required).
ChallengeToken = Annotated[
    str | None, Header(alias=CHALLENGE_HEADER.lower(), max_length=2048, pattern=r"^[\x21-\x7e]+$")
]

CREATE_RESPONSES: dict[int, OpenAPIResponse] = {
    201: {"description": "Charged", "content": {"application/json": {"model": DonationAnswer}}},
    202: {"description": "3-D Secure required", "content": {"application/json": {"model": DonationAnswer}}},
    **documented_errors(400, 402, 403, 409, 413, 415, 422, 429, 503),
}
WARMUP_RESPONSES: dict[int, OpenAPIResponse] = {
    204: {"description": "Warm: INIT done, the key fetched, the connections open; nothing written or charged"}
}
GET_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {"description": "Progress", "content": {"application/json": {"model": PublicDonation}}},
    **documented_errors(404, 503),
}

PLEDGE_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {"description": "The pledge", "content": {"application/json": {"model": PledgeView}}},
    **documented_errors(400, 403, 409, 503),
}
AUTH_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {
        "description": "Needs the bank's challenge, or paid",
        "content": {"application/json": {"model": Authentication}},
    },
    **documented_errors(400, 402, 403, 409, 503),
}
CARD_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {
        "description": "A SetupIntent for Stripe.js confirmCardSetup",
        "content": {"application/json": {"model": CardUpdate}},
    },
    **documented_errors(400, 403, 409, 503),
}
LINKS_RESPONSES: dict[int, OpenAPIResponse] = {
    202: {"description": "The same answer whether or not the address has a pledge"},
    **documented_errors(400, 503),
}

load_email_validation()  # during INIT: every donation's email is validated
settings = ChargeSettings.from_env()  # during INIT: a missing variable fails here, naming it
app = build_resolver(settings)


class DonationRequest(models.DonationRequest):
    """The body of POST /donations, validated by the resolver against this deployment's limits."""

    model_config = models.DonationRequest.BOUND_CONFIG  # its validator built now, during INIT
    limits = settings.request_limits


@cache
def wiring() -> Wiring:
    return Wiring(settings)


@app.post("/donations", responses=CREATE_RESPONSES, summary="Make a donation")
# The answer may carry the PaymentIntent's client_secret, which Stripe says must never be stored or logged:
# no response or exception goes to X-Ray as metadata (template.yaml's Globals turn capture off everywhere).
@tracer.capture_method(capture_response=False, capture_error=False)
def create_donation(
    donation: Annotated[DonationRequest, Body()],
    idempotency_key: IdempotencyKey,
    challenge_token: ChallengeToken = None,
) -> Response[dict[str, Any]]:
    # The Donations record doubles as the idempotency record (donations.charge.submit_donation):
    # a Powertools Idempotency record beside it would cost two more DynamoDB round trips per donation.
    deps = wiring()
    answer = submit_donation(
        donation,
        idempotency_key,
        # API Gateway's request id: follows the donation into its messages and the consumers' logs.
        app.current_event.request_context.request_id,
        store=deps.store,
        payments=deps.payments,
        publisher=deps.publisher,
        lease_seconds=math.ceil(app.lambda_context.get_remaining_time_in_millis() / 1000),
        identifiers=deps.identifiers,
        legacy_ids=settings.legacy_donation_ids,
        # Card testing: the client as API Gateway saw it (never a header it could set itself).
        screening=deps.screening,
        client=Client(app.current_event.request_context.identity.source_ip, challenge_token),
    )
    return Response(answer.status_code, content_types.APPLICATION_JSON, answer.body)


@app.get("/donations/<donation_id>", responses=GET_RESPONSES, summary="A donation's progress")
@tracer.capture_method(capture_response=False, capture_error=False)
def get_donation(donation_id: str) -> PublicDonation:
    donation = wiring().store.get(donation_id) if DONATION_ID.match(donation_id) else None
    if donation is None:
        raise DonationNotFound(f"No donation {donation_id}.", field="donation_id")
    return donation.public_view()


class LinkToken(BaseModel):
    """A pledge link's token (donations.pledge_links), posted in the body so that no URL carries it."""

    model_config = ConfigDict(extra="forbid")
    token: Annotated[str, StringConstraints(min_length=1, max_length=512)]


class AmountChange(LinkToken):
    amount: StrictInt
    """The new monthly amount in the pledge currency's minor units (bounds as POST /donations' amount)."""


class CardUpdateStart(LinkToken):
    attempt: Annotated[str, StringConstraints(pattern=ATTEMPT_ID)]
    """A random id the page makes for each submit: sent twice, it makes one SetupIntent."""


class CardUpdateDone(LinkToken):
    setup_intent_id: Annotated[str, StringConstraints(min_length=1, max_length=255)]


class LinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    email: Annotated[str, StringConstraints(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]


@app.post("/pledges/<pledge_id>", responses=PLEDGE_RESPONSES, summary="A monthly pledge, through its manage link")
@tracer.capture_method(capture_response=False, capture_error=False)
def see_pledge(pledge_id: str, link: Annotated[LinkToken, Body()]) -> PledgeView:
    return view_pledge(pledge_id, link.token, **_manage_ports())


@app.post("/pledges/<pledge_id>/cancel", responses=PLEDGE_RESPONSES, summary="Cancel a monthly pledge (one-time token)")
@tracer.capture_method(capture_response=False, capture_error=False)
def cancel_a_pledge(pledge_id: str, link: Annotated[LinkToken, Body()]) -> PledgeView:
    return cancel_pledge(pledge_id, link.token, **_manage_ports())


def _manage_ports() -> dict[str, Any]:
    # The publisher and request id: the cancellation's confirmation email goes on the receipt queue.
    deps = wiring()
    return {
        "pledges": deps.pledges,
        "links": deps.pledge_links,
        "publisher": deps.publisher,
        "request_id": app.current_event.request_context.request_id,
    }


@app.post("/pledges/<pledge_id>/amount", responses=PLEDGE_RESPONSES, summary="A new monthly amount (one-time token)")
@tracer.capture_method(capture_response=False, capture_error=False)
def change_the_amount(pledge_id: str, request: Annotated[AmountChange, Body()]) -> PledgeView:
    deps = wiring()
    return change_amount(
        pledge_id, request.token, request.amount, pledges=deps.pledges, links=deps.pledge_links,
        limits=settings.request_limits,
    )  # fmt: skip


@app.post("/pledges/<pledge_id>/skip", responses=PLEDGE_RESPONSES, summary="Skip the next month (one-time token)")
@tracer.capture_method(capture_response=False, capture_error=False)
def skip_a_month(pledge_id: str, link: Annotated[LinkToken, Body()]) -> PledgeView:
    return skip_next(pledge_id, link.token, pledges=wiring().pledges, links=wiring().pledge_links)


@app.post("/pledges/<pledge_id>/pause", responses=PLEDGE_RESPONSES, summary="Pause a monthly pledge (one-time token)")
@tracer.capture_method(capture_response=False, capture_error=False)
def pause_a_pledge(pledge_id: str, link: Annotated[LinkToken, Body()]) -> PledgeView:
    return pause(pledge_id, link.token, pledges=wiring().pledges, links=wiring().pledge_links)


@app.post("/pledges/<pledge_id>/resume", responses=PLEDGE_RESPONSES, summary="Resume a paused pledge (one-time token)")
@tracer.capture_method(capture_response=False, capture_error=False)
def resume_a_pledge(pledge_id: str, link: Annotated[LinkToken, Body()]) -> PledgeView:
    return resume(pledge_id, link.token, pledges=wiring().pledges, links=wiring().pledge_links)


@app.post("/pledges/<pledge_id>/card", responses=CARD_RESPONSES, summary="Start saving a new card for a pledge")
@tracer.capture_method(capture_response=False, capture_error=False)
def start_a_card_update(pledge_id: str, request: Annotated[CardUpdateStart, Body()]) -> CardUpdate:
    # The answer carries the SetupIntent's client_secret for Stripe.js: never logged, never traced.
    return start_card_update(pledge_id, request.token, request.attempt, **_card_ports())


@app.post(
    "/pledges/<pledge_id>/card/complete",
    responses=PLEDGE_RESPONSES,
    summary="After Stripe.js: the pledge charges the new card",
)
@tracer.capture_method(capture_response=False, capture_error=False)
def card_updated(pledge_id: str, request: Annotated[CardUpdateDone, Body()]) -> PledgeView:
    return finish_card_update(pledge_id, request.token, request.setup_intent_id, **_card_ports())


def _card_ports() -> dict[str, Any]:
    deps = wiring()
    return {"pledges": deps.pledges, "links": deps.pledge_links, "payments": deps.payments}


@app.post("/pledges/<pledge_id>/authenticate", responses=AUTH_RESPONSES, summary="Authenticate a renewal on-session")
@tracer.capture_method(capture_response=False, capture_error=False)
def authenticate_a_renewal(pledge_id: str, link: Annotated[LinkToken, Body()]) -> Authentication:
    # The answer carries the PaymentIntent's client_secret for Stripe.js: never logged, never traced.
    return start_authentication(pledge_id, link.token, **_authentication_ports())


@app.post(
    "/pledges/<pledge_id>/authenticate/complete",
    responses=AUTH_RESPONSES,
    summary="After Stripe.js: record the renewal",
)
@tracer.capture_method(capture_response=False, capture_error=False)
def renewal_authenticated(pledge_id: str, link: Annotated[LinkToken, Body()]) -> Authentication:
    return finish_authentication(pledge_id, link.token, **_authentication_ports())


def _authentication_ports() -> dict[str, Any]:
    deps = wiring()
    return {
        "pledges": deps.pledges,
        "links": deps.pledge_links,
        "store": deps.store,
        "payments": deps.payments,
        "publisher": deps.publisher,
    }


@app.post("/pledge-links", responses=LINKS_RESPONSES, summary="Email me a link to manage my monthly gift")
@tracer.capture_method(capture_response=False, capture_error=False)
def send_me_a_link(request: Annotated[LinkRequest, Body()]) -> Response[dict[str, Any]]:
    deps = wiring()
    request_manage_links(
        request.email,
        app.current_event.request_context.request_id,
        pledges=deps.pledges,
        identifiers=deps.identifiers,
        publisher=deps.publisher,
    )
    # The same answer whether or not the address has a pledge.
    return Response(HTTPStatus.ACCEPTED, content_types.APPLICATION_JSON, {"message": LINKS_ANSWER})


@app.post(WARMUP_PATH, responses=WARMUP_RESPONSES, summary="Warm the function while the donor fills in the form")
@tracer.capture_method
def warm_up_for_a_donation() -> Response[None]:
    # Safe for anyone to call (donations.warmup): reads only, of nobody's data; no body, no headers needed.
    warm_up(wiring().connection_openers())
    return Response(HTTPStatus.NO_CONTENT)


# During INIT, not on the first donor's path (with SnapStart, in the snapshot; donations.snapstart keeps it safe).
wiring().build_clients()


# clear_state: keys appended for one donation (donation_id, donor) must not label the next request's logs.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    refusal = early_refusal(event, settings)
    if refusal is not None:
        return proxy_response(refusal, settings)
    # Stripe's answer comes in time for the donor to get ours, a 503 with Retry-After at worst.
    with deadline.budget(context, settings.deadline_reserve_seconds):
        return app.resolve(with_canonical_media_type(event), context)


init_phase.end()  # the last statement of INIT: what it built is frozen, the collector back on
