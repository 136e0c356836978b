"""The card-testing adapters against DynamoDB (moto): the velocity counters and the attack-mode record.

The FakeVelocity of the unit tier claims the same behaviour (tests/support/fakes.py); these hold the
real one to it, and to what only DynamoDB's conditions give: a limit two racing requests cannot both pass.
"""

from __future__ import annotations

import threading

import pytest

from donations.attack_mode import AttackModeRecord, ModeSettings, per_minute
from donations.identifiers import legacy_donor_key
from donations.velocity import VelocityCounters, VelocityLimits
from tests.support.fakes import FakeVelocity
from tests.support.keys import IDENTIFIERS
from tests.support.world import World

pytestmark = pytest.mark.integration

NOW = 1_800_000_000.0  # a fixed clock: buckets and minutes do not move under the test


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def table(world: World) -> str:
    return world.pipeline.stack.tables["VelocityTable"]


@pytest.fixture
def dynamodb(world: World):
    return world.pipeline.clients("dynamodb")


@pytest.fixture
def counters(dynamodb, table) -> VelocityCounters:
    return VelocityCounters(dynamodb, table, VelocityLimits(), IDENTIFIERS, clock=Clock())


@pytest.fixture
def mode(dynamodb, table) -> tuple[AttackModeRecord, Clock]:
    clock = Clock()
    settings = ModeSettings(breaker_declines=3, window_seconds=300, quiet_seconds=600, pressure_per_minute=2)
    return AttackModeRecord(dynamodb, table, settings, clock=clock), clock


@pytest.mark.parametrize("velocity", ["real", "fake"])
def test_an_attempt_counts_once_per_donation_and_a_limit_counts_nothing_more(velocity, counters):
    limits = VelocityLimits(ip_attempts_per_hour=2, email_attempts_per_day=5)
    store = counters if velocity == "real" else FakeVelocity(limits)
    store.limits = limits

    first = store.count_attempt("don_1", "203.0.113.7", "ada@example.org")
    again = store.count_attempt("don_1", "203.0.113.7", "ada@example.org")  # a resubmission
    second = store.count_attempt("don_2", "203.0.113.7", "ada@example.org")
    third = store.count_attempt("don_3", "203.0.113.7", "ada@example.org")
    human = store.count_attempt("don_3", "203.0.113.7", "ada@example.org", soft_limits=False)

    assert [t.attempts for t in first] == [1, 1] and [t.attempts for t in again] == [1, 1]
    assert [t.over for t in second] == [None, None]
    assert third[0].over == "attempts" and third[0].attempts == 2 and third[1].over is None
    assert human[0].over is None and human[0].attempts == 3


@pytest.mark.parametrize("velocity", ["real", "fake"])
def test_declines_count_once_per_donation_and_stop_the_key(velocity, counters):
    # Given limits of 3 declines for an address and for an email (the address's default is 10 an hour,
    # held by test_card_testing.py; here the counting is what is under test, not the default)
    limits = VelocityLimits(ip_declines_per_hour=3, email_declines_per_day=3)
    store = counters if velocity == "real" else FakeVelocity(limits)
    store.limits = limits

    # When one address and email see three donations declined, one of them reported twice
    for donation in ("don_a", "don_a", "don_b", "don_c"):  # don_a reported twice
        store.record_decline(donation, "198.51.100.9", "t@example.org", "fp_1")
    tallies = store.count_attempt("don_d", "198.51.100.9", "other@example.org")

    # Then each donation counted once, and the address and the email are each stopped by their limit
    assert store.card_declines("fp_1") == 3
    assert [(t.kind, t.declines, t.over) for t in tallies] == [("ip", 3, "declines"), ("email", 0, None)]
    assert store.count_attempt("don_e", "192.0.2.9", "t@example.org")[1].over == "declines"


def test_two_requests_racing_for_the_last_attempt_cannot_both_pass(counters):
    counters.limits = VelocityLimits(ip_attempts_per_hour=1)
    results: list[str | None] = []

    def attempt(donation_id: str) -> None:
        results.append(counters.count_attempt(donation_id, "192.0.2.1", f"{donation_id}@example.org")[0].over)

    threads = [threading.Thread(target=attempt, args=(f"don_{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert sorted(results, key=str) == [None, "attempts", "attempts", "attempts"]


def test_the_table_holds_no_email_address_and_every_item_expires(counters, dynamodb, table):
    counters.count_attempt("don_1", "203.0.113.7", "ada.lovelace@example.org")
    counters.record_decline("don_1", "203.0.113.7", "ada.lovelace@example.org", "fp_1")

    items = dynamodb.scan(TableName=table)["Items"]
    assert "ada.lovelace" not in str(items)
    # nor its unkeyed hash: a list of known addresses cannot be matched against the table
    assert legacy_donor_key("ada.lovelace@example.org") not in str(items)
    assert {item["label"]["S"] for item in items if item["pk"]["S"].startswith("email#")} == {"a***@e***.org"}
    assert all(int(item["expires_at"]["N"]) > NOW for item in items)


def test_the_worst_offenders_of_the_day_come_from_the_index_added_up_per_address(counters):
    clock = Clock()
    counters._clock = clock
    for n in range(3):
        counters.record_decline(f"don_a{n}", "198.51.100.1", f"a{n}@example.org", None)
    clock.now += 3600  # the next hour: another bucket of the same address
    counters.record_decline("don_a9", "198.51.100.1", "a9@example.org", None)
    counters.record_decline("don_b1", "198.51.100.2", "b1@example.org", None)

    top = counters.top_offenders("ip")

    assert [(o.label, o.declines) for o in top] == [("198.51.100.1", 4), ("198.51.100.2", 1)]


def test_declines_in_the_window_open_the_mode_and_old_ones_do_not_count(mode):
    record, clock = mode
    record.note_decline()
    clock.now += 400  # more than the window later: that first decline no longer counts
    assert not record.note_decline().under_attack
    assert not record.note_decline().under_attack

    opened = record.note_decline()  # the third within the window

    assert opened.under_attack and opened.until == int(clock.now) + 600
    assert "3 declines" in (opened.reason or "")
    assert record.current().under_attack


def test_the_mode_stays_open_for_its_whole_quiet_period_when_it_opens_late_in_a_second(dynamodb, table):
    # Given a 1 s quiet period, and the mode opened 0.9 s into a second
    clock = Clock()
    clock.now += 0.9
    settings = ModeSettings(breaker_declines=1, window_seconds=300, quiet_seconds=1, pressure_per_minute=2)
    record = AttackModeRecord(dynamodb, table, settings, clock=clock)
    assert record.note_decline().under_attack

    # When 0.5 s pass / Then it is still open (rounded down to the second, it had ended after 0.1 s)
    clock.now += 0.5
    assert record.current().under_attack
    # And it ends once the whole period has passed
    clock.now += 1.0
    assert not record.current().under_attack


def test_stale_minute_counters_are_removed_by_the_next_write(mode):
    record, clock = mode
    record.note_decline()
    clock.now += 3600
    record.note_decline()  # saw the hour-old counter...
    clock.now += 1
    record.note_decline()  # ...and removed it

    assert sorted(per_minute(record.read(), "d")) == [int(clock.now) // 60]


def test_pressure_keeps_the_mode_open_and_quiet_ends_it(mode):
    record, clock = mode
    for _ in range(3):
        record.note_decline()
    first_until = record.current().until
    clock.now += 120
    for _ in range(3):  # refused attempts, written at most every 2 s per container
        record.note_refusal()
        clock.now += 2.5

    extended = record.current()
    assert extended.under_attack and extended.until is not None and first_until is not None
    assert extended.until > first_until
    clock.now = extended.until + 1
    assert not record.current().under_attack


def test_an_operator_holds_the_mode_off_and_declines_cannot_open_it(mode):
    record, _clock = mode
    record.force(False, 3600, "ops")
    for _ in range(5):
        assert not record.note_decline().under_attack

    forced_on = record.force(True, 60, "ops")
    assert forced_on.under_attack and forced_on.reason == "forced on by ops"
    released = record.release(close=True)
    assert not released.under_attack and released.forced is None


def test_a_campaign_with_an_honest_decline_rate_keeps_the_mode_closed_where_card_testing_opens_it(dynamodb, table):
    # Given the template's breaker: 20 declines within 5 minutes that are at least 30 % of the attempts
    clock = Clock()
    settings = ModeSettings(breaker_declines=20, breaker_decline_rate=0.3, window_seconds=300)
    campaign = AttackModeRecord(dynamodb, table, settings, clock=clock)

    # When a campaign sends 300 donations in 5 minutes and 8 % of them are declined (two containers)
    other_container = AttackModeRecord(dynamodb, table, settings, clock=clock)
    for n in range(300):
        (campaign if n % 2 else other_container).note_attempt()
        clock.now += 1
        if n % 12 == 11:  # 25 declines: more than the old absolute threshold of 20
            assert not campaign.note_decline().under_attack

    # Then the mode stays closed; the count alone would have opened it
    assert not campaign.current().under_attack

    # When card testing starts once the campaign's window has passed: 40 attempts, 38 declined
    clock.now += 300
    for n in range(40):
        campaign.note_attempt()
        clock.now += 0.5
        mode = campaign.note_decline() if n % 20 else campaign.current()

    # Then the rate over the window is far above an honest one, and the mode opens, saying why
    assert mode.under_attack and "declines of" in (mode.reason or "")
