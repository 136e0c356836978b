"""The operator console's pledges (``GET /_local/ops/pledges``): those whose renewal failed, or those due
on a day, with state, amount, currency and next charge date, as ``donations-ops pledges list`` lists them."""

from __future__ import annotations

import pytest

from tests.integration.test_dunning import LOST_CARD
from tests.integration.test_renewals import _on_card, _pledge, _schedule
from tests.ops.test_operator_rough_edges import _console

pytestmark = pytest.mark.integration


def test_the_console_lists_the_pledges_whose_renewal_failed_and_those_due_on_a_day(world):
    # Given three pledges renewing on 2027-01-10: one charged (next due 2027-02-10), one the bank wants
    # authenticated (4000002760003184), one on a card reported lost (4000000000009987; docs.stripe.com/testing)
    renewed = _pledge(world)
    waiting = _on_card(world, renewed, "pm_card_authenticationRequired")
    lapsed = _on_card(world, renewed, LOST_CARD)
    _schedule(world, "2027-01-10")
    world.drain()
    console = _console(world.pipeline)

    # When the console asks for the pledges, then for those due on 2027-02-10
    status, failing = console.handle("GET", "ops/pledges", "", b"")
    due_status, due = console.handle("GET", "ops/pledges", "due=2027-02-10", b"")

    # Then it lists those needing attention, then the lapsed, with state, amount, currency and next charge
    assert status == 200 and due_status == 200
    # (the one waiting for the donor stays active, on to its next month, and is shown waiting)
    assert [(p["pledge_id"], p["state"], p["waiting_for_donor"]) for p in failing["pledges"]] == [
        (waiting.pledge_id, "active", "2027-01"),
        (lapsed.pledge_id, "lapsed", None),
    ]
    shown = failing["pledges"][0]
    assert (shown["amount"], shown["amount_display"], shown["currency"], shown["next_charge_on"]) == (
        2500,
        "25.00 USD",
        "usd",
        "2027-02-10",
    )
    # And the donor's address masked, never the card's Stripe ids
    assert shown["email_masked"] == "a***@e***.org" and "email" not in shown and "payment_method_id" not in shown
    # And the renewed pledge among those due next month
    assert sorted((p["pledge_id"], p["state"], p["next_charge_on"]) for p in due["pledges"]) == sorted(
        [(renewed.pledge_id, "active", "2027-02-10"), (waiting.pledge_id, "active", "2027-02-10")]
    )


@pytest.mark.parametrize("query", ["due=2027-13-40", "due=tomorrow", "state=canceled"])
def test_a_bad_day_or_state_is_a_clear_400(world, query):
    # When the console is asked for pledges due on no day, or in a state the listing has no index for
    status, answer = _console(world.pipeline).handle("GET", "ops/pledges", query, b"")

    # Then a 400 that says what it takes
    assert status == 400
    assert "YYYY-MM-DD" in answer["error"] or "needs_attention or lapsed" in answer["error"]
