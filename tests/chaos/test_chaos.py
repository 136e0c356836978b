"""The chaos run in CI: 200 donations under random faults, fixed seed, with Stripe's webhooks delivered
at least once, out of order and in the middle of charges; every invariant must hold (no double charge,
no donation recorded as not charged while Stripe holds its money, no lost receipt), and the
fundraising report tells the truth about their receipts, while some are missing and after recovery.
Then refunds and disputes on some of them, their events twice and out of order: nothing counted twice,
no second correction email (tests/chaos/after_the_gift.py)."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from donations_ops.cli import main
from tests.chaos.harness import ChaosConfig, ChaosRun
from tests.chaos.renewals import RenewalChaos, RenewalChaosConfig
from tests.support.world import World

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


def receipts_report(world: World, capsys: pytest.CaptureFixture[str]) -> dict:
    """donations-ops report for the run's day(s) (yesterday too, should it cross midnight UTC)."""
    today = datetime.now(UTC).date()
    first = (today - timedelta(days=1)).isoformat()
    capsys.readouterr()
    args = ["--stack-name", world.pipeline.stack.stack_name, "report", "--from", first, "--to", today.isoformat()]
    assert main([*args, "--json"], clients=world.pipeline.clients) == 0
    return json.loads(capsys.readouterr().out)


def truth(world: World) -> tuple[set[str], set[str]]:
    """(donations Stripe charged, donations with a receipt in SendGrid's outbox), from the emulators."""
    ids = world.donation_ids()
    charged = {d for d in ids if world.stripe.charges_for(d) == 1}
    return charged, {d for d in ids if world.sendgrid.outbox_for(d)}


def test_nothing_is_lost_or_doubled_under_faults(pipeline, stripe_emulator, sendgrid_emulator, capsys):
    world = World(pipeline, stripe_emulator, sendgrid_emulator)
    during: dict = {}

    def look(_: ChaosRun) -> None:
        during["report"], during["truth"] = receipts_report(world, capsys), truth(world)

    report = ChaosRun(world, ChaosConfig(donations=200, seed=20261125), before_recovery=look).run()

    print(report.summary())
    assert report.faults > 20 and report.charge_crashes and report.consumer_crashes and report.duplicates
    assert report.told["succeeded"] > 100 and report.told["declined"] > 5
    assert report.told["unknown"] > 3  # donors who gave up: the reconciler had to finish their donations
    assert report.dead_lettered > 5  # the SendGrid outage parked receipts: alarms and redrive were exercised
    # Stored 500s left PaymentIntents the retries canceled, while Stripe's events (succeeded, canceled,
    # failed) came in between, some at the charge's riskiest steps: none moved a donation it was not about
    assert report.leftovers and report.webhooks["midcharge_superseded"]
    assert report.webhooks["succeeded"] + report.webhooks["midcharge_succeeded"] > 100
    assert (report.double_charges, report.double_receipts, report.lost, report.not_recorded) == (0, 0, 0, 0), (
        report.violations
    )
    # After the gift: refunds (two in part, or in full) and disputes (lost, won), their events duplicated and
    # shuffled, some older than what was already applied: each donor's refunded sum is Stripe's, told once.
    gifts = report.after_the_gift
    assert min(gifts[kind] for kind in ("refund_twice", "refund_in_full", "dispute_lost", "dispute_won")) >= 6
    assert gifts["already_final"] > 0  # an older refunded sum, or a dispute's start after its end
    assert report.violations == []

    # While receipts were missing, the report named every charged donor without one: as a missing
    # receipt, or as a payment the records did not show finished yet (the reconciler finishes those).
    charged, mailed = during["truth"]
    listed = {p["donation_id"] for p in during["report"]["receipts_missing"] + during["report"]["stuck"]}
    assert charged - mailed, "the chaos run should leave receipts missing before its recovery"
    assert charged - mailed <= listed
    assert during["report"]["receipts_answer"].startswith("No: ")
    # After recovery: "did every donor get a receipt?" is answered yes, for exactly those Stripe charged.
    after = receipts_report(world, capsys)
    charged, mailed = truth(world)
    assert charged == mailed
    assert after["receipts_answer"] == f"Yes: all {len(charged)} donors whose donation was received got their receipt."
    assert after["receipts_missing"] == [] and after["receipts_due"] == len(charged)


def test_renewals_charge_each_period_once_under_faults_and_crashes(pipeline, stripe_emulator, sendgrid_emulator):
    # Given 13 pledges (8 on a good card, 3 on a card always declined, 2 on a lost card) and three months
    # of schedule runs, under provider faults, crashes of the renew function at every port call, consumer
    # crashes, duplicate and lost messages, each month followed by production's recovery
    world = World(pipeline, stripe_emulator, sendgrid_emulator)

    # When the chaos run renews them
    report = RenewalChaos(world, RenewalChaosConfig()).run()

    # Then every good pledge's three periods were charged once each, with one receipt; no period twice,
    # none skipped, nothing lost; the failing cards went through dunning to lapsed
    print(report.summary())
    assert report.faults and report.renew_crashes and report.consumer_crashes
    assert report.duplicates and report.lost_messages
    assert report.periods_charged == 8 * 3
    assert (report.double_charges, report.skipped, report.double_receipts, report.lost) == (0, 0, 0, 0)
    assert report.states == {"good:active": 8, "soft:lapsed": 3, "hard:lapsed": 2}
    assert report.violations == []
