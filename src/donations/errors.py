"""The error hierarchy, and the one place that maps errors to HTTP answers and retry decisions.

Retryable errors go back to the queue (with backoff); permanent ones are recorded on the
donation and parked for an operator at once. Classification looks at exception types and
status codes, never at message text.

Every function imports this module, but each uses one provider SDK at most: the Stripe and SendGrid
error types are looked up only in a process that has imported that SDK (an error of an SDK that was
never imported cannot occur), so no function loads an SDK here that it does not otherwise use.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    import stripe


class DonationError(Exception):
    """A failure with an HTTP answer: status, a stable code and a message safe to show a donor."""

    status: HTTPStatus = HTTPStatus.BAD_REQUEST
    code: str = "invalid_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code

    def body(self) -> dict[str, dict[str, str]]:
        error = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


class InvalidDonation(DonationError):
    status = HTTPStatus.BAD_REQUEST
    code = "invalid_request"


class CardDataRefused(InvalidDonation):
    code = "card_data_refused"


class WeakIdempotencyKey(InvalidDonation):
    """An Idempotency-Key too short or too repetitive to be unguessable (donations.identifiers)."""

    code = "weak_idempotency_key"


class PayloadTooLarge(DonationError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "payload_too_large"


class UnsupportedMediaType(DonationError):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    code = "unsupported_media_type"


class DonationNotFound(DonationError):
    status = HTTPStatus.NOT_FOUND
    code = "not_found"


class LinkRefused(DonationError):
    """A pledge link that is not ours, not for this pledge or not for this action (donations.pledge_links):
    one answer for all, so it tells nothing about which pledges exist."""

    status = HTTPStatus.FORBIDDEN
    code = "link_invalid"


class LinkExpired(LinkRefused):
    code = "link_expired"


class PledgeNotMadeYet(DonationError):
    """A valid link to a pledge that does not exist (yet): the first gift's receipt links to the pledge the
    tokenize step is still making (or could not make: its message waits in the DLQ for an operator).
    Only a link we signed for this id gets this answer, so it tells a stranger nothing."""

    status = HTTPStatus.NOT_FOUND
    code = "pledge_not_made_yet"


class LinkUsed(DonationError):
    """A one-time pledge link (a cancel token) that was already used: nothing is done again."""

    status = HTTPStatus.CONFLICT
    code = "link_used"


class NothingToAuthenticate(DonationError):
    """An authentication link for a renewal that no longer waits for the donor (paid another way, or its
    PaymentIntent canceled): nothing is charged."""

    status = HTTPStatus.CONFLICT
    code = "nothing_to_authenticate"


class ChangeRefused(DonationError):
    """The pledge cannot take the donor's change in its state (canceled, lapsed, a retry due): nothing changed."""

    status = HTTPStatus.CONFLICT
    code = "change_not_allowed"


class RenewalInProgress(DonationError):
    """This month's renewal is queued or being charged: skipping or pausing that month now could not stop it."""

    status = HTTPStatus.CONFLICT
    code = "renewal_in_progress"


class CardNotSaved(DonationError):
    """A card update that saved no card (the SetupIntent did not succeed: declined, or the bank's check
    failed), or for a pledge that is canceled: the pledge keeps its card."""

    status = HTTPStatus.CONFLICT
    code = "card_not_saved"


class IdempotencyKeyReused(DonationError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "idempotency_key_reused"


class RequestInProgress(DonationError):
    status = HTTPStatus.CONFLICT
    code = "request_in_progress"


# What a donor is told about a decline, by Stripe's donor-safe decline code (never the issuer's own).
DONOR_DECLINE_MESSAGES = {
    "insufficient_funds": "Your card has insufficient funds.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "Your card's security code is incorrect.",
    "processing_error": "An error occurred while processing your card. Please try again.",
    "card_velocity_exceeded": "Your card has exceeded its limit. Please use another card.",
}
GENERIC_DECLINE = "Your card was declined. Please use another card or contact your bank."


def donor_decline_message(decline_code: str | None) -> str:
    return DONOR_DECLINE_MESSAGES.get(decline_code or "") or GENERIC_DECLINE


class CardDeclined(DonationError):
    status = HTTPStatus.PAYMENT_REQUIRED
    code = "card_declined"

    def __init__(self, message: str, *, code: str, decline_code: str | None) -> None:
        super().__init__(message, code=code)
        self.decline_code = decline_code
        self.payment_intent_id: str | None = None
        # The issuer's own decline code, before donor-safe masking (lost_card, not generic_decline):
        # never shown to the donor; dunning decides on it (donations.dunning).
        self.issuer_decline_code: str | None = decline_code
        # The declined card's Stripe fingerprint, from the error's PaymentMethod (donations.screening counts it).
        self.card_fingerprint: str | None = None

    def body(self) -> dict[str, dict[str, str]]:
        body = super().body()
        if self.decline_code:
            body["error"]["decline_code"] = self.decline_code
        return body


class ServiceUnavailable(DonationError):
    """The payment provider (or our own storage) cannot be reached: the donor may retry later."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "service_unavailable"
    retry_after_seconds = 5

    def __init__(self, message: str, *, retry_after_seconds: int | None = None) -> None:
        super().__init__(message)
        if retry_after_seconds is not None:
            self.retry_after_seconds = retry_after_seconds


class ChargeIndeterminate(ServiceUnavailable):
    """Stripe answered a server error that it stored under the charge's idempotency key: whether the
    PaymentIntent exists is unknown, and replaying the key returns the same error for 24 hours."""

    # The donor's retry is answered once the attempt is this old (donations.charge waits that long
    # before it takes an empty PaymentIntent list as proof that the attempt charged nothing).
    retry_after_seconds = 30


# -- card testing (donations.screening): refused before anything reaches Stripe.


class TooManyAttempts(DonationError):
    """A velocity limit: too many declines from this address, email or card. Nothing was charged."""

    status = HTTPStatus.TOO_MANY_REQUESTS
    code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after_seconds: int, reason: str) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
        self.reason = reason
        """What was over its limit (ip, email, card); logged, never shown to the client."""


class ChallengeRequired(DonationError):
    """Prove you are human first: the form shows the CAPTCHA widget and sends its token back."""

    status = HTTPStatus.FORBIDDEN
    code = "challenge_required"

    def __init__(self, message: str, *, challenge: dict[str, str], reason: str) -> None:
        super().__init__(message)
        self.challenge = challenge
        self.reason = reason

    def body(self) -> dict[str, dict[str, str]]:
        body = super().body()
        body["error"]["challenge"] = self.challenge  # type: ignore[assignment]
        return body


class ChallengeFailed(ChallengeRequired):
    """The token did not verify (forged, expired or used already): solve the challenge again."""

    code = "challenge_failed"


# -- Stripe webhooks: Stripe retries any answer that is not 2xx, for days; a 400 it retries in vain.


class InvalidWebhookSignature(DonationError):
    """Unsigned, mis-signed or older than the tolerance: not from Stripe (or replayed), nothing done."""

    status = HTTPStatus.BAD_REQUEST
    code = "invalid_signature"


class InvalidWebhookEvent(DonationError):
    """Signed by Stripe but not an event we can read."""

    status = HTTPStatus.BAD_REQUEST
    code = "invalid_event"


class WebhookApiVersionRefused(DonationError):
    """Signed by Stripe, but rendered in another API version than the one we pin: its objects may not
    have the shape we read. A 4xx on purpose: Stripe keeps the event as undelivered and retries it (up
    to 3 days in live mode), shows the failures on the endpoint and emails about an endpoint that keeps
    failing, where a 2xx would drop the event for good. Fixed by ``donations-ops stripe install-webhook``."""

    status = HTTPStatus.BAD_REQUEST
    code = "api_version_mismatch"


class DonationNotRecordedYet(DonationError):
    """The event names a donation we have not written yet: Stripe's retry will find it."""

    status = HTTPStatus.CONFLICT
    code = "donation_not_recorded_yet"


class StepFailure(Exception):
    """A background step failed; subclasses say whether trying again can help."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RetryableStepFailure(StepFailure):
    """Timeouts, connection errors, 429, 5xx, lock timeouts: back to the queue with backoff."""


class StoredServerError(RetryableStepFailure):
    """Stripe stored a server error under the step's idempotency key: the step moves to new keys
    (after looking for what the spent ones did) and is retried."""


class PermanentStepFailure(StepFailure):
    """Retrying cannot help (bad address, card that cannot be saved, missing donation): park it."""


@dataclass(frozen=True)
class Classified:
    retryable: bool
    reason: str
    # The provider refused our credentials (key wrong, revoked or missing a permission): no retry can
    # succeed until an operator rotates the secret, so the caller alerts at once.
    credentials_refused: bool = False


_RETRYABLE_HTTP = {408, 409, 425, 429}
# AWS error codes that mean "slow down" (they come with HTTP 400, so the status alone misses them).
_AWS_THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "TransactionInProgressException",
        "LimitExceededException",
    }
)


def classify(error: BaseException) -> Classified:
    """Decide whether a provider or AWS error is worth retrying.

    Unknown errors count as retryable: a bug then ends in the DLQ after maxReceiveCount
    (visible to operators) instead of being dropped as permanent on first sight.
    """
    if isinstance(error, StepFailure):
        return Classified(isinstance(error, RetryableStepFailure), error.reason)
    stripe_sdk = sys.modules.get("stripe")
    if stripe_sdk is not None and isinstance(error, stripe_sdk.StripeError):
        return _classify_stripe(error)
    sendgrid_errors = sys.modules.get("python_http_client.exceptions")  # SendGrid's HTTP layer
    if sendgrid_errors is not None and isinstance(error, sendgrid_errors.HTTPError):
        return _classify_sendgrid(error.status_code, sendgrid_first_error(error))
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "ClientError")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
        retryable = status >= 500 or status in _RETRYABLE_HTTP or code in _AWS_THROTTLING_CODES
        return Classified(retryable, f"aws:{code}")
    # requests' RequestException (Stripe's transport) is an OSError too.
    if isinstance(error, BotoCoreError | socket.timeout | OSError):
        return Classified(True, f"network:{type(error).__name__}")
    return Classified(True, f"unexpected:{type(error).__name__}")


def _classify_stripe(error: stripe.StripeError) -> Classified:
    import stripe  # already loaded: the error came from it

    code = error.code or type(error).__name__
    if isinstance(error, stripe.APIConnectionError | stripe.RateLimitError):
        return Classified(True, f"stripe:{code}")
    if error.headers and error.headers.get("Stripe-Should-Retry") == "true":
        return Classified(True, f"stripe:{code}")
    if error.code == "lock_timeout":
        return Classified(True, "stripe:lock_timeout")
    if isinstance(error, stripe.APIError) or (error.http_status or 0) >= 500:
        return Classified(True, f"stripe:{code}")
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        # Our key is wrong or revoked: an operator must fix it, after which a redrive completes the step.
        return Classified(True, f"stripe:{code}")
    return Classified(False, f"stripe:{code}")


def _classify_sendgrid(status: int, first_error: SendGridError) -> Classified:
    """SendGrid's documented meanings, from the status and the field its error body names.

    SendGrid v3 API "Errors" and v3 Mail Send "Errors" pages: 401 the key is invalid, deleted or revoked;
    403 with field "from" the from address is not a verified Sender Identity (Twilio error 60222), any
    other 403 ("access forbidden") a key without the Mail Send permission; 400/413 the request itself;
    429 rate limited; 5xx SendGrid's side.

    One 401 is not about the key: SendGrid's "4XX API Errors and Troubleshooting Suggestions" and
    "Understanding the Maximum Credits Exceeded error" support articles give 401 with the body
    ``{"errors": [{"message": "Maximum credits exceeded", "field": null, "help": null}]}`` when the
    account has used its plan's credits. That body has no field or code to tell it apart (Twilio's error
    60603 names the same case for Verify), so this one case is recognised by its message text.
    """
    if status == 401 and first_error.message == SENDGRID_CREDITS_EXCEEDED:
        return Classified(False, "sendgrid:credits_exceeded")
    if status == 401:
        return Classified(False, "sendgrid:unauthorized", credentials_refused=True)
    if status == 403 and first_error.field == "from":
        return Classified(False, "sendgrid:sender_not_verified")
    if status == 403:
        return Classified(False, "sendgrid:forbidden", credentials_refused=True)
    return Classified(status >= 500 or status in _RETRYABLE_HTTP, f"sendgrid:http_{status}")


SENDGRID_CREDITS_EXCEEDED = "Maximum credits exceeded"
"""The message of SendGrid's 401 for an account out of credits (see _classify_sendgrid)."""


@dataclass(frozen=True)
class SendGridError:
    """SendGrid's first error (``{"errors": [{"message", "field", "help"}]}``): what it names, if anything."""

    field: str | None = None
    message: str | None = None


def sendgrid_first_error(error: BaseException) -> SendGridError:
    try:
        errors = error.to_dict.get("errors") or []  # type: ignore[attr-defined]
        first = errors[0] if errors else {}
        field, message = first.get("field"), first.get("message")
    except (ValueError, AttributeError, TypeError, IndexError):  # not JSON (a proxy's HTML page), or odd JSON
        return SendGridError()
    return SendGridError(str(field) if field else None, str(message) if message else None)
