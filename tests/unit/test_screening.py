"""Card testing: the charge's checks before Stripe (donations.screening), against in-memory ports."""

from __future__ import annotations

import uuid

import pytest

from donations.charge import submit_donation
from donations.errors import CardDeclined, ChallengeFailed, ChallengeRequired, TooManyAttempts
from donations.ports import Client
from donations.screening import Screening
from donations.velocity import VelocityLimits
from tests.support.fakes import FakeAttackMode, FakeChallenges, FakeVelocity
from tests.support.keys import IDENTIFIERS, a_key, donation_id_for
from tests.unit.conftest import BODY, Request

pytestmark = pytest.mark.unit

WIDGET = {"provider": "turnstile", "site_key": "0x4AAAAAAALocalEmulatorKey", "script": "https://example/api.js"}


@pytest.fixture
def velocity() -> FakeVelocity:
    return FakeVelocity(VelocityLimits())


@pytest.fixture
def attack_mode() -> FakeAttackMode:
    return FakeAttackMode()


@pytest.fixture
def challenges() -> FakeChallenges:
    return FakeChallenges(valid={"solved-token"})


@pytest.fixture
def screening(velocity, attack_mode, challenges) -> Screening:
    return Screening(velocity, attack_mode, challenges, WIDGET, card_declines_per_day=3, mode_cache_seconds=5)


@pytest.fixture
def donate(store, payments, publisher, screening):
    def donate(key: str, *, ip: str = "203.0.113.7", token: str | None = None, **changes):
        return submit_donation(
            Request.model_validate({**BODY, **changes}),
            a_key(key),
            # API Gateway's request id: another one for every request, resubmissions included.
            str(uuid.uuid4()),
            store=store,
            payments=payments,
            publisher=publisher,
            lease_seconds=10,
            identifiers=IDENTIFIERS,
            screening=screening,
            client=Client(ip, token),
        )

    return donate


def declined(fingerprint: str = "fp_stolen") -> CardDeclined:
    decline = CardDeclined("Your card was declined.", code="card_declined", decline_code="generic_decline")
    decline.card_fingerprint = fingerprint
    return decline


def test_a_family_of_three_on_one_address_all_donate(donate, payments, velocity):
    # Given three people behind one home router, each donating once
    answers = [donate(f"family-{n}", email=f"member{n}@example.org") for n in range(3)]

    # Then all three are charged, and the address counted three attempts
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert payments.charged() == 3
    assert len(velocity.attempts["ip#203.0.113.7"]) == 3


def test_a_resubmission_with_the_same_key_is_not_counted_twice(donate, payments, velocity):
    first = donate("retry-me")
    again = donate("retry-me")  # the donor's retry after a lost answer: another request, same key

    assert again == first
    assert payments.charged() == 1
    assert velocity.attempts["ip#203.0.113.7"] == {donation_id_for("retry-me")}
    assert velocity.attempts["email#ada@example.org"] == {donation_id_for("retry-me")}


def test_past_the_declines_limit_an_address_is_refused_with_retry_after_and_nothing_reaches_stripe(
    donate, store, payments, velocity
):
    # Given an address with ten declines this hour (the template's limit)
    velocity.declined["ip#198.51.100.9"] = {f"don_{n}" for n in range(10)}

    # When it tries another card
    with pytest.raises(TooManyAttempts) as refused:
        donate("tester-4", ip="198.51.100.9", email="someone@example.org")

    # Then: 429 with Retry-After, a message for a person, no charge, and no record left behind
    assert refused.value.status == 429 and refused.value.retry_after_seconds == velocity.resets_in_seconds
    assert "Nothing was charged" in refused.value.message and "198.51" not in refused.value.message
    assert payments.calls == []
    assert store.get(donation_id_for("tester-4")) is None


def test_past_the_attempts_limit_a_captcha_is_asked_for_and_a_solved_one_lets_the_donor_through(
    donate, payments, velocity
):
    # Given an office address that already made 20 donations this hour
    velocity.attempts["ip#192.0.2.50"] = {f"don_{n}" for n in range(20)}

    # When the 21st colleague donates, a CAPTCHA is asked for (not a refusal)
    with pytest.raises(ChallengeRequired) as asked:
        donate("colleague-21", ip="192.0.2.50", email="colleague21@example.org")
    assert asked.value.status == 403 and asked.value.challenge == WIDGET
    assert payments.calls == []

    # And with the widget's token, the same donation goes through
    answer = donate("colleague-21", ip="192.0.2.50", email="colleague21@example.org", token="solved-token")
    assert answer.status_code == 201 and payments.charged() == 1


def test_under_attack_every_new_donation_needs_a_captcha_before_anything_is_written(
    donate, store, payments, attack_mode, velocity, challenges
):
    attack_mode.under_attack = True

    with pytest.raises(ChallengeRequired):
        donate("bot-1")
    assert store.records == {} and payments.calls == []
    assert attack_mode.refusals == 1  # pressure that keeps the mode open

    # A forged or reused token is refused as such
    with pytest.raises(ChallengeFailed) as failed:
        donate("bot-2", token="forged")
    assert failed.value.code == "challenge_failed" and payments.calls == []

    # A person who solved the widget donates
    assert donate("person-1", token="solved-token").status_code == 201
    assert challenges.verified == ["forged", "solved-token"]


def test_a_client_with_a_decline_has_its_card_checked_and_a_card_declined_too_often_is_refused(
    donate, payments, velocity
):
    # Given a client whose address had a decline today, trying a card declined three times today elsewhere
    velocity.declined["ip#203.0.113.7"] = {"don_earlier"}
    velocity.declined["card#fp_stolen"] = {"don_x", "don_y", "don_z"}
    payments.fingerprints["pm_card_visa"] = "fp_stolen"

    with pytest.raises(TooManyAttempts) as refused:
        donate("same-card-again")

    # Then its card was looked up (one read), and nothing was charged
    assert refused.value.reason == "card"
    assert payments.calls == [("card_fingerprint", "pm_card_visa")]


def test_a_client_without_declines_never_pays_for_the_card_lookup(donate, payments):
    donate("clean-client")

    assert ("card_fingerprint", "pm_card_visa") not in payments.calls


def test_a_decline_counts_against_address_email_and_card_and_towards_the_attack_mode(
    donate, payments, velocity, attack_mode
):
    payments.charges.append(declined("fp_test_card"))

    answer = donate("declined-1", email="tester@example.org")

    assert answer.status_code == 402
    donation_id = donation_id_for("declined-1")
    for key in ("ip#203.0.113.7", "email#tester@example.org", "card#fp_test_card"):
        assert velocity.declined[key] == {donation_id}
    assert attack_mode.declines == 1


def test_the_checks_fail_open_when_the_counters_cannot_be_reached(donate, payments, velocity):
    # A card-testing defence must not take the donation form down with it.
    velocity.outage = RuntimeError("DynamoDB unreachable")

    assert donate("during-outage").status_code == 201
    assert payments.charged() == 1


def test_a_resubmission_of_an_admitted_donation_is_not_judged_again(donate, payments, velocity):
    # Given a donation charged before its address reached the declines limit
    first = donate("admitted")
    velocity.declined["ip#203.0.113.7"] = {"don_a", "don_b", "don_c"}

    # When the donor resubmits it (same key): answered from the record, not refused
    assert donate("admitted") == first
    assert payments.charged() == 1
