"""The daily report's monthly giving: renewals charged, failed and waiting for the donor, pledges lapsed,
active and needing attention, and the recurring income per currency (donations-ops report, in process)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from typing import Any

import pytest
from rich.console import Console

from donations.pledges import Pledge, renewal_donation_id
from donations_ops import report
from donations_ops.cli_operator import print_report
from tests.integration.test_dunning import LOST_CARD
from tests.integration.test_renewals import _on_card, _ops, _pledge, _schedule

pytestmark = pytest.mark.integration


def _in_euros(world, pledge: Pledge) -> Pledge:
    """Another pledge of the donor on the same saved card, in another currency."""
    changed = {"pledge_id": pledge.pledge_id[:-3] + "eur", "currency": "eur", "amount": 2000}
    return world.wiring.pledges.create(pledge.model_copy(update=changed))


def test_the_report_counts_renewals_pledges_and_recurring_income_per_currency(world, capsys):
    # Given four pledges renewing on 2027-01-10: two on a good card (25.00 USD, 20.00 EUR), one on a card
    # the bank wants authenticated (Stripe's test card 4000002760003184), one on a card reported lost
    # (4000000000009987: a hard decline, so the pledge lapses at once; docs.stripe.com/testing)
    charged = _pledge(world)
    euros = _in_euros(world, charged)
    waiting = _on_card(world, charged, "pm_card_authenticationRequired")
    lapsed = _on_card(world, charged, LOST_CARD)

    # When their renewals run, and an operator asks for today's report (the records' day is the real one)
    _schedule(world, "2027-01-10")
    world.drain()
    found = _report_json(world, capsys)
    _, text = _ops(world, capsys, "report", "--date", "today")
    _, sheet = _ops(world, capsys, "report", "--date", "today", "--csv")

    # Then the renewals are counted by outcome (the first gift is a donation of the day, not a renewal)
    monthly = found["monthly"]
    assert (
        monthly["renewals_charged"],
        monthly["renewals_failed"],
        monthly["renewals_waiting_for_donor"],
        monthly["renewals_not_finished"],
    ) == (2, 1, 1, 0)
    # And the recurring income is per currency, never summed across them
    assert monthly["recurring_income"] == {"eur": "20.00 EUR", "usd": "25.00 USD"}
    # And the pledges as they stand: two renewed and on schedule, one waiting for the donor (active too, due next
    # month), one lapsed today
    assert (monthly["active_pledges"], monthly["pledges_needing_attention"], monthly["pledges_lapsed"]) == (3, 1, 1)
    # And the text says the same in words, the donations' part as before
    assert "Monthly giving" in text and "Donations " in text and "Receipts:" in text
    for words in (
        "renewals charged                                  2",
        "renewals failed                                   1",
        "renewals waiting for the donor                    1",
        "recurring income                                  20.00 EUR, 25.00 USD",
        "pledges lapsed in the period                      1",
        "pledges active now                                3",
        "pledges waiting for the donor or an operator now  1",
    ):
        assert words in text, text
    # And the spreadsheet links each renewal to its pledge and period
    rows = {row["donation_id"]: row for row in csv.DictReader(io.StringIO(sheet))}
    for pledge in (charged, euros, waiting, lapsed):
        row = rows[renewal_donation_id(pledge.pledge_id, "2027-01")]
        assert (row["pledge_id"], row["renewal_period"]) == (pledge.pledge_id, "2027-01")
    assert sum(1 for row in rows.values() if not row["pledge_id"]) == 1  # the first gift


def test_a_pledge_that_lapsed_on_another_day_is_not_counted_in_this_days_report(world, capsys):
    # Given a pledge that lapsed today (a hard decline)
    _on_card(world, _pledge(world), LOST_CARD)
    _schedule(world, "2027-01-10")
    world.drain()

    # When the report is asked for yesterday
    found = _report_json(world, capsys, "yesterday")

    # Then yesterday had no renewals and no pledge lapsed in it; the pledges' standing is today's
    monthly = found["monthly"]
    assert (monthly["renewals_failed"], monthly["pledges_lapsed"], monthly["recurring_income"]) == (0, 0, {})
    assert (monthly["active_pledges"], monthly["pledges_needing_attention"]) == (1, 0)


def test_a_stack_without_a_pledges_table_says_so_in_the_report():
    # Given a report from a stack made before monthly giving (no Pledges table: nothing counted)
    found = report.Report(date(2026, 12, 1), date(2026, 12, 1))
    console = Console(record=True, width=200, file=io.StringIO())

    # When it is printed
    print_report(console, found)

    # Then the monthly part says why there are no pledge counts
    assert "— (this stack has no Pledges table)" in console.export_text()


def _report_json(world, capsys, day: str = "today") -> dict[str, Any]:
    _, out = _ops(world, capsys, "report", "--date", day, "--json")
    found: dict[str, Any] = json.loads(out)
    return found
