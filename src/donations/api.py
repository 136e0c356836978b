"""HTTP edge shared by the API functions: early refusals and the one mapping from errors to answers."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from botocore.exceptions import BotoCoreError, ClientError

from donations.errors import (
    CardDataRefused,
    DonationError,
    InvalidDonation,
    PayloadTooLarge,
    RequestInProgress,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from donations.models import ErrorAnswer
from donations.observability import logger
from donations.settings import Settings

IDEMPOTENCY_HEADER = "Idempotency-Key"


def build_resolver(settings: Settings) -> APIGatewayRestResolver:
    cors = CORSConfig(allow_origin=settings.cors_origin, allow_headers=["Content-Type", IDEMPOTENCY_HEADER])
    app = APIGatewayRestResolver(cors=cors, enable_validation=True)
    _register_error_handlers(app)
    return app


_ERROR_DESCRIPTIONS = {
    400: "Invalid request (the error names the field)",
    402: "Card declined (with Stripe's decline code)",
    404: "Unknown donation",
    409: "The same donation is being processed",
    413: "Body too large",
    415: "Body is not JSON",
    422: "Idempotency-Key reused with another body",
    503: "Payment provider or storage unavailable; retry after Retry-After seconds",
}


def documented_errors(*statuses: int) -> dict[int, dict[str, Any]]:
    """OpenAPI response entries for the error answers a route can give."""
    return {
        status: {"description": _ERROR_DESCRIPTIONS[status], "content": {"application/json": {"model": ErrorAnswer}}}
        for status in statuses
    }


def error_response(error: DonationError) -> Response[str]:
    headers: dict[str, str] = {}
    if isinstance(error, ServiceUnavailable):
        headers["Retry-After"] = str(error.retry_after_seconds)
    return Response(
        status_code=int(error.status),
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(error.body()),
        headers=headers,
    )


def early_refusal(event: Mapping[str, Any], settings: Settings) -> DonationError | None:
    """Refuse what must never reach parsing: oversized bodies and non-JSON posts.

    Runs before the resolver's validation so a 1 MB body is not decoded, scanned and logged.
    """
    if event.get("httpMethod") not in {"POST", "PUT", "PATCH"}:
        return None
    body = event.get("body") or ""
    if len(body) > settings.max_body_bytes * (2 if event.get("isBase64Encoded") else 1):
        return PayloadTooLarge(f"The body must not exceed {settings.max_body_bytes} bytes.")
    headers = {key.lower(): value for key, value in (event.get("headers") or {}).items()}
    content_type = (headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        return UnsupportedMediaType("Send the donation as application/json.", field="Content-Type")
    return None


def proxy_response(error: DonationError, settings: Settings) -> dict[str, Any]:
    """An API Gateway proxy answer for refusals made before the resolver runs."""
    response = error_response(error)
    headers = {**response.headers, "Content-Type": content_types.APPLICATION_JSON}
    headers["Access-Control-Allow-Origin"] = settings.cors_origin
    return {"statusCode": response.status_code, "headers": headers, "body": response.body, "isBase64Encoded": False}


def validation_error(errors: Sequence[Mapping[str, Any]]) -> DonationError:
    """Turn the resolver's pydantic errors into one clear error. Never echoes the input value."""
    first = errors[0] if errors else {"loc": (), "type": "invalid", "msg": "Invalid request"}
    location = [str(part) for part in first.get("loc", ())]
    kind = str(first.get("type", "invalid"))
    if location[:1] == ["header"]:
        return InvalidDonation(
            f"The {IDEMPOTENCY_HEADER} header is required: 1 to 255 printable characters.",
            field=IDEMPOTENCY_HEADER,
            code="invalid_idempotency_key",
        )
    if kind == "card_data":
        return CardDataRefused(str(first.get("msg")))
    if kind in {"json_invalid", "model_attributes_type", "dict_type"} or location in (["body"], []):
        return InvalidDonation("The body must be a JSON object describing the donation.", code="invalid_json")
    field = ".".join(location[1:] if location[:1] == ["body"] else location)
    if kind == "extra_forbidden":
        return InvalidDonation(f"Unknown field: {field}.", field=field, code="unknown_field")
    if kind == "missing":
        return InvalidDonation(f"{field} is required.", field=field, code="missing_field")
    return InvalidDonation(f"{field}: {first.get('msg')}", field=field, code=f"invalid_{field.split('.')[0]}")


def _register_error_handlers(app: APIGatewayRestResolver) -> None:
    @app.exception_handler(RequestValidationError)
    def _invalid(error: RequestValidationError) -> Response[str]:
        refusal = validation_error(error.errors())
        logger.info("Request refused", extra={"code": refusal.code, "field": refusal.field})
        return error_response(refusal)

    @app.exception_handler(DonationError)
    def _donation_error(error: DonationError) -> Response[str]:
        logger.info("Request refused", extra={"code": error.code, "status": int(error.status)})
        return error_response(error)

    @app.exception_handler(ClientError)
    @app.exception_handler(BotoCoreError)
    def _storage_down(_: Exception) -> Response[str]:
        logger.exception("Storage unavailable")
        return error_response(ServiceUnavailable("The service is busy; please try again shortly."))

    @app.exception_handler(Exception)
    def _unexpected(_: Exception) -> Response[str]:
        # Never a bare 500 to the donor: a bug answers 503 (retryable) and shows up in logs and alarms.
        logger.exception("Unexpected error")
        return error_response(ServiceUnavailable("Something went wrong on our side; please try again shortly."))


def answer_idempotency_conflicts(app: APIGatewayRestResolver) -> None:
    """For routes behind Powertools Idempotency: a duplicate still running is a 409, its store down a 503.

    Imported here, not at the top: only the Stripe webhook uses Powertools Idempotency, and the
    charge function need not load it (the donation record is the charge's idempotency record).
    """
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyPersistenceLayerError,
    )

    @app.exception_handler(IdempotencyAlreadyInProgressError)
    def _in_progress(_: IdempotencyAlreadyInProgressError) -> Response[str]:
        return error_response(RequestInProgress("This event is being processed; retry in a moment."))

    @app.exception_handler(IdempotencyPersistenceLayerError)
    def _store_down(_: IdempotencyPersistenceLayerError) -> Response[str]:
        logger.exception("Idempotency store unavailable")
        return error_response(ServiceUnavailable("The service is busy; please try again shortly."))
