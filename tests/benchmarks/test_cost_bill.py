"""The cost model's fixed lines come from template.yaml (counted, never typed in), and the bill's
lines that grow with traffic behave as CloudWatch and DynamoDB bill them."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from benchmarks.cost_bill import VOLUMES, fixed_lines, metric_lines, warm_up_line
from benchmarks.cost_pricing import load_prices
from benchmarks.cost_template import template_facts
from infra.deploy import Template, load_template
from simulator.local.events import scheduled_event
from simulator.local.metrics import emf_metric_data
from tests.infra.tooling import TEMPLATE

RECONCILER_RUN = 0.000005  # US$, about what one measured run costs (2026-12-06: $0.04 for 8,640 runs)


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def prices() -> dict[str, Any]:
    return load_prices()


def _fixed(template: Template, prices: dict[str, Any], **parameters: str) -> dict[str, float]:
    """Service + first word of the item -> US$ a month (optional lines keyed with their parameter)."""
    lines = fixed_lines(template_facts(template, parameters), prices, RECONCILER_RUN)
    costs: dict[str, float] = {}
    for line in lines:
        key = f"{line.service} {line.item.split(':')[0]}" + (f" [{line.optional}]" if line.optional else "")
        costs[key] = costs.get(key, 0.0) + line.monthly[0]
    return costs


def test_every_alarm_of_the_template_is_priced_and_one_more_costs_one_more(template, prices) -> None:
    # Given the template's alarms counted independently of the model
    alarms = [lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert len(alarms) >= 20
    # (a metric math alarm is billed per metric it reads: renewal-run-not-finished reads 2)
    billed = sum(
        len([q for q in template["Resources"][lid]["Properties"].get("Metrics", []) if "MetricStat" in q]) or 1
        for lid in alarms
    )
    assert billed == len(alarms) + 1
    assert _fixed(template, prices)["CloudWatch alarms"] == pytest.approx(billed * 0.10)

    # When one more plain alarm and one metric math alarm over three metrics are added
    grown = copy.deepcopy(template)
    grown["Resources"]["ExtraAlarm"] = copy.deepcopy(template["Resources"][alarms[0]])
    stat = {"Metric": {"Namespace": "AWS/Lambda", "MetricName": "Errors"}, "Period": 60, "Stat": "Sum"}
    grown["Resources"]["MathAlarm"] = {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "Metrics": [{"Id": f"m{i}", "MetricStat": stat, "ReturnData": False} for i in range(3)]
            + [{"Id": "total", "Expression": "m0 + m1 + m2"}]
        },
    }

    # Then the alarm line grows by 4 alarm metrics: CloudWatch bills metric math per metric
    assert _fixed(grown, prices)["CloudWatch alarms"] == pytest.approx((billed + 4) * 0.10)


def test_optional_resources_are_priced_only_when_their_parameter_creates_them(template, prices) -> None:
    defaults = _fixed(template, prices)
    everything = _fixed(
        template, prices, EnableDashboard="true", EncryptOperatorTopics="true", SnapStart="true", EnableWaf="true"
    )
    assert (defaults["CloudWatch dashboards"], everything["CloudWatch dashboards"]) == (0.0, 3.00)
    # The provider keys' parameters under the stack's key by default (EncryptSecrets); the topics' key is optional
    assert (defaults["KMS customer managed keys"], everything["KMS customer managed keys"]) == (1.00, 2.00)
    assert _fixed(template, prices, EncryptSecrets="false")["KMS customer managed keys"] == 0.0
    assert "Lambda SnapStart cache [SnapStart]" not in defaults
    # The charge function (1,024 MB) and the Stripe webhook (256 MB), cached all month: 1.25 GB x 2,592,000 s
    assert everything["Lambda SnapStart cache [SnapStart]"] == pytest.approx(1.25 * 2_592_000 * 0.0000015046)
    # IP reputation, known bad inputs, and a rate rule each for donations, status reads and webhooks, and
    # webhooks from Stripe's addresses only
    assert everything["WAF web ACL + 6 rules [EnableWaf]"] == pytest.approx(5.00 + 6 * 1.00)
    assert "WAF web ACL + 6 rules [EnableWaf]" not in _fixed(template, prices, EnableWaf="false")


def test_fixed_cost_without_waf_and_snapstart_is_at_most_five_dollars(template, prices) -> None:
    costs = _fixed(template, prices)
    core = {item: cost for item, cost in costs.items() if "[" not in item}
    assert sum(core.values()) <= 5.00, core
    # Each schedule is priced by its runs: the reconciler every 5 minutes, the growth notice every 15,
    # the renewal schedule every hour
    facts = template_facts(template)
    assert facts.schedules == {
        "ReconcilerFunction": 8640.0,
        "NotifierFunction": 2880.0,
        "ScheduleRenewalsFunction": 720.0,
    }
    assert len(facts.sqs_event_sources) == 3
    # The provider keys (a Stripe key per function), the identifier secret and the pledge link key are 9
    # SecureString parameters (no monthly fee), not Secrets Manager secrets
    assert (facts.secrets, facts.secure_parameters) == (0, 9)


@pytest.mark.integration
def test_the_fixed_bill_stays_at_most_five_dollars_with_the_metrics_scheduled_runs_send(
    world, capsys, template, prices
) -> None:
    # Given the custom metrics the renewal schedule really sends on an hourly run that finds nothing due
    # (most of its 720 runs a month: a metric sent on every run is billed every hour)
    # Powertools' metric set is shared by every function in this process: a test before this one on the worker
    # that added metrics outside a handler (core code called directly) would have them flushed by this run.
    from donations.observability import metrics

    metrics.clear_metrics()
    capsys.readouterr()
    world.pipeline.invoke(
        "ScheduleRenewalsFunction",
        scheduled_event("arn:aws:events:us-east-1:123456789012:rule/renewals", at=datetime(2027, 1, 20, 6, tzinfo=UTC)),
    )
    sent = sorted(
        name
        for line in capsys.readouterr().out.splitlines()
        if line.startswith('{"_aws"')
        for _, name, _, _, _ in emf_metric_data(json.loads(line), "schedule_renewals")
    )

    # When the fixed lines are priced with them
    lines = fixed_lines(
        template_facts(template), prices, RECONCILER_RUN, run_metrics={"ScheduleRenewalsFunction": sent}
    )

    # Then the bill without WAF and SnapStart stays within $5: the run sends no heartbeat metric (its
    # alarm reads the function's free AWS/Lambda metrics), so no fixed custom-metric line appears
    assert sent == []
    assert sum(line.monthly[0] for line in lines if not line.optional) <= 5.00
    assert not [line.item for line in lines if "custom metrics" in line.item]


def test_a_secret_a_role_may_read_is_priced(template, prices) -> None:
    # Given a copy of the template whose charge function may also read a Secrets Manager secret
    grown = copy.deepcopy(template)
    role = grown["Resources"]["ChargeFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    role["Statement"].append(
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "arn:aws:secretsmanager:x"}
    )

    # Then the bill has a secret at $0.40 a month
    assert _fixed(template, prices)["Secrets Manager secrets"] == 0.0
    assert _fixed(grown, prices)["Secrets Manager secrets"] == pytest.approx(0.40)


def test_a_custom_metric_costs_the_hours_it_gets_data(prices) -> None:
    # Given one metric sent with every donation and one with 1 in 100 (in a run of 200 donations)
    every, rare = ("DonationPipeline", "DonationsCharged", ""), ("DonationPipeline", "Disputes", "")
    line = metric_lines({every: 200, rare: 2}, 200, prices)
    by_volume = dict(zip(VOLUMES, line.monthly, strict=True))

    # Then at 100 donations a month they cost about 100 and 1 hours' worth of $0.30 a month,
    # and at 100,000 the frequent one is billed every hour (the full $0.30), the rare one most hours
    assert by_volume[100] == pytest.approx((93.6 + 1.0) / 720 * 0.30, rel=0.02)
    assert by_volume[100_000] == pytest.approx(0.30 + 0.30 * (1 - 2.718281828 ** (-1000 / 720)), rel=0.01)


def test_the_warm_ups_cost_their_price_times_the_forms_started_per_donation() -> None:
    # Given a warm-up priced at $0.000004 and 10 donors starting the form per donation
    line = warm_up_line(0.000004, 10, "https://aws.amazon.com/api-gateway/pricing/")

    # Then at 100 and 100,000 donations a month the warm-ups cost 1,000 and 1,000,000 times that,
    # a per-donation line in the total without WAF and SnapStart (not optional), never a fixed one
    by_volume = dict(zip(VOLUMES, line.monthly, strict=True))
    assert by_volume[100] == pytest.approx(0.004) and by_volume[100_000] == pytest.approx(4.0)
    assert (line.kind, line.optional) == ("per donation", "")
    # And a form that sends none costs nothing; WAF's share is optional, as WAF is
    assert set(warm_up_line(0.000004, 0, "x").monthly) == {0.0}
    assert warm_up_line(0.0000006, 10, "x", waf=True).optional == "EnableWaf"
