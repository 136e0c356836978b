"""What a year-end statement lists and totals (donations.statements): pure logic, no I/O."""

from __future__ import annotations

import pytest

from donations.models import Donation, DonationStatus
from donations.settings import MailSettings
from donations.statements import StatementMessage, statement_data, statement_of
from tests.support.gifts import Gift, charged_donation

pytestmark = pytest.mark.unit

DONOR = "a" * 32
SETTINGS = MailSettings(
    receipt_template_id="d-" + "0" * 32,
    receipt_from_email="receipts@example.org",
    org_name="Example Charity",
    org_address="1 Example Street",
    org_tax_id="12-3456789",
    goods_or_services_statement="No goods or services were provided.",
    support_email="support@example.org",
    receipt_time_zone="America/New_York",
)


def gift(amount: int, currency: str, at: str, *, refunded: int = 0, pledge_id: str | None = None) -> Donation:
    return charged_donation(Gift("ada@example.org", "Ada", amount, currency, at, refunded, pledge_id), DONOR)


def test_totals_are_per_currency_and_net_of_refunds():
    # Given gifts in two currencies, one partly refunded, one refunded in full
    donations = [
        gift(2500, "usd", "2026-03-01T12:00:00Z", refunded=1000),
        gift(1000, "usd", "2026-04-01T12:00:00Z", pledge_id="pl_1"),
        gift(2000, "eur", "2026-05-01T12:00:00Z"),
        gift(5000, "usd", "2026-06-01T12:00:00Z", refunded=5000),
    ]

    # When the year's statement is made
    statement = statement_of(DONOR, 2026, donations, "UTC")

    # Then each currency has its own net total, and the full refund is not a gift
    assert statement is not None
    assert statement.totals() == {"eur": 2000, "usd": 2500}
    data = statement_data(statement, SETTINGS)
    assert data["totals"] == [
        {"currency": "EUR", "total_display": "€20.00"},
        {"currency": "USD", "total_display": "$25.00"},
    ]
    assert [(g["kind"], g["amount_display"], g["refund_note"]) for g in data["gifts"]] == [
        ("One-time", "$15.00", "$25.00 given, $10.00 refunded"),
        ("Monthly", "$10.00", ""),
        ("One-time", "€20.00", ""),
    ]


def test_the_first_gift_of_a_monthly_pledge_is_listed_as_monthly_like_its_renewals():
    # Given a monthly pledge's first gift (charged on-session: no pledge named yet, its day of month set)
    first = gift(1500, "usd", "2026-02-03T12:00:00Z").model_copy(update={"pledge_day_of_month": 3})
    renewal = gift(1500, "usd", "2026-03-03T12:00:00Z", pledge_id="pl_1")

    # When the year's statement is made / Then both are monthly gifts
    statement = statement_of(DONOR, 2026, [first, renewal], "UTC")
    assert statement is not None
    assert [g["kind"] for g in statement_data(statement, SETTINGS)["gifts"]] == ["Monthly", "Monthly"]


def test_a_lost_dispute_is_taken_off_the_gift():
    # Given a gift whose dispute the charity lost in part, and one lost in full
    partly = gift(2500, "usd", "2026-03-01T12:00:00Z").model_copy(
        update={"dispute_status": "lost", "dispute_amount": 500}
    )
    whole = gift(1000, "usd", "2026-03-02T12:00:00Z").model_copy(
        update={"dispute_status": "lost", "dispute_amount": 1000}
    )

    # When the year's statement is made
    statement = statement_of(DONOR, 2026, [partly, whole], "UTC")

    # Then what the dispute took is not a gift
    assert statement is not None and statement.totals() == {"usd": 2000}
    [line] = statement_data(statement, SETTINGS)["gifts"]
    assert line["refund_note"] == "$25.00 given, $5.00 lost to a dispute"


def test_the_year_is_the_receipts_time_zone_year():
    # Given a gift made at 03:00 UTC on January 1, which is December 31 in New York
    donations = [gift(2500, "usd", "2027-01-01T03:00:00Z")]

    # Then it is on New York's 2026 statement, not 2027's
    assert statement_of(DONOR, 2026, donations, "America/New_York") is not None
    assert statement_of(DONOR, 2027, donations, "America/New_York") is None
    assert statement_of(DONOR, 2027, donations, "UTC") is not None


def test_no_statement_without_a_charged_gift_that_kept_its_donor():
    # Given a declined donation and one whose donor was erased
    declined = gift(2500, "usd", "2026-03-01T12:00:00Z").model_copy(update={"status": DonationStatus.DECLINED})
    erased = gift(2500, "usd", "2026-03-02T12:00:00Z").model_copy(update={"email": "", "name": ""})

    # Then there is nothing to state
    assert statement_of(DONOR, 2026, [declined, erased], "UTC") is None


def test_the_message_holds_ids_only():
    # A statement message names the donor by key and the year; no address can be put in it
    message = StatementMessage(donor_key=DONOR, year=2026, donation_ids=["don_1"])
    assert message.model_dump(exclude_none=True) == {
        "schema_version": 1,
        "type": "send_statement",
        "donor_key": DONOR,
        "year": 2026,
        "donation_ids": ["don_1"],
    }
    with pytest.raises(ValueError):
        StatementMessage(donor_key="ada@example.org", year=2026)
