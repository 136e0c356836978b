"""The pledge manage links through the API (the charge function's pledge routes) and the send-receipt
function's link email: a donor sees and cancels a pledge with a signed link, asks for a fresh one by
email, and every hostile link gets a clear 4xx and changes nothing."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime

import pytest

from donations.pledge_links import CANCEL_TOKEN_SECONDS, PledgeLinks, Purpose
from donations.pledges import Pledge, PledgeState, RenewalMessage, pledge_id_for, renewal_donation_id
from donations_ops.cli import main
from simulator.local.pipeline import Pipeline
from tests.integration.test_renewals import _pledge as _saved_card_pledge
from tests.integration.test_renewals import _schedule
from tests.support.keys import a_key
from tests.support.world import DONATION

pytestmark = pytest.mark.integration

MONTHLY = {**{k: v for k, v in DONATION.items() if k != "save_card"}, "monthly": True, "day_of_month": 10}


def _pledge(world, key: str = "links", email: str = DONATION["email"]) -> Pledge:
    answer = world.post({**MONTHLY, "email": email}, key=a_key(key))
    assert answer.status == 201, answer.body
    world.drain()
    pledge = world.wiring.pledges.get(pledge_id_for(answer.body["donation_id"]))
    assert pledge is not None
    return pledge


def _token(url: str) -> str:
    return url.split("#token=", 1)[1]


def _call(world, path: str, body: dict[str, str]):
    return world.pipeline.call_api("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})


def _manage_token(world, pledge: Pledge) -> str:
    return _token(world.wiring.pledge_links.manage_url(pledge.pledge_id))


def test_a_donor_sees_the_pledge_through_the_link_without_email_or_stripe_ids(world):
    # Given a monthly pledge and its manage link
    pledge = _pledge(world)

    # When the manage page posts the link's token
    answer = _call(world, f"/pledges/{pledge.pledge_id}", {"token": _manage_token(world, pledge)})

    # Then it sees the amount, the next date and the card's last 4 digits, with a cancel token; nothing else
    assert answer.status == 200, answer.body
    assert {key: answer.body[key] for key in ("state", "amount", "currency", "next_charge_on", "card_last4")} == {
        "state": "active",
        "amount": 2500,
        "currency": "usd",
        "next_charge_on": pledge.next_charge_on,
        "card_last4": "4242",
    }
    assert answer.body["cancel_token"]
    assert "ada@" not in json.dumps(answer.body) and "cus_" not in json.dumps(answer.body)


def test_a_canceled_pledge_is_never_charged_again_and_its_cancel_token_works_once(world):
    # Given a pledge whose donor asked for a cancel token
    pledge = _pledge(world, "cancel")
    cancel_token = _call(world, f"/pledges/{pledge.pledge_id}", {"token": _manage_token(world, pledge)}).body[
        "cancel_token"
    ]

    # When they cancel
    answer = _call(world, f"/pledges/{pledge.pledge_id}/cancel", {"token": cancel_token})

    # Then it is canceled, out of the due index
    assert answer.status == 200, answer.body
    assert (answer.body["state"], answer.body["next_charge_on"], answer.body["cancel_token"]) == (
        "canceled",
        None,
        None,
    )
    canceled = world.wiring.pledges.get(pledge.pledge_id)
    assert canceled is not None and canceled.state is PledgeState.CANCELED and canceled.due_on is None
    assert canceled.canceled_by == "donor"
    assert world.wiring.pledges.due_on(pledge.next_charge_on) == []

    # And a renewal message already queued for it is acknowledged and charges nothing
    before = world.stripe_requests()
    message = RenewalMessage(pledge_id=pledge.pledge_id, period=pledge.period)
    world.send("renewal", message.model_dump_json(), {})
    world.drain()
    assert world.queued("renewal") == [] and world.queued("renewal_dlq") == []
    assert world.stripe_requests() == before
    assert world.wiring.store.get(renewal_donation_id(pledge.pledge_id, pledge.period)) is None

    # And replaying the cancel token (even after an operator resumed the pledge) is refused, changing nothing
    resumed = world.wiring.pledges.resume(canceled, datetime.now(UTC).date())
    replay = _call(world, f"/pledges/{pledge.pledge_id}/cancel", {"token": cancel_token})
    assert replay.status == 409 and replay.body["error"]["code"] == "link_used"
    assert world.wiring.pledges.get(pledge.pledge_id) == resumed


def _forged(token: str) -> str:
    version, payload, signature = token.split(".")
    return f"{version}.{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


HOSTILE = {
    "forged signature": lambda world, mine, other: (f"/pledges/{mine.pledge_id}", _forged(_manage_token(world, mine))),
    "signed with another key": lambda world, mine, other: (
        f"/pledges/{mine.pledge_id}",
        _token(PledgeLinks(lambda: "x" * 40, "https://evil.example/").manage_url(mine.pledge_id)),
    ),
    "expired": lambda world, mine, other: (
        f"/pledges/{mine.pledge_id}",
        _token(
            PledgeLinks(
                lambda: Pipeline.pledge_link_key, "https://x/", clock=lambda: time.time() - 15 * 86400
            ).manage_url(mine.pledge_id)
        ),
    ),
    "for another pledge": lambda world, mine, other: (f"/pledges/{other.pledge_id}", _manage_token(world, mine)),
    "guessed pledge id": lambda world, mine, other: ("/pledges/pl_" + "0" * 24, _manage_token(world, mine)),
    "not a pledge id": lambda world, mine, other: ("/pledges/..%2f..", _manage_token(world, mine)),
    "a manage token used to cancel": lambda world, mine, other: (
        f"/pledges/{mine.pledge_id}/cancel",
        _manage_token(world, mine),
    ),
    "garbage": lambda world, mine, other: (f"/pledges/{mine.pledge_id}", "v1.e30.AAAA"),
    "a cancel token used to skip": lambda world, mine, other: (
        f"/pledges/{mine.pledge_id}/skip",
        _view(world, mine)["cancel_token"],
    ),
    "a skip token used to pause": lambda world, mine, other: (
        f"/pledges/{mine.pledge_id}/pause",
        _view(world, mine)["action_tokens"]["skip"],
    ),
    "an amount token for another pledge": lambda world, mine, other: (
        f"/pledges/{other.pledge_id}/amount",
        _view(world, mine)["action_tokens"]["amount"],
    ),
    "a forged pause token": lambda world, mine, other: (
        f"/pledges/{mine.pledge_id}/pause",
        _forged(_view(world, mine)["action_tokens"]["pause"]),
    ),
    "a resume token for a guessed pledge id": lambda world, mine, other: (
        "/pledges/pl_" + "1" * 24 + "/resume",
        _token_for(mine, Purpose.RESUME),
    ),
}
# The routes a token changes the pledge through (each with the body it takes besides the token).
CHANGES = {"cancel": {}, "amount": {"amount": 4000}, "skip": {}, "pause": {}, "resume": {}}


def _view(world, pledge: Pledge) -> dict:
    answer = _call(world, f"/pledges/{pledge.pledge_id}", {"token": _manage_token(world, pledge)})
    assert answer.status == 200, answer.body
    return dict(answer.body)


def _token_for(pledge: Pledge, purpose: Purpose) -> str:
    return PledgeLinks(lambda: Pipeline.pledge_link_key, "https://x/").token(pledge.pledge_id, purpose, 900)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_link_gets_a_clear_4xx_and_changes_nothing(world, case):
    # Given two donors' pledges
    mine = _pledge(world, "hostile-mine")
    other = _pledge(world, "hostile-other", email="grace@example.org")
    path, token = HOSTILE[case](world, mine, other)

    # When the hostile link is used to view the pledge or change it (cancel, amount, skip, pause, resume)
    action = path.rsplit("/", 1)[1]
    paths = [path] if action in CHANGES else [path, *(f"{path}/{change}" for change in CHANGES)]
    answers = {used: _call(world, used, {"token": token, **CHANGES.get(used.rsplit("/", 1)[1], {})}) for used in paths}

    # Then each is refused with 403 and a code saying why (a manage token never changes anything, a one-time
    # token only its own change), and neither pledge changed
    for used, answer in answers.items():
        expected = "link_expired" if case == "expired" and used == path else "link_invalid"
        assert (answer.status, answer.body["error"]["code"]) == (403, expected), (case, used, answer.body)
    assert world.wiring.pledges.get(mine.pledge_id) == mine
    assert world.wiring.pledges.get(other.pledge_id) == other


def test_an_expired_cancel_token_is_refused(world):
    pledge = _pledge(world, "expired-cancel")
    old = PledgeLinks(
        lambda: Pipeline.pledge_link_key, "https://x/", clock=lambda: time.time() - CANCEL_TOKEN_SECONDS - 1
    )
    answer = _call(
        world,
        f"/pledges/{pledge.pledge_id}/cancel",
        {"token": old.token(pledge.pledge_id, Purpose.CANCEL, CANCEL_TOKEN_SECONDS)},
    )
    assert answer.status == 403 and answer.body["error"]["code"] == "link_expired"
    assert world.wiring.pledges.get(pledge.pledge_id) == pledge


def test_a_donor_asks_for_a_fresh_link_and_gets_one_email_the_same_answer_as_a_stranger(world):
    # Given a donor with a pledge
    pledge = _pledge(world, "fresh-link")
    sent_before = len(world.sendgrid.outbox)

    # When they ask for a link, and someone asks for an address with no pledge
    theirs = _call(world, "/pledge-links", {"email": DONATION["email"].upper()})
    nobodys = _call(world, "/pledge-links", {"email": "nobody@example.org"})

    # Then both get the same answer
    assert (theirs.status, theirs.body) == (nobodys.status, nobodys.body)
    assert theirs.status == 202

    # And once the receipt queue is drained, the donor has one email whose link opens the pledge
    world.drain()
    [mail] = [m for m in world.sendgrid.outbox[sent_before:] if m["custom_args"].get("pledge_id") == pledge.pledge_id]
    assert mail["to"] == [DONATION["email"]]
    [link] = re.findall(r"http\S+#token=\S+", mail["content"][0]["value"])
    assert _call(world, f"/pledges/{pledge.pledge_id}", {"token": _token(link)}).status == 200
    assert len(world.sendgrid.outbox) == sent_before + 1

    # And a redelivered message, or a second request minutes later, sends no second email
    world.redeliver_last_batches()
    world.drain()
    _call(world, "/pledge-links", {"email": DONATION["email"]})
    world.drain()
    assert len(world.sendgrid.outbox) == sent_before + 1


@pytest.mark.parametrize("body", [{"email": "not-an-address"}, {"email": "a@b", "extra": "x"}, {}])
def test_a_bad_link_request_is_refused(world, body):
    answer = _call(world, "/pledge-links", body)
    assert answer.status == 400, answer.body
    assert world.queued("receipt") == []


def _ops(world, capsys, *args: str) -> dict:
    capsys.readouterr()  # drop what the functions logged
    code = main(["--stack-name", world.pipeline.stack.stack_name, *args, "--json"], clients=world.pipeline.clients)
    out, err = capsys.readouterr()
    assert code == 0, err
    return dict(json.loads(out)["pledge"])


def test_operators_cancel_and_resume_a_pledge(world, capsys):
    # Given an active pledge
    pledge = _pledge(world, "ops")

    # When an operator cancels it
    canceled = _ops(world, capsys, "pledges", "cancel", pledge.pledge_id)

    # Then it is canceled by the operator and leaves the due index
    assert (canceled["state"], canceled["canceled_by"]) == ("canceled", "operator")
    assert world.wiring.pledges.due_on(pledge.next_charge_on) == []

    # When they resume it
    resumed = _ops(world, capsys, "pledges", "resume", pledge.pledge_id)

    # Then it is due again on its next charge day from today, never this month (the first gift paid it)
    today = datetime.now(UTC).date()
    assert resumed["state"] == "active"
    assert resumed["next_charge_on"] > today.isoformat() and resumed["next_charge_on"][:7] != today.isoformat()[:7]
    assert resumed["next_charge_on"][8:] == "10"
    assert world.wiring.pledges.due_on(resumed["next_charge_on"]) == [pledge.pledge_id]


def test_resuming_a_failed_pledge_skips_the_failed_period(world, capsys):
    # Given a pledge whose renewal for a period failed
    pledge = _pledge(world, "ops-failed")
    failed = world.wiring.pledges.record_failure(pledge, "don_x", "generic_decline: ...")
    assert failed.state is PledgeState.NEEDS_ATTENTION

    # When an operator resumes it
    resumed = _ops(world, capsys, "pledges", "resume", pledge.pledge_id)

    # Then it is active, out of the attention list, due on the period after the failed one
    assert resumed["state"] == "active"
    assert resumed["next_charge_on"][:7] > pledge.period
    assert world.wiring.pledges.needing_attention(10) == []


def test_a_monthly_gift_s_receipt_carries_a_manage_link_that_opens_its_pledge(world):
    # Given a monthly pledge whose first renewal is charged
    pledge = _saved_card_pledge(world, "receipt-link")
    _schedule(world, pledge.next_charge_on)
    world.drain()

    # Then its receipt (the shipped template, rendered) carries a signed manage link in both bodies...
    [receipt] = world.sendgrid.outbox_for(renewal_donation_id(pledge.pledge_id, pledge.period))
    assert receipt["dynamic_template_data"]["manage_url"]
    rendered = receipt["rendered"]
    [link] = re.findall(r"http\S+#token=[\w.-]+", rendered["text"])
    assert link in rendered["html"].replace("&#x3D;", "=")
    # ...that opens that pledge on the manage page
    answer = _call(world, f"/pledges/{pledge.pledge_id}", {"token": _token(link)})
    assert answer.status == 200 and answer.body["pledge_id"] == pledge.pledge_id

    # And a one-time gift's receipt carries none
    one_time = world.post(DONATION, key=a_key("receipt-one-time"))
    world.drain()
    [plain] = world.sendgrid.outbox_for(one_time.body["donation_id"])
    assert plain["dynamic_template_data"]["manage_url"] == "" and "#token=" not in plain["rendered"]["text"]


def test_the_first_gift_s_receipt_links_to_its_pledge_even_when_sent_before_the_pledge_is_made(world):
    # Given a monthly gift whose receipt is sent before the tokenize step has saved the card and made the pledge
    answer = world.post(MONTHLY, key=a_key("first-gift-link"))
    donation_id = answer.body["donation_id"]
    world.deliver("receipt")
    assert world.wiring.pledges.get(pledge_id_for(donation_id)) is None

    # Then the receipt carries the manage link of the pledge the gift starts
    [receipt] = world.sendgrid.outbox_for(donation_id)
    [link] = re.findall(r"http\S+#token=[\w.-]+", receipt["rendered"]["text"])
    path = f"/pledges/{pledge_id_for(donation_id)}"
    # ... which, opened now, says the gift is still being set up (not that the link is bad), and changes nothing
    early = _call(world, path, {"token": _token(link)})
    assert (early.status, early.body["error"]["code"]) == (404, "pledge_not_made_yet"), early.body
    assert "still being set up" in early.body["error"]["message"]
    assert world.wiring.pledges.get(pledge_id_for(donation_id)) is None

    # When the tokenize step has made the pledge, Then the same link opens it
    world.drain()
    opened = _call(world, path, {"token": _token(link)})
    assert opened.status == 200 and opened.body["amount"] == MONTHLY["amount"], opened.body


def test_donor_show_tells_an_operator_the_pledge_a_gift_belongs_to(world, capsys):
    # Given a monthly pledge made on the form (its first gift) and a one-time gift
    pledge = _pledge(world, "donor-show")
    one_time = world.post(DONATION, key=a_key("donor-show-once")).body["donation_id"]
    world.drain()

    # When an operator looks up the first gift: its pledge, with its state, next date and card
    shown = _ops(world, capsys, "donor", "show", pledge.first_donation_id)
    assert (shown["pledge_id"], shown["state"], shown["next_charge_on"]) == (
        pledge.pledge_id,
        "active",
        pledge.next_charge_on,
    )
    assert shown["card"] == "visa ••4242" and shown["email_masked"] == pledge.email_masked
    assert "customer_id" not in shown and "payment_method_id" not in shown and "email" not in shown
    capsys.readouterr()
    assert main(["--stack-name", world.pipeline.stack.stack_name, "donor", "show", pledge.first_donation_id],
                clients=world.pipeline.clients) == 0  # fmt: skip
    assert f"pledge    pledge_id {pledge.pledge_id}, state active" in capsys.readouterr().out

    # And a one-time gift belongs to none
    assert main(["--stack-name", world.pipeline.stack.stack_name, "donor", "show", one_time, "--json"],
                clients=world.pipeline.clients) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["pledge"] is None
