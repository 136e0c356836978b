"""The template's money parameters agree with what Stripe can charge (donations.currencies)."""

import pytest

from donations.currencies import STRIPE_MAX_AMOUNT, currency

pytestmark = pytest.mark.infra


def _default(sam_template, name):
    return sam_template["Parameters"][name]["Default"]


def test_every_default_currency_has_stripes_published_minimum_and_min_amount_clears_it(sam_template):
    min_amount = int(_default(sam_template, "MinAmount"))
    for code in _default(sam_template, "AllowedCurrencies").split(","):
        unit = currency(code.strip())
        assert unit.minimum is not None, f"{code}: no published Stripe minimum; check docs.stripe.com/currencies"
        assert min_amount >= unit.minimum, f"MinAmount {min_amount} is below Stripe's minimum for {code}"
        assert min_amount % unit.step == 0, f"MinAmount {min_amount} is not chargeable in {code}"


def test_max_amount_fits_stripes_eight_digits(sam_template):
    assert int(_default(sam_template, "MaxAmount")) <= STRIPE_MAX_AMOUNT
    assert sam_template["Parameters"]["MaxAmount"]["MaxValue"] == STRIPE_MAX_AMOUNT
