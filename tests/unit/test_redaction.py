import pytest

from donations.redaction import find_card_data, looks_like_card_number, luhn_valid, mask_email

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "text",
    ["4242424242424242", "4242 4242 4242 4242", "4000-0566-5566-5556", "my card is 378282246310005 thanks"],
)
def test_card_numbers_are_recognised_in_any_typed_shape(text):
    assert looks_like_card_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "4242424242424241",
        "2500",
        "20261125",
        "123456789012",
        "pm_card_visa",
        # a UUID whose dash-separated digits (894808444180488) happen to pass Luhn
        "d7984b89-4808-4441-8048-8a6c258b059c",
    ],
)
def test_non_card_numbers_are_not_flagged(text):
    # Luhn-invalid or too short: order numbers, dates and amounts must still be accepted.
    assert not looks_like_card_number(text)


def test_luhn():
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"metadata": {"note": "4242424242424242"}}, "metadata.note"),
        ({"cvc": "123"}, "cvc"),
        ({"card": {"CVV": 123}}, "card.CVV"),
        ({"card_number": "x"}, "card_number"),
        ({"tags": ["ok", "5555 5555 5555 4444"]}, "tags[1]"),
        ({"4242424242424242": "key"}, "4242424242424242"),
    ],
)
def test_card_data_is_found_wherever_it_hides(body, where):
    assert find_card_data(body) == where


def test_clean_donation_body_has_no_card_data():
    body = {"amount": 2500, "email": "ada@example.org", "payment_method": "pm_card_visa", "metadata": {"c": "spring"}}
    assert find_card_data(body) is None


@pytest.mark.parametrize(
    ("email", "masked"),
    [("ada@example.org", "a***@e***.org"), ("x@localhost", "x***@l***"), ("broken", "***")],
)
def test_mask_email_keeps_no_more_than_initials(email, masked):
    assert mask_email(email) == masked
