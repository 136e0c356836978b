"""Card testing through the real charge handler: the template's limits, DynamoDB (moto), Stripe and
Turnstile emulators. What reaches Stripe is read from the Stripe emulator's own request counts.

Each test runs with the limits template.yaml gives the charge function (World.template_card_testing);
clients speak from the address they choose through the local front's X-Local-Source-Ip header.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from donations_ops.card_testing import card_testing_status, force_attack_mode
from donations_ops.stack_resources import discover
from simulator.local.pipeline import LOCAL_SOURCE_IP_HEADER
from tests.attack.simulation import DECLINING_TEST_CARDS
from tests.support.keys import a_key, donation_id_for
from tests.support.world import DONATION, World

pytestmark = pytest.mark.integration

DECLINING = "pm_card_chargeDeclined"
CHARGES = "POST /v1/payment_intents"


@pytest.fixture
def limits(world: World):
    with world.template_card_testing() as screening:
        yield screening


def donate(world: World, key: str, *, ip: str = "203.0.113.7", token: str | None = None, **changes: Any):
    headers = {LOCAL_SOURCE_IP_HEADER: ip}
    if token is not None:
        headers["Challenge-Token"] = token
    return world.post({**DONATION, **changes}, key=a_key(key), headers=headers)


def charges(world: World) -> int:
    return world.stripe.requests.get(CHARGES, 0)


def counter(world: World, pk_prefix: str) -> dict[str, Any]:
    client = world.pipeline.clients("dynamodb")
    table = world.pipeline.stack.tables["VelocityTable"]
    items = client.scan(TableName=table)["Items"]  # the test's look at a few items, never the product's way
    found = [item for item in items if item["pk"]["S"].startswith(pk_prefix)]
    assert len(found) == 1, [item["pk"]["S"] for item in items]
    return found[0]


def test_a_family_of_three_on_one_address_all_donate_and_are_counted_once_each(world, limits):
    answers = [donate(world, f"family-{n}", email=f"member{n}@example.org") for n in range(3)]
    donate(world, "family-0", email="member0@example.org")  # a retry of the first, same Idempotency-Key

    assert [a.status for a in answers] == [201, 201, 201]
    assert charges(world) == 3
    ids = set(counter(world, "ip#203.0.113.7#")["attempt_ids"]["SS"])
    assert ids == {donation_id_for(f"family-{n}") for n in range(3)}


def test_the_function_sees_the_address_api_gateway_reports_not_a_header_a_client_sets(world, limits):
    # The local front takes its own header out; a client's X-Forwarded-For means nothing to the checks.
    world.post(
        DONATION, key=a_key("spoof"), headers={LOCAL_SOURCE_IP_HEADER: "198.51.100.1", "X-Forwarded-For": "1.2.3.4"}
    )

    counter(world, "ip#198.51.100.1#")
    with pytest.raises(AssertionError):
        counter(world, "ip#1.2.3.4#")


def test_ten_declines_from_an_address_stop_its_next_card_before_stripe(world, limits):
    # Given ten cards declined from one address within the hour (each a new donor email): more than a
    # shared address's honest donors decline (docs/card-testing-thresholds.md), where 3 stopped a venue
    for n in range(10):  # seven declining test cards in turn: no card reaches its own limit of 3
        card = DECLINING_TEST_CARDS[n % len(DECLINING_TEST_CARDS)]
        answer = donate(world, f"decline-{n}", ip="198.51.100.9", email=f"t{n}@example.org", payment_method=card)
        assert answer.status == 402, answer.body
    before = charges(world)

    # When the address tries an eleventh card
    refused = donate(world, "decline-10", ip="198.51.100.9", email="t10@example.org")

    # Then 429 with Retry-After and a donor-readable message; Stripe never saw it; no record remains
    assert refused.status == 429
    assert refused.body["error"]["code"] == "too_many_attempts"
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    assert "Nothing was charged" in refused.body["error"]["message"]
    assert charges(world) == before
    assert world.wiring.store.get(donation_id_for("decline-10")) is None
    # Another address is not affected
    assert donate(world, "elsewhere", ip="198.51.100.10", email="t11@example.org").status == 201


def test_a_shared_address_with_three_declines_is_not_refused(world, limits):
    # Given a venue's Wi-Fi: three guests' cards declined within the hour
    for n in range(3):
        card = DECLINING_TEST_CARDS[n]
        answer = donate(world, f"gala-{n}", ip="198.51.100.20", email=f"g{n}@example.org", payment_method=card)
        assert answer.status == 402

    # When the next guest donates from the same address, they are charged (no 429, no CAPTCHA)
    assert donate(world, "gala-3", ip="198.51.100.20", email="g3@example.org").status == 201


def test_three_declines_for_an_email_stop_it_from_any_address(world, limits):
    for n in range(3):
        donate(world, f"mail-{n}", ip=f"192.0.2.{n}", email="same@example.org", payment_method=DECLINING)

    before = 86_400 - int(time.time()) % 86_400  # seconds to midnight UTC, read on both sides of the request
    refused = donate(world, "mail-3", ip="192.0.2.99", email="same@example.org")
    after = 86_400 - int(time.time()) % 86_400

    # (an email's count is kept per UTC day: the donor may try again when the day ends, not in the hour)
    assert refused.status == 429
    assert after - 60 <= int(refused.headers["Retry-After"]) <= before


def test_a_declined_resubmission_is_answered_from_the_record_and_counted_once(world, limits):
    first = donate(world, "declined-once", payment_method=DECLINING)
    again = donate(world, "declined-once", payment_method=DECLINING)

    assert (first.status, again.status) == (402, 402)
    assert counter(world, "ip#203.0.113.7#")["decline_count"]["N"] == "1"


def test_past_the_attempts_limit_the_office_gets_a_captcha_and_passes_with_it(world, limits):
    # Given 20 colleagues who donated from the office this hour (the template's soft limit)
    for n in range(20):
        assert donate(world, f"office-{n}", ip="192.0.2.50", email=f"c{n}@example.org").status == 201

    # When the 21st donates, the API asks for the CAPTCHA widget, and Stripe sees nothing
    before = charges(world)
    asked = donate(world, "office-20", ip="192.0.2.50", email="c20@example.org")
    assert asked.status == 403 and asked.body["error"]["code"] == "challenge_required"
    assert asked.body["error"]["challenge"]["site_key"] == world.pipeline.providers.turnstile_sitekey
    assert charges(world) == before

    # Then with the token the widget gives, the same donation (same key) is charged
    token = world.turnstile.issue_token(world.pipeline.providers.turnstile_sitekey, action="donate")
    assert donate(world, "office-20", ip="192.0.2.50", email="c20@example.org", token=token).status == 201
    # A forged token is refused as such
    forged = donate(world, "office-21", ip="192.0.2.50", email="c21@example.org", token="0.forged")
    assert forged.status == 403 and forged.body["error"]["code"] == "challenge_failed"
    # A real token solved on another site with our (public) sitekey is refused too: Cloudflare's
    # siteverify says yes and names the host it was solved on, which is not one of FormHostnames
    elsewhere = world.turnstile.issue_token(
        world.pipeline.providers.turnstile_sitekey, hostname="attacker.example.net", action="donate"
    )
    before = charges(world)
    refused = donate(world, "office-22", ip="192.0.2.50", email="c22@example.org", token=elsewhere)
    assert refused.status == 403 and refused.body["error"]["code"] == "challenge_failed"
    assert charges(world) == before


def test_a_card_declined_three_times_today_is_stopped_for_a_client_with_a_decline(world, limits):
    # Given a test card declined three times today (three testers, three addresses)
    for n in range(3):
        donate(world, f"card-{n}", ip=f"192.0.2.{10 + n}", email=f"card{n}@example.org", payment_method=DECLINING)
    # and a new client whose address had a decline today
    donate(
        world,
        "own-decline",
        ip="192.0.2.77",
        email="own@example.org",
        payment_method="pm_card_chargeDeclinedExpiredCard",
    )
    before = charges(world)

    # When that client tries the card declined three times
    refused = donate(world, "card-3", ip="192.0.2.77", email="own2@example.org", payment_method=DECLINING)

    # Then: refused before any charge (one PaymentMethod read told the fingerprint)
    assert refused.status == 429 and charges(world) == before
    assert world.stripe.requests.get("GET /v1/payment_methods/{id}", 0) == 1


def test_declines_across_the_site_open_the_attack_mode_and_then_every_new_donation_needs_a_captcha(world, limits):
    # Given the template's threshold of declines within 5 minutes, each from another address and email
    threshold = limits.attack_mode.settings.breaker_declines
    for n in range(threshold):
        answer = donate(
            world, f"wave-{n}", ip=f"10.0.{n // 250}.{n % 250}", email=f"w{n}@example.org", payment_method=DECLINING
        )
        assert answer.status == 402

    # Then a new donor, however clean, is asked for the CAPTCHA, and nothing reaches Stripe
    before = charges(world)
    asked = donate(world, "honest-during-attack", ip="203.0.113.200", email="honest@example.org")
    assert asked.status == 403 and asked.body["error"]["code"] == "challenge_required"
    assert charges(world) == before

    # And the honest donor who solves it is charged
    token = world.turnstile.issue_token(world.pipeline.providers.turnstile_sitekey, action="donate")
    answer = donate(world, "honest-during-attack", ip="203.0.113.200", email="honest@example.org", token=token)
    assert answer.status == 201

    # Operators see the mode, why, and the recent declines
    status = card_testing_status(world.pipeline.clients, discover(world.pipeline.clients, world.pipeline.stack_name))
    assert status.mode.under_attack and f"{threshold} declines" in (status.mode.reason or "")
    assert sum(status.declines_per_minute.values()) == threshold


def test_the_attack_mode_ends_by_itself_after_a_quiet_period(world):
    with world.template_card_testing(breaker_declines=2, quiet_seconds=1) as screening:
        for n in range(2):
            donate(world, f"quiet-{n}", ip=f"10.1.0.{n}", email=f"q{n}@example.org", payment_method=DECLINING)
        assert donate(world, "during", ip="10.1.0.9", email="during@example.org").status == 403

        # When nothing happens for the quiet period (waiting on the condition, with a deadline)
        deadline = time.monotonic() + 10
        while screening.attack_mode.current().under_attack:
            assert time.monotonic() < deadline, "the attack mode did not end by itself"
            time.sleep(0.1)

        # Then donations go through without a CAPTCHA again
        assert donate(world, "after", ip="10.1.0.10", email="after@example.org").status == 201


def test_an_operator_forces_the_mode_on_and_the_charge_sees_it(world, limits):
    clients = world.pipeline.clients
    force_attack_mode(clients, discover(clients, world.pipeline.stack_name), on=True, minutes=10, by="ops-test")
    limits.attack_mode.forget()  # as the function's 5 s cache would have run out

    asked = donate(world, "forced", ip="203.0.113.5")

    assert asked.status == 403
    assert (
        card_testing_status(clients, discover(clients, world.pipeline.stack_name)).mode.reason
        == "forced on by ops-test"
    )


def test_refusals_are_counted_by_reason_for_the_alarm(world, limits, capsys):
    limits.attack_mode.forget()
    force_attack_mode(
        world.pipeline.clients, discover(world.pipeline.clients, world.pipeline.stack_name), on=True, minutes=5, by="t"
    )
    capsys.readouterr()

    donate(world, "refused-for-the-alarm", ip="203.0.113.6")

    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"CardTestingRefusals"' in line]
    dimensions = sorted(
        tuple(sorted(dimension_set))
        for blob in emitted
        for directive in blob["_aws"]["CloudWatchMetrics"]
        for dimension_set in directive["Dimensions"]
    )
    assert dimensions == [("reason", "service"), ("service",)]
    assert {blob.get("reason") for blob in emitted} == {"challenge", None}


def test_a_malformed_challenge_token_is_a_400_naming_that_header(world, limits):
    answer = donate(world, "long-token", token="x" * 2049)

    assert answer.status == 400
    assert (answer.body["error"]["code"], answer.body["error"]["field"]) == (
        "invalid_challenge_token",
        "Challenge-Token",
    )
    assert charges(world) == 0
