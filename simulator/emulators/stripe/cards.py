"""Stripe's test PaymentMethod ids (``pm_card_*``) and how each one behaves when confirmed.

From docs.stripe.com/testing (declined payments, 3-D Secure cards) and docs.stripe.com/declines/codes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["succeed", "decline", "authenticate"]
OffSessionOutcome = Literal["succeed", "decline", "authenticate", "succeed_once_set_up"]


@dataclass(frozen=True)
class CardProfile:
    number: str
    brand: str
    outcome: Outcome = "succeed"
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None
    param: str | None = None
    country: str = "US"
    funding: str = "credit"
    # Charged off-session (a saved card, the donor away), when that differs from ``outcome``:
    # docs.stripe.com/testing, "Authentication and setup" (cards for testing saved cards off-session).
    # ``succeed_once_set_up``: succeeds if a payment with setup_future_usage set the card up, else
    # needs authentication (which off-session means the decline authentication_required).
    off_session: OffSessionOutcome | None = None

    @property
    def last4(self) -> str:
        return self.number[-4:]

    @property
    def fingerprint(self) -> str:
        # Real fingerprints are stable per card number (within an account); so are these.
        return hashlib.sha256(self.number.encode()).hexdigest()[:16]


def _declined(number: str, decline_code: str, message: str = "Your card was declined.") -> CardProfile:
    return CardProfile(number, "visa", "decline", "card_declined", decline_code, message)


def _coded(number: str, code: str, message: str, param: str | None = None) -> CardProfile:
    # For these Stripe reports the same value as code and decline_code.
    return CardProfile(number, "visa", "decline", code, code, message, param)


MAGIC_CARDS: dict[str, CardProfile] = {
    "pm_card_visa": CardProfile("4242424242424242", "visa"),
    "pm_card_visa_debit": CardProfile("4000056655665556", "visa", funding="debit"),
    "pm_card_mastercard": CardProfile("5555555555554444", "mastercard"),
    "pm_card_amex": CardProfile("378282246310005", "amex"),
    "pm_card_chargeDeclined": _declined("4000000000000002", "generic_decline"),
    "pm_card_chargeDeclinedInsufficientFunds": _declined(
        "4000000000009995", "insufficient_funds", "Your card has insufficient funds."
    ),
    "pm_card_chargeDeclinedLostCard": _declined("4000000000009987", "lost_card"),
    "pm_card_chargeDeclinedStolenCard": _declined("4000000000009979", "stolen_card"),
    "pm_card_chargeDeclinedExpiredCard": _coded(
        "4000000000000069", "expired_card", "Your card has expired.", "exp_month"
    ),
    "pm_card_chargeDeclinedIncorrectCvc": _coded(
        "4000000000000127", "incorrect_cvc", "Your card's security code is incorrect.", "cvc"
    ),
    "pm_card_chargeDeclinedProcessingError": _coded(
        "4000000000000119",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
    "pm_card_authenticationRequired": CardProfile("4000002760003184", "visa", "authenticate"),
    "pm_card_threeDSecure2Required": CardProfile("4000000000003220", "visa", "authenticate"),
    # Saved cards charged off-session (docs.stripe.com/testing, "Authentication and setup"; "Charging
    # Saved Cards", docs.stripe.com/payments/cards/charging-saved-cards):
    # needs authentication on-session; once set up, off-session payments need none.
    "pm_card_authenticationRequiredOnSetup": CardProfile(
        "4000002500003155", "visa", "authenticate", off_session="succeed_once_set_up"
    ),
    # needs authentication on-session; every off-session payment succeeds, as if set up already.
    "pm_card_authenticationRequiredSetupForOffSession": CardProfile(
        "4000003800000446", "visa", "authenticate", off_session="succeed"
    ),
    # attaching to a Customer succeeds; every charge then fails.
    "pm_card_chargeCustomerFail": _declined("4000000000000341", "generic_decline"),
    # needs authentication on-session; every off-session payment is declined for insufficient funds.
    "pm_card_authenticationRequiredChargeDeclinedInsufficientFunds": CardProfile(
        "4000008260003178",
        "visa",
        "authenticate",
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
        off_session="decline",
    ),
}

# The same cards by number (what Stripe.js sends) and as test tokens (``tok_visa``: docs.stripe.com/testing).
TEST_CARD_NUMBERS: dict[str, CardProfile] = {card.number: card for card in MAGIC_CARDS.values()}
TEST_TOKENS: dict[str, CardProfile] = {f"tok_{pm.removeprefix('pm_card_')}": card for pm, card in MAGIC_CARDS.items()}

# What an off-session charge on a card that needs 3-D Secure fails with.
AUTHENTICATION_REQUIRED = CardProfile(
    "",
    "visa",
    "decline",
    "authentication_required",
    "authentication_required",
    "Your card was declined. This transaction requires authentication.",
)
