"""HTTP edge shared by the API functions: early refusals and the one mapping from errors to answers."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from email.message import Message
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from botocore.exceptions import BotoCoreError, ClientError

from donations.errors import (
    CardDataRefused,
    DonationError,
    InvalidDonation,
    PayloadTooLarge,
    RequestInProgress,
    ServiceUnavailable,
    TooManyAttempts,
    UnsupportedMediaType,
)
from donations.models import ErrorAnswer
from donations.observability import logger
from donations.settings import ApiSettings
from donations.strict_json import invalid_encoding, loads_strict

IDEMPOTENCY_HEADER = "Idempotency-Key"
CHALLENGE_HEADER = "Challenge-Token"  # the CAPTCHA widget's token (donations.screening)
RETRY_AFTER_HEADER = "Retry-After"
# The warm-up a form sends while the donor types (donations.warmup): a POST without body or headers.
WARMUP_PATH = "/warmup"
JSON_MEDIA_TYPE = "application/json"
# RFC 8259 section 8.1: JSON exchanged between systems is UTF-8 ("utf8" is a common alias).
_UTF8_CHARSETS = frozenset({"utf-8", "utf8"})


def build_resolver(settings: ApiSettings) -> APIGatewayRestResolver:
    cors = CORSConfig(
        allow_origin=settings.cors_origin,
        allow_headers=["Content-Type", IDEMPOTENCY_HEADER, CHALLENGE_HEADER],
        # A form on another origin reads only CORS-safelisted response headers, and Retry-After is not one.
        expose_headers=[RETRY_AFTER_HEADER],
    )
    # The resolver parses the body with our strict reader (repeated keys, depth, NaN, lone surrogates).
    app = APIGatewayRestResolver(cors=cors, enable_validation=True, json_body_deserializer=loads_strict)
    _register_error_handlers(app)
    return app


_ERROR_DESCRIPTIONS = {
    400: "Invalid request (the error names the field)",
    402: "Card declined (with Stripe's decline code)",
    403: "A CAPTCHA is required (challenge_required) or did not verify (challenge_failed); the error's "
    "challenge says which widget to show. Pledge routes: the link is not valid (link_invalid) or has expired "
    "(link_expired)",
    404: "Unknown donation",
    409: "The same donation is being processed; pledge routes: a one-time link already used (link_used)",
    413: "Body too large",
    415: "Body is not JSON",
    422: "Idempotency-Key reused with another body",
    429: "Too many declined attempts (too_many_attempts); nothing was charged; retry after Retry-After seconds",
    503: "Payment provider or storage unavailable; retry after Retry-After seconds",
}


def documented_errors(*statuses: int) -> dict[int, OpenAPIResponse]:
    """OpenAPI response entries for the error answers a route can give."""
    return {
        status: {"description": _ERROR_DESCRIPTIONS[status], "content": {"application/json": {"model": ErrorAnswer}}}
        for status in statuses
    }


def error_response(error: DonationError) -> Response[str]:
    headers: dict[str, str] = {}
    if isinstance(error, ServiceUnavailable | TooManyAttempts):
        headers[RETRY_AFTER_HEADER] = str(error.retry_after_seconds)
    return Response(
        status_code=int(error.status),
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(error.body()),
        headers=headers,
    )


def early_refusal(event: Mapping[str, Any], settings: ApiSettings) -> DonationError | None:
    """Refuse what must never reach parsing: oversized bodies, non-JSON posts, repeated singleton headers
    and bodies that are not UTF-8.

    Runs before the resolver's validation so a 1 MB body is not decoded, scanned and logged. Media
    types are compared case-insensitively (RFC 9110 section 8.3.1).
    """
    if event.get("httpMethod") not in {"POST", "PUT", "PATCH"} or event.get("resource") == WARMUP_PATH:
        return None  # the warm-up reads no body: whatever came with it is never decoded
    body = event.get("body") or ""
    encoded = bool(event.get("isBase64Encoded"))
    too_large = oversized_body(event, settings.max_body_bytes)
    if too_large is not None:
        return too_large
    content_types = header_values(event, "Content-Type")
    media_type, charset = _media_type(content_types[0] if len(content_types) == 1 else "")
    if media_type != JSON_MEDIA_TYPE or (charset is not None and charset not in _UTF8_CHARSETS):
        return UnsupportedMediaType("Send the donation as application/json (UTF-8), once.", field="Content-Type")
    if len(header_values(event, IDEMPOTENCY_HEADER)) > 1:
        return InvalidDonation(
            f"Send exactly one {IDEMPOTENCY_HEADER} header.", field=IDEMPOTENCY_HEADER, code="invalid_idempotency_key"
        )
    raw = _body_bytes(body, encoded)
    if raw is None:
        return invalid_encoding()
    if len(raw) > settings.max_body_bytes:
        return PayloadTooLarge(f"The body must not exceed {settings.max_body_bytes} bytes.")
    return None


def oversized_body(event: Mapping[str, Any], max_bytes: int) -> PayloadTooLarge | None:
    """A refusal when the body is longer than ``max_bytes``, judged from its length alone (nothing decoded).

    A UTF-8 character is 1 to 4 bytes and base64 carries 3 bytes in 4 characters, so the text's
    length bounds the bytes: only bodies near the limit are measured in bytes.
    """
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        size = len(body) * 3 // 4
    elif len(body) > max_bytes or len(body) * 4 <= max_bytes:
        size = len(body)
    else:
        size = len(body.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        return PayloadTooLarge(f"The body must not exceed {max_bytes} bytes.")
    return None


def header_values(event: Mapping[str, Any], name: str) -> list[str]:
    """Every value a header was sent with, whatever the case of its name.

    API Gateway REST puts every value in ``multiValueHeaders`` and one of them in ``headers``
    ("Input format of a Lambda function for proxy integration"); events without the former
    (hand-made, or from other sources) are read from the latter.
    """
    wanted = name.lower()
    multi = event.get("multiValueHeaders") or {}
    values = [value for key, listed in multi.items() if key.lower() == wanted for value in listed or []]
    if values:
        return values
    return [value for key, value in (event.get("headers") or {}).items() if key.lower() == wanted]


def _media_type(content_type: str) -> tuple[str, str | None]:
    """(media type, charset), lowercased by the standard library's RFC 2045 parser; text/plain if malformed."""
    message = Message()
    message["Content-Type"] = content_type
    return message.get_content_type(), message.get_content_charset()


def _body_bytes(body: str, base64_encoded: bool) -> bytes | None:
    """The body's bytes, or None when they are not UTF-8.

    With a binaryMediaTypes match API Gateway passes the bytes base64-encoded; without one it passes
    text it has already decoded as UTF-8, where bytes that were not UTF-8 no longer exist as such
    (see the README, "What API Gateway does"): U+FFFD, the replacement character, is what is left.
    A donor never needs to type it, so a body holding it is refused rather than charged (and
    receipted) with replacement characters in the donor's name.
    """
    if base64_encoded:
        try:
            raw = base64.b64decode(body, validate=True)
            raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return raw
    if "\ufffd" in body:
        return None
    return body.encode("utf-8", "surrogatepass")


def with_canonical_media_type(event: dict[str, Any]) -> dict[str, Any]:
    """The event with its (already checked) Content-Type spelled ``application/json``.

    Powertools' body parser compares the media type case-sensitively; after early_refusal has
    accepted ``Application/JSON; charset=UTF-8`` the parser must see the same type.
    """

    def canonical(headers: Mapping[str, Any] | None, value: Any) -> dict[str, Any] | None:
        if headers is None:
            return None
        return {key: value if key.lower() == "content-type" else item for key, item in headers.items()}

    return {
        **event,
        "headers": canonical(event.get("headers"), JSON_MEDIA_TYPE),
        "multiValueHeaders": canonical(event.get("multiValueHeaders"), [JSON_MEDIA_TYPE]),
    }


def proxy_response(error: DonationError, settings: ApiSettings) -> dict[str, Any]:
    """An API Gateway proxy answer for refusals made before the resolver runs."""
    response = error_response(error)
    headers = {**response.headers, "Content-Type": content_types.APPLICATION_JSON}
    headers["Access-Control-Allow-Origin"] = settings.cors_origin
    headers["Access-Control-Expose-Headers"] = RETRY_AFTER_HEADER
    return {"statusCode": response.status_code, "headers": headers, "body": response.body, "isBase64Encoded": False}


def validation_error(errors: Sequence[Mapping[str, Any]]) -> DonationError:
    """Turn the resolver's pydantic errors into one clear error. Never echoes the input value."""
    first = errors[0] if errors else {"loc": (), "type": "invalid", "msg": "Invalid request"}
    location = [str(part) for part in first.get("loc", ())]
    kind = str(first.get("type", "invalid"))
    if location[:2] == ["header", CHALLENGE_HEADER.lower()]:
        return InvalidDonation(
            f"The {CHALLENGE_HEADER} header must be the security check's token.",
            field=CHALLENGE_HEADER,
            code="invalid_challenge_token",
        )
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
