"""Dunning: what a failed renewal try leads to (another try on a later day, or the pledge lapses).

The policy, and why:
- **3 tries in a period: on the charge day, 3 days later, 7 days later** (``RETRY_AFTER_DAYS``, counted
  from the period's charge day). Stripe's own Smart Retries for subscriptions default to 8 tries in 2
  weeks (docs.stripe.com/billing/revenue-recovery/smart-retries); the card networks cap reattempts on
  one card (Visa about 15 in 30 days, Mastercard 10 in 30 days for recurring payments), and each failed
  try of a monthly gift means a donor email. Three tries, spaced so that the last falls a week after the
  first, cover the usual cause of a soft decline (insufficient funds, cleared by the next weekly or
  fortnightly pay) with few emails and far inside the networks' limits.
- **Hard declines are never retried**: the issuer says this card will not be approved again (lost or
  stolen, closed, expired, a wrong number, a revoked authorization, "do not honor"), or Stripe blocked
  it. Stripe does not retry these either ("Stripe doesn't retry payments if the issuer returned a hard
  decline code", same page); the codes are docs.stripe.com/declines/codes. The pledge lapses at once:
  only a new card from the donor can make it charge again.
- ``authentication_required`` is neither: the bank wants the donor on-session (the pledge needs
  attention, see donations.renewals).
- Every other decline (``insufficient_funds``, ``generic_decline``, ``processing_error``,
  ``try_again_later``, ``card_velocity_exceeded`` ...) is soft: retried while tries remain, then the
  pledge lapses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

AUTHENTICATION_REQUIRED = "authentication_required"
# Days after the period's charge day on which its 2nd and 3rd tries are due.
RETRY_AFTER_DAYS = (3, 7)
MAX_TRIES = 1 + len(RETRY_AFTER_DAYS)

# docs.stripe.com/declines/codes: the issuer will not approve this card again (or Stripe blocked it).
HARD_DECLINES = frozenset(
    {
        "do_not_honor",
        "do_not_try_again",
        "lost_card",
        "stolen_card",
        "pickup_card",
        "fraudulent",
        "merchant_blacklist",
        "restricted_card",
        "security_violation",
        "expired_card",
        "incorrect_number",
        "invalid_number",
        "invalid_account",
        "new_account_information_available",
        "revocation_of_authorization",
        "revocation_of_all_authorizations",
        "stop_payment_order",
        "transaction_not_allowed",
        "card_not_supported",
        "currency_not_supported",
    }
)


# The lapses a card network's update of the saved card cures (Stripe's ``payment_method.automatically_updated``:
# the card account updater gives the PaymentMethod a new expiry date or number, keeping its id). Each names a
# decline of the card's own details (docs.stripe.com/declines/codes): ``expired_card`` ("The card has expired"),
# ``incorrect_number`` / ``invalid_number`` ("The card number is incorrect" / "not valid": a reissued card's old
# number) and ``new_account_information_available`` (the issuer has new details for the account, which is what
# the updater delivers). Not cured: a lost, stolen or picked-up card or a fraud block (the issuer stopped that
# card because someone else may hold it; the pledge may have been made with it, so the new card needs its
# holder's own say, on the manage page), a closed or invalid account (``invalid_account``: a closed account is
# not new details of it), an authorization the donor revoked, a "do not honor" or a soft decline (nothing about
# the card's details), and the bank asking the donor to authenticate (only the donor can).
CURED_BY_UPDATED_CARD = frozenset(
    {"expired_card", "incorrect_number", "invalid_number", "new_account_information_available"}
)


class Next(StrEnum):
    RETRY = "retry"
    LAPSE = "lapse"
    ASK_DONOR = "ask_donor"  # authentication_required: the donor must act on-session


@dataclass(frozen=True)
class Verdict:
    next: Next
    why: str
    retry_on: str | None = None


def after_decline(decline_code: str, failed_try: int, charge_day: str, failed_try_day: str) -> Verdict:
    """What follows try ``failed_try`` of a period due on ``charge_day``, which was declined with
    Stripe's ``decline_code`` on (or for) ``failed_try_day``."""
    if decline_code == AUTHENTICATION_REQUIRED:
        return Verdict(Next.ASK_DONOR, "the bank wants the donor to authenticate")
    if decline_code in HARD_DECLINES:
        return Verdict(Next.LAPSE, "a hard decline: the issuer will not approve this card again; not retried")
    if failed_try >= MAX_TRIES:
        return Verdict(Next.LAPSE, f"try {failed_try} of {MAX_TRIES} declined; no tries left")
    retry_on = retry_day(charge_day, failed_try, failed_try_day)
    return Verdict(Next.RETRY, f"try {failed_try} of {MAX_TRIES} declined; next try on {retry_on}", retry_on)


def retry_day(charge_day: str, failed_try: int, failed_try_day: str) -> str:
    """The day the try after ``failed_try`` is due: RETRY_AFTER_DAYS after the charge day, and never
    before the day after the failed try (a late try is not followed by another the same day)."""
    planned = date.fromisoformat(charge_day) + timedelta(days=RETRY_AFTER_DAYS[failed_try - 1])
    return max(planned, date.fromisoformat(failed_try_day) + timedelta(days=1)).isoformat()
