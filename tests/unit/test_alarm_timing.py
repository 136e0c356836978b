"""The arithmetic behind the early alarm (RUNBOOK.md, "When the alarms fire"), from the template and the code:
an outage of even one donation raises <step>-step-failing before its message can reach the DLQ, and the
backlog threshold can fire before the DLQ too."""

from __future__ import annotations

import random

import pytest

from donations.consumer import backoff_seconds
from donations.settings import ConsumerSettings
from infra.deploy.template import load_template

pytestmark = pytest.mark.unit

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
CONSUMER = ConsumerSettings.model_fields
BASE, CAP = CONSUMER["backoff_base_seconds"].default, CONSUMER["backoff_cap_seconds"].default
RECEIVES = RESOURCES["ReceiptQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]


class Extreme(random.Random):
    """Jitter always at one end of its range."""

    def __init__(self, end: str) -> None:
        super().__init__()
        self.end = end

    def uniform(self, a: float, b: float) -> float:
        return a if self.end == "low" else b


def failures(end: str) -> tuple[list[float], float]:
    """When each receive of a message that always fails happens, and when it reaches the DLQ (seconds after
    the first failure): it is retried after each backoff, and parked at once after the last receive."""
    rng, times = Extreme(end), [0.0]
    for receive in range(1, RECEIVES):
        times.append(times[-1] + backoff_seconds(receive, base=BASE, cap=CAP, rng=rng))
    return times, times[-1]


def alarm_time(retries: list[float], phase: float, alarm: dict) -> float | None:
    """When the alarm can first be in ALARM: the end of the first period where DatapointsToAlarm of the last
    EvaluationPeriods periods saw a retry (a retry at time t falls in period floor((t + phase) / Period));
    None if never."""
    period, periods = alarm["Period"], alarm["EvaluationPeriods"]
    needed = alarm.get("DatapointsToAlarm", periods)
    buckets = {int((t + phase) // period) for t in retries}
    for last in range(min(buckets), max(buckets) + periods):
        if sum(1 for b in range(last - periods + 1, last + 1) if b in buckets) >= needed:
            return (last + 1) * period - phase
    return None


@pytest.mark.parametrize("alarm_id", ["ReceiptStepFailingAlarm", "TokenizeStepFailingAlarm"])
def test_a_single_failing_donation_raises_the_step_alarm_before_its_message_reaches_the_dlq(alarm_id):
    alarm = RESOURCES[alarm_id]["Properties"]
    assert (alarm["MetricName"], alarm["Statistic"], alarm["Threshold"]) == ("StepRetries", "Sum", 0)
    worst_margin = min(
        dlq - (alarm_time(retries, phase, alarm) or float("inf"))
        for end in ("low", "high")
        for retries, dlq in [failures(end)]
        for phase in range(alarm["Period"])
    )
    fastest_dlq = failures("low")[1]
    assert fastest_dlq == 155 and failures("high")[1] == 310  # RUNBOOK.md's figures
    assert worst_margin >= 35, worst_margin  # at most 120 s after the first failure, at least 35 s to spare


def test_one_transient_error_does_not_raise_the_step_alarm():
    # One retry that then succeeds counts in one minute only.
    alarm = RESOURCES["ReceiptStepFailingAlarm"]["Properties"]
    assert all(alarm_time([0.0], phase, alarm) is None for phase in range(alarm["Period"]))
    assert alarm_time([0.0, 70.0], 0, alarm) == 120  # a second minute with a retry: it fires


def test_the_backlog_threshold_can_fire_before_the_dlq():
    parameter = TEMPLATE["Parameters"]["QueueAgeThresholdSeconds"]
    fastest_dlq = failures("low")[1]
    assert parameter["Default"] < parameter["MaxValue"] < fastest_dlq
