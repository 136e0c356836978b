"""Stripe's test PaymentMethod ids (``pm_card_*``) and how each one behaves when confirmed.

From docs.stripe.com/testing (declined payments, 3-D Secure cards) and docs.stripe.com/declines/codes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
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
    # Charges that succeed, "only to be disputed" (docs.stripe.com/testing, "Disputes"): the Dispute's reason,
    # and whether it is an inquiry (a retrieval request: ``warning_needs_response``, no money moves).
    dispute: str | None = None
    dispute_inquiry: bool = False
    # A refund that succeeds, then fails (docs.stripe.com/testing, "Refunds": asynchronous failure).
    refund_fails: bool = False
    # Confirmed in a SetupIntent (saving the card with the customer present), when that differs from ``outcome``.
    setup_outcome: Outcome | None = None

    @property
    def last4(self) -> str:
        return self.number[-4:]

    @property
    def fingerprint(self) -> str:
        # "Uniquely identifies this particular card number" (the SDK's PaymentMethod.Card.fingerprint):
        # one number, one fingerprint (within an account); another number, another fingerprint.
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
    "pm_card_chargeCustomerFail": replace(_declined("4000000000000341", "generic_decline"), setup_outcome="succeed"),
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
    # Disputes and refunds after a succeeded charge (docs.stripe.com/testing, "Disputes" and "Refunds").
    "pm_card_createDispute": CardProfile("4000000000000259", "visa", dispute="fraudulent"),
    "pm_card_createDisputeProductNotReceived": CardProfile("4000000000002685", "visa", dispute="product_not_received"),
    "pm_card_createDisputeInquiry": CardProfile("4000000000001976", "visa", dispute="fraudulent", dispute_inquiry=True),
    "pm_card_refundFail": CardProfile("4000000000005126", "visa", refund_fails=True),
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


# -- cards issued by the emulator (emulator-only) --------------------------------------------------------
# Stripe's test mode knows only the published numbers above, so every donor paying with "a declining test
# card" pays with one of seven cards, and Stripe gives them one fingerprint each. A simulation of many
# donors, each with a card of their own, needs more: the emulator can issue further numbers (control API
# ``POST /_emulator/cards``, StripeActions.issue_cards), each behaving as one published test card (its
# outcome, decline code, brand, funding, country) with its own number, hence its own last4 and
# fingerprint. Nothing like it exists at Stripe, where such a number is a live card (test_mode_live_card).


def with_check_digit(partial: str) -> str:
    """``partial`` followed by its Luhn check digit (ISO/IEC 7812-1, the digit every card number ends with)."""
    total = 0
    for position, digit in enumerate(int(d) for d in reversed(partial)):
        total += sum(divmod(2 * digit, 10)) if position % 2 == 0 else digit
    return partial + str(-total % 10)


def luhn_valid(number: str) -> bool:
    return re.fullmatch(r"\d{12,19}", number) is not None and with_check_digit(number[:-1]) == number


def issued_card(number: str, like: str) -> CardProfile:
    """A card numbered ``number`` that behaves as the published test card ``like`` (a ``pm_card_*`` id).

    The number must be a valid card number of the same issuer (first six digits) and length as ``like``'s,
    and not a published test number (those keep their published behaviour)."""
    template = MAGIC_CARDS.get(like)
    if template is None:
        raise ValueError(f"{like!r} is not one of Stripe's test PaymentMethods (pm_card_...)")
    if number in TEST_CARD_NUMBERS:
        raise ValueError(f"{number[-4:]!r}: a published test card number behaves as published")
    same_issuer = len(number) == len(template.number) and number[:6] == template.number[:6]
    if not (luhn_valid(number) and same_issuer):
        raise ValueError(
            f"a card like {like} has {len(template.number)} digits, starts {template.number[:6]} and ends "
            "with its Luhn check digit"
        )
    return replace(template, number=number)


def issuable_number(like: str, serial: int) -> str:
    """The ``serial``-th number :func:`issued_card` takes for a card like ``like``: its issuer's six digits, a 9
    (where none of MAGIC_CARDS' numbers has one), ``serial``, and the check digit."""
    published = MAGIC_CARDS[like].number
    digits = len(published) - 8
    if not 0 <= serial < 10**digits:
        raise ValueError(f"a card like {like} has serials 0 to {10**digits - 1}")
    return with_check_digit(f"{published[:6]}9{serial:0{digits}d}")
