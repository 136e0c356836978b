"""Stripe's money rules (donations.currencies), checked against Stripe's published facts."""

import pytest
import stripe

from donations.currencies import STRIPE_MAX_AMOUNT, amount_problem, currency
from donations.payments import STRIPE_API_VERSION

pytestmark = pytest.mark.unit


def test_the_pinned_api_version_is_the_one_the_installed_sdk_was_generated_for():
    # An SDK upgrade moves stripe/_api_version.py: make it a deliberate change (README, make smoke).
    assert STRIPE_API_VERSION == stripe._api_version._ApiVersion.CURRENT


@pytest.mark.parametrize(
    ("code", "decimals", "step"),
    [("usd", 2, 1), ("jpy", 0, 1), ("krw", 0, 1), ("isk", 2, 100), ("bhd", 3, 10), ("huf", 2, 1), ("EUR", 2, 1)],
)
def test_minor_units_are_stripes_not_iso_4217s(code, decimals, step):
    # docs.stripe.com/currencies: ISK is two-decimal in the API (100 = 1 króna), whole krónur only.
    unit = currency(code)
    assert (unit.decimals, unit.step) == (decimals, step)


@pytest.mark.parametrize(
    ("amount", "code", "refused"),
    [
        (49, "jpy", True),  # Stripe's minimum is ¥50
        (50, "jpy", False),
        (29, "gbp", True),  # £0.30
        (30, "gbp", False),
        (399, "hkd", True),  # HK$4.00
        (150, "isk", True),  # 1.5 krónur: not a whole króna
        (200, "isk", False),
        (1005, "bhd", True),  # three-decimal: the last digit must be 0
        (1010, "bhd", False),
        (STRIPE_MAX_AMOUNT + 1, "usd", True),
    ],
)
def test_amounts_stripe_would_refuse_are_refused_first(amount, code, refused):
    assert (amount_problem(amount, code, floor=1, ceiling=10**12) is not None) is refused


def test_our_own_limits_apply_on_top_and_the_message_speaks_in_major_units():
    limits = {"floor": 100, "ceiling": 5_000_000}
    assert amount_problem(99, "usd", **limits) == "The amount must be between 1.00 and 50000.00 USD."
    assert amount_problem(60, "jpy", **limits) == "The amount must be between 100 and 5000000 JPY."
