import pytest
from pydantic import ValidationError

from donations.charge import DONATION_ID
from donations.models import DonationRequest, RequestLimits
from tests.support.keys import donation_id_for

pytestmark = pytest.mark.unit

# The template's defaults (AllowedCurrencies, MinAmount, MaxAmount).
DonationRequest = DonationRequest.with_limits(
    RequestLimits(frozenset({"usd", "eur", "gbp", "cad", "aud"}), 100, 5_000_000)
)

VALID = {
    "amount": 2500,
    "currency": "USD",
    "email": "ada@example.org",
    "name": "Ada Lovelace",
    "payment_method": "pm_card_visa",
    "save_card": True,
    "metadata": {"campaign": "spring"},
}


def test_valid_request_is_normalised():
    request = DonationRequest.model_validate(VALID)
    assert request.currency == "usd"
    assert request.metadata == {"campaign": "spring"}


def test_fingerprint_differs_when_any_field_differs():
    base = DonationRequest.model_validate(VALID).fingerprint()
    assert base == DonationRequest.model_validate(dict(VALID)).fingerprint()
    assert base != DonationRequest.model_validate({**VALID, "amount": 2600}).fingerprint()
    assert base != DonationRequest.model_validate({**VALID, "save_card": False}).fingerprint()


def test_card_data_error_never_carries_the_number():
    with pytest.raises(ValidationError) as caught:
        DonationRequest.model_validate({**VALID, "metadata": {"n": "4242424242424242"}})
    assert "4242" not in str(caught.value.errors(include_input=False))
    assert caught.value.errors()[0]["type"] == "card_data"


def test_donation_ids_are_stable_and_well_formed():
    assert donation_id_for("key-1") == donation_id_for("key-1")
    assert donation_id_for("key-1") != donation_id_for("key-2")
    assert DONATION_ID.match(donation_id_for("key-1"))
