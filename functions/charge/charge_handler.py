"""POST /donations and GET /donations/{donation_id}: parse, call the core, shape the answer."""

from functools import cache
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Header
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from donations.api import IDEMPOTENCY_HEADER, build_resolver, documented_errors, early_refusal, proxy_response
from donations.charge import DONATION_ID, submit_donation
from donations.errors import DonationNotFound
from donations.models import DonationAnswer, DonationRequest, PublicDonation
from donations.observability import logger, metrics, tracer
from donations.settings import get_settings
from donations.wiring import Wiring

IdempotencyKey = Annotated[str, Header(alias=IDEMPOTENCY_HEADER.lower(), pattern=r"^[\x21-\x7e]{1,255}$")]

CREATE_RESPONSES = {
    201: {"description": "Charged", "content": {"application/json": {"model": DonationAnswer}}},
    202: {"description": "3-D Secure required", "content": {"application/json": {"model": DonationAnswer}}},
    **documented_errors(400, 402, 409, 413, 415, 422, 503),
}
GET_RESPONSES = {
    200: {"description": "Progress", "content": {"application/json": {"model": PublicDonation}}},
    **documented_errors(404, 503),
}

settings = get_settings()
app = build_resolver(settings)
idempotency_config = IdempotencyConfig(
    event_key_jmespath="idempotency_key",
    payload_validation_jmespath="body",
    expires_after_seconds=settings.idempotency_ttl_seconds,
)


@cache
def wiring() -> Wiring:
    return Wiring(get_settings())


@cache
def idempotent_submit() -> Any:
    """The submission wrapped in Powertools Idempotency: a resubmission replays the stored answer."""
    persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=wiring().dynamodb)

    @idempotent_function(data_keyword_argument="submission", persistence_store=persistence, config=idempotency_config)
    def submit(submission: dict[str, Any]) -> dict[str, Any]:
        deps = wiring()
        answer = submit_donation(
            DonationRequest.model_validate(submission["body"]),
            submission["idempotency_key"],
            submission["correlation_id"],
            store=deps.store,
            payments=deps.payments,
            publisher=deps.publisher,
        )
        return {"status_code": answer.status_code, "body": answer.body}

    return submit


@app.post("/donations", responses=CREATE_RESPONSES, summary="Make a donation")
@tracer.capture_method
def create_donation(
    donation: Annotated[DonationRequest, Body()], idempotency_key: IdempotencyKey
) -> Response[dict[str, Any]]:
    submission = {
        "idempotency_key": idempotency_key,
        "body": donation.model_dump(mode="json"),
        # API Gateway's request id: follows the donation into its messages and the consumers' logs.
        "correlation_id": app.current_event.request_context.request_id,
    }
    answer = idempotent_submit()(submission=submission)
    return Response(answer["status_code"], content_types.APPLICATION_JSON, answer["body"])


@app.get("/donations/<donation_id>", responses=GET_RESPONSES, summary="A donation's progress")
@tracer.capture_method
def get_donation(donation_id: str) -> PublicDonation:
    donation = wiring().store.get(donation_id) if DONATION_ID.match(donation_id) else None
    if donation is None:
        raise DonationNotFound(f"No donation {donation_id}.", field="donation_id")
    return donation.public_view()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    refusal = early_refusal(event, settings)
    if refusal is not None:
        return proxy_response(refusal, settings)
    idempotency_config.register_lambda_context(context)
    return app.resolve(event, context)
