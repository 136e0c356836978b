"""Stripe: charge a donation once, and save its card for later. Idempotency keys derive from the donation id."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import stripe

from donations.errors import (
    CardDeclined,
    IdempotencyKeyReused,
    InvalidDonation,
    PermanentStepFailure,
    RetryableStepFailure,
    ServiceUnavailable,
    classify,
)
from donations.models import Donation
from donations.settings import Settings
from donations.store import SavedCard

# Stripe advises not to tell a donor that their card was reported lost or stolen.
_UNDISCLOSED_DECLINE_CODES = frozenset({"lost_card", "stolen_card", "pickup_card", "fraudulent", "merchant_blacklist"})
_DONOR_MESSAGES = {
    "insufficient_funds": "Your card has insufficient funds.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "Your card's security code is incorrect.",
    "processing_error": "An error occurred while processing your card. Please try again.",
    "card_velocity_exceeded": "Your card has exceeded its limit. Please use another card.",
}
_GENERIC_DECLINE = "Your card was declined. Please use another card or contact your bank."


def build_stripe_client(settings: Settings, api_key: str) -> stripe.StripeClient:
    """A client with explicit retries (the SDK's default is a single attempt) and a bounded timeout."""
    base_addresses: dict[str, str] = {"api": settings.stripe_api_base} if settings.stripe_api_base else {}
    return stripe.StripeClient(
        api_key,
        base_addresses=base_addresses,  # type: ignore[arg-type]
        max_network_retries=settings.stripe_max_network_retries,
        http_client=stripe.RequestsClient(timeout=settings.provider_timeout_seconds),
    )


class ChargeState(StrEnum):
    SUCCEEDED = "succeeded"
    REQUIRES_ACTION = "requires_action"


@dataclass(frozen=True)
class ChargeOutcome:
    state: ChargeState
    payment_intent_id: str
    payment_method_id: str | None
    client_secret: str | None = None


@dataclass(frozen=True)
class IntentSnapshot:
    """What the reconciler needs to know about a PaymentIntent, free of SDK types."""

    id: str
    status: str
    payment_method_id: str | None
    decline_code: str | None = None
    """Set when the last payment attempt was a card decline (donor-safe code, as in CardDeclined)."""
    authentication_failed: bool = False


def charge_idempotency_key(donation_id: str) -> str:
    return f"donation-{donation_id}-charge"


class StripePayments:
    def __init__(self, client: stripe.StripeClient) -> None:
        self._client = client

    def charge(self, donation: Donation) -> ChargeOutcome:
        """Create and confirm one PaymentIntent; the same donation always replays the same intent.

        Raises CardDeclined (402), InvalidDonation (400) or ServiceUnavailable (503).
        """
        params: dict[str, Any] = {
            "amount": donation.amount,
            "currency": donation.currency,
            "payment_method": donation.payment_method,
            "allowed_payment_method_types": ["card"],
            "confirm": True,
            "metadata": {**donation.metadata, "donation_id": donation.donation_id},
            "description": f"Donation {donation.donation_id}",
        }
        if donation.save_card:
            # Without this Stripe refuses to attach the PaymentMethod to a Customer afterwards.
            params["setup_future_usage"] = "off_session"
        try:
            intent = self._client.v1.payment_intents.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": charge_idempotency_key(donation.donation_id)},
            )
        except stripe.CardError as error:
            raise _declined(error) from error
        except stripe.IdempotencyError as error:
            raise IdempotencyKeyReused("This donation was already submitted with other details.") from error
        except stripe.InvalidRequestError as error:
            if error.param == "payment_method":
                raise InvalidDonation(
                    "The payment method is not valid; please enter your card again.",
                    field="payment_method",
                    code="invalid_payment_method",
                ) from error
            raise ServiceUnavailable("The payment could not be processed right now.") from error
        except stripe.StripeError as error:
            raise ServiceUnavailable("The payment service is unavailable; please try again shortly.") from error
        return _outcome(intent)

    def retrieve(self, payment_intent_id: str) -> stripe.PaymentIntent:
        return self._client.v1.payment_intents.retrieve(payment_intent_id)

    def lookup(self, payment_intent_id: str) -> IntentSnapshot:
        return _snapshot(self.retrieve(payment_intent_id))

    def find_for_donation(self, donation_id: str) -> list[IntentSnapshot]:
        """PaymentIntents whose metadata names this donation (the charge always sets it).

        Stripe's search index lags (under a minute normally, up to an hour in incidents): an empty
        answer means "not charged yet, as far as Stripe can tell", never proof on its own.
        """
        found = self._client.v1.payment_intents.search(
            params={"query": f"metadata['donation_id']:'{donation_id}'", "limit": 10}
        )
        return [_snapshot(intent) for intent in found.data]

    def cancel(self, donation_id: str, payment_intent_id: str) -> IntentSnapshot:
        """Cancel an abandoned PaymentIntent so a late authentication cannot take the money.

        An intent that moved on meanwhile (succeeded, or already canceled) cannot be canceled:
        its current state is returned instead, for the caller to record.
        """
        try:
            intent = self._client.v1.payment_intents.cancel(
                payment_intent_id,
                params={"cancellation_reason": "abandoned"},
                options={"idempotency_key": f"donation-{donation_id}-cancel"},
            )
        except stripe.InvalidRequestError as error:
            if error.code != "payment_intent_unexpected_state":
                raise
            return self.lookup(payment_intent_id)
        return _snapshot(intent)

    def save_card(self, donation: Donation) -> SavedCard:
        """Create the donor's Customer and attach the charge's PaymentMethod; safe to repeat."""
        if not donation.payment_method_id:
            raise PermanentStepFailure("tokenize:no_payment_method")
        try:
            customer = self._client.v1.customers.create(
                params={
                    "email": donation.email,
                    "name": donation.name,
                    "metadata": {"donation_id": donation.donation_id},
                },
                options={"idempotency_key": f"donation-{donation.donation_id}-customer"},
            )
            method = self._client.v1.payment_methods.attach(
                donation.payment_method_id,
                params={"customer": customer.id},
                options={"idempotency_key": f"donation-{donation.donation_id}-attach"},
            )
        except stripe.StripeError as error:
            verdict = classify(error)
            failure = RetryableStepFailure if verdict.retryable else PermanentStepFailure
            raise failure(f"tokenize:{verdict.reason}") from error
        card = method.card
        return SavedCard(
            customer_id=customer.id,
            payment_method_id=method.id,
            brand=card.brand if card else None,
            last4=card.last4 if card else None,
            exp_month=card.exp_month if card else None,
            exp_year=card.exp_year if card else None,
        )


def _payment_method_id(intent: stripe.PaymentIntent) -> str | None:
    payment_method = intent.payment_method
    return payment_method if isinstance(payment_method, str) or payment_method is None else payment_method.id


def _snapshot(intent: stripe.PaymentIntent) -> IntentSnapshot:
    error = intent.last_payment_error
    decline_code = None
    if error is not None and error.type == "card_error":
        decline_code = donor_safe_decline_code(error.code, error.decline_code)
    return IntentSnapshot(
        id=intent.id,
        status=intent.status,
        payment_method_id=_payment_method_id(intent),
        decline_code=decline_code,
        authentication_failed=error is not None and error.code == "payment_intent_authentication_failure",
    )


def donor_safe_decline_code(code: str | None, decline_code: str | None) -> str:
    safe = decline_code or code or "card_declined"
    return "generic_decline" if safe in _UNDISCLOSED_DECLINE_CODES else safe


def _outcome(intent: stripe.PaymentIntent) -> ChargeOutcome:
    method_id = _payment_method_id(intent)
    if intent.status == "succeeded":
        return ChargeOutcome(ChargeState.SUCCEEDED, intent.id, method_id)
    if intent.status == "requires_action":
        return ChargeOutcome(ChargeState.REQUIRES_ACTION, intent.id, method_id, intent.client_secret)
    # processing / requires_capture should not happen for confirm=True card payments with automatic capture.
    raise ServiceUnavailable(f"The payment is {intent.status}; please check back shortly.")


def recorded_decline(decline_code: str | None) -> CardDeclined:
    """The decline a donor was told, rebuilt from the record's (donor-safe) code for a resubmission."""
    message = _DONOR_MESSAGES.get(decline_code or "") or _GENERIC_DECLINE
    return CardDeclined(message, code="card_declined", decline_code=decline_code)


def _declined(error: stripe.CardError) -> CardDeclined:
    details = error.error
    code = (details.code if details else None) or "card_declined"
    decline_code = donor_safe_decline_code(code, details.decline_code if details else None)
    message = _DONOR_MESSAGES.get(decline_code) or _DONOR_MESSAGES.get(code) or _GENERIC_DECLINE
    declined = CardDeclined(message, code="card_declined", decline_code=decline_code)
    intent = details.payment_intent if details else None
    declined.payment_intent_id = intent.id if intent is not None else None
    return declined
