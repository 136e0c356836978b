"""The donor's changes on the manage page through the API (the charge function's pledge routes): a new amount,
skip a month, pause and resume, and the email confirming a cancellation. Each takes a one-time token; a replay or
a hostile token gets a clear 4xx and changes nothing (the hostile links of every route: test_pledge_links)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

import pytest

from donations.errors import RenewalInProgress
from donations.pledge_changes import pause, resume, skip_next
from donations.pledge_links import CANCEL_TOKEN_SECONDS, PledgeLinks, Purpose
from donations.pledge_manage import cancel_pledge
from donations.pledges import PledgeState, RenewalMessage, renewal_donation_id
from donations.renewals import renewal_donation
from donations_ops.cli import main
from simulator.local.pipeline import Pipeline
from tests.integration.test_pledge_links import _call, _manage_token
from tests.integration.test_pledge_links import _pledge as _pledge_on_the_form
from tests.integration.test_renewals import _charges_for, _pledge, _pledge_now, _schedule

pytestmark = pytest.mark.integration

CANCELED_SUBJECT = "Your monthly gift is canceled"


def _one_time(world, pledge_id: str, action: str) -> str:
    """The one-time token for ``action`` the manage page gets from the view (a fresh one each time)."""
    view = _call(world, f"/pledges/{pledge_id}", {"token": _manage_token(world, _pledge_now(world, pledge_id))})
    assert view.status == 200, view.body
    return str(view.body["cancel_token"] if action == "cancel" else view.body["action_tokens"][action])


def _act(world, pledge_id: str, action: str, **extra: int):
    return _call(world, f"/pledges/{pledge_id}/{action}", {"token": _one_time(world, pledge_id, action), **extra})


def test_a_donor_cancels_in_one_click_and_gets_one_confirmation_email(world):
    # Given a monthly pledge made on the form
    pledge = _pledge_on_the_form(world, "cancel-email")
    sent_before = len(world.sendgrid.outbox)

    # When the donor cancels on the manage page, and the receipt queue is drained
    answer = _act(world, pledge.pledge_id, "cancel")
    assert answer.status == 200 and answer.body["state"] == "canceled", answer.body
    world.drain()

    # Then one email confirms it, to the donor, with the amount and no link, card data or Stripe ids
    [mail] = [m for m in world.sendgrid.outbox[sent_before:] if m["custom_args"].get("pledge_id") == pledge.pledge_id]
    assert (mail["to"], mail["subject"]) == ([pledge.email], CANCELED_SUBJECT)
    text = mail["content"][0]["value"]
    assert "$25.00" in text and "not be charged again" in text
    assert "#token=" not in text and "cus_" not in text and "pm_" not in text and "4242" not in text

    # And a redelivered message sends no second one
    world.redeliver_last_batches()
    world.drain()
    assert len(world.sendgrid.outbox) == sent_before + 1


def test_a_cancel_whose_confirmation_was_never_queued_is_confirmed_when_the_donor_looks_again(world):
    # Given a donor's cancel whose function stopped between the cancel's write and the queue
    pledge = _pledge_on_the_form(world, "cancel-crash")
    sent_before = len(world.sendgrid.outbox)

    class Stopped:
        def send(self, message):
            raise RuntimeError("the function stopped here")

    token = _one_time(world, pledge.pledge_id, "cancel")
    with pytest.raises(RuntimeError):
        cancel_pledge(pledge.pledge_id, token, pledges=world.wiring.pledges, links=world.wiring.pledge_links,
                      publisher=Stopped())  # fmt: skip
    world.drain()
    assert _pledge_now(world, pledge.pledge_id).state is PledgeState.CANCELED
    assert world.sendgrid.outbox[sent_before:] == []

    # When the donor opens the link again (their page showed an error), twice
    for _ in range(2):
        assert _call(world, f"/pledges/{pledge.pledge_id}", {"token": _manage_token(world, pledge)}).status == 200
        world.drain()

    # Then one email confirms the cancellation
    mails = [m for m in world.sendgrid.outbox[sent_before:] if m["subject"] == CANCELED_SUBJECT]
    assert len(mails) == 1 and mails[0]["to"] == [pledge.email]


def test_an_operator_s_cancel_sends_no_donor_email_and_a_resumed_pledge_s_confirmation_is_not_sent(world, capsys):
    # Given a pledge the donor canceled, whose confirmation is still on the queue, and an operator resumes it
    pledge = _pledge_on_the_form(world, "cancel-resumed")
    sent_before = len(world.sendgrid.outbox)
    assert _act(world, pledge.pledge_id, "cancel").status == 200
    canceled = _pledge_now(world, pledge.pledge_id)
    world.wiring.pledges.resume(canceled, date(2027, 1, 1))
    # When the queue is drained, and then an operator cancels it
    world.drain()
    assert main(["--stack-name", world.pipeline.stack.stack_name, "pledges", "cancel", pledge.pledge_id],
                clients=world.pipeline.clients) == 0  # fmt: skip
    world.drain()

    # Then no email says it is canceled: the donor's no longer true, the operator's is not the donor's doing
    assert [m for m in world.sendgrid.outbox[sent_before:] if m["subject"] == CANCELED_SUBJECT] == []


def test_a_new_amount_is_charged_from_the_next_renewal_not_yet_begun(world):
    # Given a pledge of 25.00 a month due on 2027-01-10, queued by the schedule but not charged yet
    pledge = _pledge(world, "amount-next")
    assert _schedule(world, "2027-01-10")["renewals_scheduled"] == 1

    # When the donor changes the amount to 40.00
    answer = _act(world, pledge.pledge_id, "amount", amount=4000)

    # Then the pledge says 40.00, and the change is noted for operators
    assert answer.status == 200 and answer.body["amount"] == 4000, answer.body
    changed = _pledge_now(world, pledge.pledge_id)
    assert changed.amount == 4000 and changed.donor_changes[-1].endswith("amount 2500 -> 4000 usd")

    # And the renewal queued before the change charges 40.00, once
    world.drain()
    [charge] = _charges_for(world, pledge, "2027-01")
    assert charge["amount"] == 4000
    assert world.queued("renewal_dlq") == []


def test_a_renewal_already_begun_keeps_its_amount_and_its_idempotency_key_the_next_one_charges_the_new(world):
    # Given a pledge whose January renewal began (its donation written at 25.00) and crashed before Stripe
    pledge = _pledge(world, "amount-begun")
    assert _schedule(world, "2027-01-10")["renewals_scheduled"] == 1
    world.wiring.store.create_renewal(renewal_donation(pledge, "crashed"))

    # When the donor changes the amount to 40.00 meanwhile, and the renewal is delivered again
    assert _act(world, pledge.pledge_id, "amount", amount=4000).status == 200
    world.drain()

    # Then January is charged once at 25.00 (the amount its donation and its Stripe key began with: one key is
    # never sent with two amounts, which Stripe would refuse as an idempotency error), nothing parked
    [january] = _charges_for(world, pledge, "2027-01")
    assert january["amount"] == 2500
    assert world.queued("renewal_dlq") == [] and world.queued("renewal") == []

    # And February is charged at 40.00
    assert _schedule(world, "2027-02-10")["renewals_scheduled"] == 1
    world.drain()
    [february] = _charges_for(world, pledge, "2027-02")
    assert february["amount"] == 4000


@pytest.mark.parametrize(("amount", "why"), [(10, "between"), (10**9, "between"), (2550.5, "")])
def test_an_amount_out_of_bounds_is_refused_as_the_donation_api_refuses_it(world, amount, why):
    pledge = _pledge(world, "amount-bad")
    answer = _act(world, pledge.pledge_id, "amount", amount=amount)  # type: ignore[arg-type]
    assert answer.status == 400, answer.body
    assert answer.body["error"]["code"] == "invalid_amount" and why in answer.body["error"]["message"]
    assert _pledge_now(world, pledge.pledge_id) == pledge


def test_skipping_the_next_month_moves_it_once_and_that_month_is_never_charged(world):
    # Given a pledge due on 2027-01-10
    pledge = _pledge(world, "skip")
    token = _one_time(world, pledge.pledge_id, "skip")

    # When the donor skips the next month, and the same request comes again
    answer = _call(world, f"/pledges/{pledge.pledge_id}/skip", {"token": token})
    replay = _call(world, f"/pledges/{pledge.pledge_id}/skip", {"token": token})

    # Then the next charge is on 2027-02-10, moved once (the replay is refused)
    assert answer.status == 200 and answer.body["next_charge_on"] == "2027-02-10", answer.body
    assert (replay.status, replay.body["error"]["code"]) == (409, "link_used")
    skipped = _pledge_now(world, pledge.pledge_id)
    assert (skipped.next_charge_on, skipped.due_on) == ("2027-02-10", "2027-02-10")

    # And January's schedule charges nothing; February's charges February
    assert _schedule(world, "2027-01-10")["renewals_scheduled"] == 0
    assert _schedule(world, "2027-02-10")["renewals_scheduled"] == 1
    world.drain()
    assert _charges_for(world, pledge, "2027-01") == [] and len(_charges_for(world, pledge, "2027-02")) == 1


def test_a_month_already_queued_cannot_be_skipped_or_paused_until_its_renewal_is_done(world):
    # Given a pledge whose January renewal the schedule queued
    pledge = _pledge(world, "skip-queued")
    assert _schedule(world, "2027-01-10")["renewals_scheduled"] == 1

    # When the donor tries to skip or pause it
    for action in ("skip", "pause"):
        answer = _act(world, pledge.pledge_id, action)
        # Then it is refused: the message on its way would charge the month anyway
        assert (answer.status, answer.body["error"]["code"]) == (409, "renewal_in_progress"), answer.body
    queued = _pledge_now(world, pledge.pledge_id)
    assert (queued.state, queued.next_charge_on) == (PledgeState.ACTIVE, "2027-01-10")

    # And once January is charged, February can be skipped
    world.drain()
    assert _act(world, pledge.pledge_id, "skip").body["next_charge_on"] == "2027-03-10"


@pytest.mark.parametrize("change", [skip_next, pause])
def test_a_month_queued_between_the_read_and_the_write_is_neither_skipped_nor_paused(world, monkeypatch, change):
    # Given a pledge the donor skips or pauses, and the schedule queues its month just after the donor's
    # request read the pledge (before its write)
    pledge = _pledge(world, f"race-{change.__name__}")
    token = _one_time(world, pledge.pledge_id, "skip" if change is skip_next else "pause")
    store = world.wiring.pledges
    write = store.change_by_donor

    def queued_first(*args, **kwargs):
        assert store.mark_queued(pledge.pledge_id, pledge.next_charge_on, datetime.now(UTC)) is not None
        return write(*args, **kwargs)

    monkeypatch.setattr(store, "change_by_donor", queued_first)

    # When the change is written, Then it is refused and the month stays due (its message charges it once)
    with pytest.raises(RenewalInProgress):
        change(pledge.pledge_id, token, pledges=store, links=world.wiring.pledge_links)
    after = _pledge_now(world, pledge.pledge_id)
    assert (after.state, after.due_on, after.used_link_nonces) == (PledgeState.ACTIVE, "2027-01-10", [])


def test_a_paused_pledge_is_never_queued_and_resuming_charges_no_paused_month(world, capsys):
    # Given a pledge due on 2027-01-10, and a renewal message already sent for January
    pledge = _pledge(world, "pause")

    # When the donor pauses it
    answer = _act(world, pledge.pledge_id, "pause")
    assert answer.status == 200 and answer.body["state"] == "paused", answer.body
    assert set(answer.body["action_tokens"]) == {"amount", "resume"}

    # Then the schedule queues nothing for it, and a message already on the queue charges nothing
    before = world.stripe_requests()
    for day in ("2027-01-10", "2027-02-10", "2027-03-10"):
        assert _schedule(world, day)["renewals_scheduled"] == 0
    world.send("renewal", RenewalMessage(pledge_id=pledge.pledge_id, period="2027-01").model_dump_json(), {})
    world.drain()
    assert world.stripe_requests() == before and world.queued("renewal_dlq") == []

    # When they resume it on 2027-03-20 (the page's resume, with the day given)
    token = _one_time(world, pledge.pledge_id, "resume")
    resumed = resume(pledge.pledge_id, token, pledges=world.wiring.pledges, links=world.wiring.pledge_links,
                     today=date(2027, 3, 20))  # fmt: skip

    # Then it is due on the next charge day from then, 2027-04-10: January to March are never charged
    assert (resumed.state, resumed.next_charge_on) == ("active", "2027-04-10")
    assert _schedule(world, "2027-03-20")["renewals_scheduled"] == 0
    assert _schedule(world, "2027-04-10")["renewals_scheduled"] == 1
    world.drain()
    assert [p for p in ("2027-01", "2027-02", "2027-03") if _charges_for(world, pledge, p)] == []
    assert len(_charges_for(world, pledge, "2027-04")) == 1

    # And operators see what the donor did
    capsys.readouterr()
    assert main(["--stack-name", world.pipeline.stack.stack_name, "pledges", "show", pledge.pledge_id],
                clients=world.pipeline.clients) == 0  # fmt: skip
    shown = capsys.readouterr().out
    assert "pause (next charge was 2027-01-10)" in shown and "resume: next charge 2027-04-10" in shown


ACTIONS = {"amount": {"amount": 4000}, "skip": {}, "pause": {}, "resume": {}}


@pytest.mark.parametrize("action", list(ACTIONS))
def test_a_replayed_or_expired_one_time_token_is_refused_and_changes_nothing(world, action):
    # Given a pledge in the state the change needs (paused, to resume)
    pledge = _pledge(world, f"replay-{action}")
    if action == "resume":
        assert _act(world, pledge.pledge_id, "pause").status == 200
    token = _one_time(world, pledge.pledge_id, action)
    assert _call(world, f"/pledges/{pledge.pledge_id}/{action}", {"token": token, **ACTIONS[action]}).status == 200
    done = _pledge_now(world, pledge.pledge_id)

    # When the same token comes again, and an expired one
    replay = _call(world, f"/pledges/{pledge.pledge_id}/{action}", {"token": token, **ACTIONS[action]})
    old = PledgeLinks(
        lambda: Pipeline.pledge_link_key, "https://x/", clock=lambda: time.time() - CANCEL_TOKEN_SECONDS - 1
    )
    stale = old.token(pledge.pledge_id, Purpose(action), CANCEL_TOKEN_SECONDS)
    expired = _call(world, f"/pledges/{pledge.pledge_id}/{action}", {"token": stale, **ACTIONS[action]})

    # Then each is refused with its code, and the pledge is as the first request left it
    assert (replay.status, replay.body["error"]["code"]) == (409, "link_used"), replay.body
    assert (expired.status, expired.body["error"]["code"]) == (403, "link_expired"), expired.body
    assert _pledge_now(world, pledge.pledge_id) == done


def test_a_change_the_state_does_not_allow_is_refused(world):
    # Given a canceled pledge, and a pause token the donor got before canceling
    pledge = _pledge(world, "not-allowed")
    pause_token = _one_time(world, pledge.pledge_id, "pause")
    assert _act(world, pledge.pledge_id, "cancel").status == 200
    canceled = _pledge_now(world, pledge.pledge_id)

    # When it is used, Then 409 and nothing changed
    answer = _call(world, f"/pledges/{pledge.pledge_id}/pause", {"token": pause_token})
    assert (answer.status, answer.body["error"]["code"]) == (409, "change_not_allowed"), answer.body
    assert _pledge_now(world, pledge.pledge_id) == canceled
    assert world.wiring.store.get(renewal_donation_id(pledge.pledge_id, "2027-01")) is None


def test_an_operator_resumes_a_paused_pledge_as_the_donor_would(world, capsys):
    # Given a pledge the donor paused
    pledge = _pledge(world, "ops-resume-paused")
    assert _act(world, pledge.pledge_id, "pause").status == 200

    # When an operator resumes it
    capsys.readouterr()
    assert main(["--stack-name", world.pipeline.stack.stack_name, "pledges", "resume", pledge.pledge_id],
                clients=world.pipeline.clients) == 0  # fmt: skip

    # Then it is active and due again, no longer marked paused
    resumed = _pledge_now(world, pledge.pledge_id)
    assert (resumed.state, resumed.paused_at) == (PledgeState.ACTIVE, None)
    assert world.wiring.pledges.due_on(resumed.next_charge_on) == [pledge.pledge_id]
