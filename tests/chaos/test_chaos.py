"""The chaos run in CI: 200 donations under random faults, fixed seed; every invariant must hold."""

import pytest

from tests.chaos.harness import ChaosConfig, ChaosRun
from tests.support.world import World

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


def test_nothing_is_lost_or_doubled_under_faults(pipeline, stripe_emulator, sendgrid_emulator):
    world = World(pipeline, stripe_emulator, sendgrid_emulator)

    report = ChaosRun(world, ChaosConfig(donations=200, seed=20261125)).run()

    print(report.summary())
    assert report.faults > 20 and report.charge_crashes and report.consumer_crashes and report.duplicates
    assert report.told["succeeded"] > 100 and report.told["declined"] > 5
    assert report.told["unknown"] > 3  # donors who gave up: the reconciler had to finish their donations
    assert report.dead_lettered > 5  # the SendGrid outage parked receipts: alarms and redrive were exercised
    assert (report.double_charges, report.double_receipts, report.lost) == (0, 0, 0)
    assert report.violations == []
