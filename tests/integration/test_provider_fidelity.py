"""What the product relies on from Stripe and SendGrid, as those providers document it (issue #12)."""

import pytest

from donations.errors import InvalidDonation
from donations.models import Donation, DonationStatus
from donations.redaction import mask_email

pytestmark = pytest.mark.integration


def _donation(**fields) -> Donation:
    values = {
        "donation_id": "don_" + "a" * 26,
        "status": DonationStatus.PENDING,
        "amount": 2500,
        "currency": "usd",
        "email": "ada@example.org",
        "email_masked": mask_email("ada@example.org"),
        "name": "Ada Lovelace",
        "payment_method": "pm_card_visa",
        "save_card": False,
        "request_hash": "x",
        "created_at": "2026-11-30T00:00:00.000Z",
        "updated_at": "2026-11-30T00:00:00.000Z",
    }
    return Donation(**{**values, **fields})


def test_an_amount_below_stripes_minimum_is_a_400_the_donor_can_act_on(world):
    # Stripe answers amount_too_small (docs.stripe.com/error-codes) below its per-currency minimum
    # (docs.stripe.com/currencies#minimum-and-maximum-charge-amounts); nothing is charged.
    with pytest.raises(InvalidDonation) as refused:
        world.wiring.payments.charge(_donation(amount=10))
    assert (refused.value.code, refused.value.field) == ("amount_too_small", "amount")
    assert world.stripe.payment_intents_created == 0
