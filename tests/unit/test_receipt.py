"""The receipt's template data (donations.receipt): what a donor reads about a donation."""

import pytest

from donations.models import StepStatus
from donations.receipt import receipt_data
from donations.settings import MailSettings
from tests.support.records import a_donation

pytestmark = pytest.mark.unit

SETTINGS = MailSettings(
    receipt_template_id="d-00000000000000000000000000000000",
    receipt_from_email="receipts@example.org",
    org_name="Example Charity",
    org_address="",
    goods_or_services_statement="No goods or services were provided in exchange for this donation.",
    support_email="support@example.org",
    receipt_locale="de_DE",
    receipt_time_zone="Europe/Berlin",
)


def donation(**changes):
    # 23:30 UTC on New Year's Eve: already 2027 in Berlin, the receipt's time zone here
    at = "2026-12-31T23:30:00Z"
    base = {"donation_id": "don_unitreceipt", "amount": 123456, "currency": "eur", "save_card": True}
    return a_donation(**(base | {"created_at": at, "updated_at": at} | changes))


def test_amount_and_date_follow_the_receipts_locale_and_time_zone():
    data = receipt_data(donation(), SETTINGS)
    assert data["amount_display"] == "1.234,56\xa0€"
    assert data["date"] == "1. Januar 2027"  # 23:30 UTC is past midnight in Berlin
    assert data["receipt_number"] == "don_unitreceipt"


def test_the_card_charged_is_named_whether_or_not_it_was_saved_yet():
    saving = receipt_data(donation(card_status=StepStatus.PENDING, card_last4="4242"), SETTINGS)
    unknown = receipt_data(donation(card_status=StepStatus.DONE, card_last4=None), SETTINGS)
    assert (saving["card_last4"], unknown["card_last4"]) == ("4242", "")
    assert set(saving) == set(unknown)  # the same variables either way; the template hides an empty one
