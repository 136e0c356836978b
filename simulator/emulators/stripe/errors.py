"""Stripe's error envelope and the errors the emulator answers with.

Shape (docs.stripe.com/api/errors): ``{"error": {"type", "code", "param", "message", "doc_url",
"request_log_url", ...}}``. ``type`` is one of api_error, card_error, idempotency_error,
invalid_request_error; ``doc_url`` is ``https://stripe.com/docs/error-codes/<code with dashes>`` and
``request_log_url`` points at the request in the Dashboard's test logs
(``https://dashboard.stripe.com/test/logs/req_...?t=<unix>``), as real responses carry them.
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]

IN_USE_MESSAGE = (
    # Stripe's wording, as a real 409 shows it (github.com/yns01/stripe-go-invalid-char README).
    "There is currently another in-progress request using this Idempotent Key (that probably means you "
    "submitted twice, and the other request is still going through): {key}. Please try again later."
)
API_ERROR_MESSAGE = (
    "Sorry, something went wrong. We've already been notified of the problem, but if you need any "
    "help, you can reach us at support.stripe.com/contact."
)


def doc_url(code: str) -> str:
    return f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"


def request_log_url(request_id: str, at: int) -> str:
    return f"https://dashboard.stripe.com/test/logs/{request_id}?t={at}"


class StripeApiError(Exception):
    """A Stripe error response. ``executed`` marks errors raised after the endpoint acted
    (card declines): Stripe stores those under the idempotency key, validation errors it does not."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        extra: Json | None = None,
        executed: bool = False,
        docs: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error: Json = {"type": type_, "message": message}
        optional = {"code": code, "param": param, "decline_code": decline_code}
        self.error.update({k: v for k, v in optional.items() if v is not None})
        if docs is not None or code is not None:
            self.error["doc_url"] = docs or doc_url(str(code))
        self.error.update(extra or {})
        self.executed = executed

    def body(self, request_id: str | None = None, at: int | None = None) -> Json:
        """The response body; with ``request_id`` it links the Dashboard's log of that request."""
        error = dict(self.error)
        if request_id is not None and at is not None:
            error["request_log_url"] = request_log_url(request_id, at)
        return {"error": error}


def invalid(message: str, *, param: str | None = None, code: str | None = None, status: int = 400) -> StripeApiError:
    return StripeApiError(status, "invalid_request_error", message, code=code, param=param)


def missing(param: str) -> StripeApiError:
    return invalid(f"Missing required param: {param}.", param=param, code="parameter_missing")


def no_such(kind: str, obj_id: str, param: str, status: int = 404) -> StripeApiError:
    return invalid(f"No such {kind}: '{obj_id}'", param=param, code="resource_missing", status=status)


def exclusive(*params: str) -> StripeApiError:
    return invalid(
        f"You may only specify one of these parameters: {', '.join(params)}.",
        param=params[0],
        code="parameters_exclusive",
    )


def api_error(status: int = 500) -> StripeApiError:
    return StripeApiError(status, "api_error", API_ERROR_MESSAGE)


def key_in_use(key: str) -> StripeApiError:
    """409 for a request whose idempotency key another request is still executing under."""
    return invalid(IN_USE_MESSAGE.format(key=key), code="idempotency_key_in_use", status=409)


def key_reused_elsewhere(key: str, first: str, now: str) -> StripeApiError:
    message = (
        "Keys for idempotent requests can only be used for the same endpoint they were first used "
        f"for ('{first}' vs '{now}'). Try using a key other than '{key}' if you meant to execute a "
        "different request."
    )
    return StripeApiError(400, "idempotency_error", message)


def key_reused_with_other_params(key: str) -> StripeApiError:
    message = (
        "Keys for idempotent requests can only be used with the same parameters they were first "
        f"used with. Try using a key other than '{key}' if you meant to execute a different request."
    )
    return StripeApiError(400, "idempotency_error", message)
