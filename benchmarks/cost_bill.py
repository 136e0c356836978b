"""Cost model, the monthly bill: every fixed line of the template, what grows with the donations
kept, and the measured per-donation lines, at 100, 1,000, 10,000 and 100,000 donations a month.

* **Fixed** (the same in a month without donations): alarms (each metric an alarm evaluates),
  dashboards, customer managed KMS keys, secrets, the SQS pollers' idle long polls, the scheduled
  functions (the reconciler and the renewals' schedule as measured, the notifier's growth notice
  estimated) and the custom metrics a scheduled function sends on every run, and the optional WAF
  and SnapStart when their parameters create them. Counted by benchmarks.cost_template.
* **Grows with donations**: custom metrics (EMF) are billed for each hour they receive data, so a
  metric sent with k of n measured donations costs 720 x (1 - e^(-N k / n / 720)) hours of a month
  at N donations spread over it; DynamoDB storage and point-in-time recovery of a year's donations
  (the tables without TTL); log storage for the log groups' retention.
* **Per donation**: the measured lines of benchmarks.cost_pricing, x N.

Each price names its AWS pricing page (``source`` in prices.toml).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from benchmarks.common import table
from benchmarks.cost_template import SECONDS_PER_MONTH, TemplateFacts

VOLUMES = (100, 1_000, 10_000, 100_000)
HOURS_PER_MONTH = SECONDS_PER_MONTH / 3600
# The SQS event source mapping's pollers while the queue is idle: AWS does not publish the count;
# 5 long polls of 20 s at a time is the estimate used here (README "What it costs").
IDLE_POLLERS = 5
LONG_POLL_SECONDS = 20
# The notifier's growth notice, estimated (not run by the cost model): one invocation of ~150 ms,
# a GetQueueAttributes per queue (4), a query per step (2, eventually consistent), ~600 bytes of logs.
NOTICE_MS, NOTICE_SQS_CALLS, NOTICE_QUERIES, NOTICE_LOG_BYTES = 150, 4, 2, 600
# DynamoDB bills 100 bytes of overhead per item (and per index entry) for storage.
ITEM_OVERHEAD_BYTES = 100
MONTHS_KEPT = 12


@dataclass(frozen=True)
class BillLine:
    kind: str  # "fixed", "grows", "per donation"
    service: str
    item: str
    source: str
    monthly: tuple[float, ...]  # US$ at each of VOLUMES
    optional: str = ""  # the parameter that adds it (left out of the $5 target), "" if always there


def fixed_lines(
    facts: TemplateFacts,
    prices: dict[str, Any],
    reconciler_run: float,
    measured_runs: dict[str, float] | None = None,
    run_metrics: dict[str, list[str]] | None = None,
) -> list[BillLine]:
    """The template's fixed monthly lines; ``reconciler_run``: one measured run of the reconciler, US$;
    ``measured_runs``: one measured run of other scheduled functions (the rest are estimated), US$;
    ``run_metrics``: the custom metrics a scheduled function's every run sends (billed per hour with data)."""
    measured = measured_runs or {}
    cw, lam, sqs = prices["cloudwatch"], prices["lambda"], prices["sqs"]
    alarm_metrics = sum(facts.alarm_metrics.values())
    math_alarms = sum(1 for metrics in facts.alarm_metrics.values() if metrics > 1)
    idle_requests = len(facts.sqs_event_sources) * IDLE_POLLERS * SECONDS_PER_MONTH / LONG_POLL_SECONDS
    lines = [
        ("CloudWatch", f"alarms: {facts.alarms} ({alarm_metrics} alarm metrics, {math_alarms} metric math)",
         "cloudwatch", alarm_metrics * cw["alarm_standard_month"], ""),
        ("CloudWatch", f"dashboards: {facts.dashboards} (EnableDashboard={facts.parameters.get('EnableDashboard')})",
         "cloudwatch", facts.dashboards * cw["dashboard_month"], ""),
        ("KMS", f"customer managed keys: {facts.kms_keys} "
         f"(EncryptSecrets={facts.parameters.get('EncryptSecrets')}, "
         f"EncryptOperatorTopics={facts.parameters.get('EncryptOperatorTopics')})",
         "kms", facts.kms_keys * prices["kms"]["customer_managed_key_month"], ""),
        ("Secrets Manager", f"secrets: {facts.secrets}", "secrets_manager",
         facts.secrets * prices["secrets_manager"]["secret_month"], ""),
        ("SSM Parameter Store", f"SecureString parameters (standard tier): {facts.secure_parameters}", "ssm",
         facts.secure_parameters * prices["ssm"]["standard_parameter_month"], ""),
        ("SQS", f"idle long polling: {len(facts.sqs_event_sources)} event source mappings "
         f"(est. {IDLE_POLLERS} x {LONG_POLL_SECONDS} s polls, {idle_requests / 1e6:.2f} M requests)",
         "sqs", idle_requests * sqs["standard_requests_per_million"] / 1e6, ""),
    ]  # fmt: skip
    for function, runs in sorted(facts.schedules.items()):
        if function == "ReconcilerFunction":
            item, per_run = f"schedule: reconciler, {runs:,.0f} runs (one run measured)", reconciler_run
        elif function in measured:
            item, per_run = f"schedule: {function}, {runs:,.0f} runs (one run measured)", measured[function]
        else:
            item, per_run = f"schedule: {function}, {runs:,.0f} runs (estimated)", _notice_run(facts, prices, function)
        lines.append(("Lambda", item, "lambda", runs * per_run, ""))
        names = (run_metrics or {}).get(function, [])
        if names:
            hours = min(runs, HOURS_PER_MONTH)
            cost = len(names) * hours / HOURS_PER_MONTH * cw["custom_metric_month"]
            lines.append(("CloudWatch", f"custom metrics sent by every {function} run: {', '.join(names)} "
                          f"({hours:,.0f} hours with data)", "cloudwatch", cost, ""))  # fmt: skip
    if facts.waf_rules:
        waf = prices["waf"]
        lines.append(("WAF", f"web ACL + {facts.waf_rules} rules", "waf",
                      waf["web_acl_month"] + facts.waf_rules * waf["rule_month"], "EnableWaf"))  # fmt: skip
    for function in facts.snapstart_functions:
        gb = facts.memory_mb[function] / 1024
        cache = gb * SECONDS_PER_MONTH * lam["snapstart_cache_gb_second"]
        lines.append(("Lambda", f"SnapStart cache: {function} ({facts.memory_mb[function]} MB, 1 version)",
                      "lambda", cache, "SnapStart"))  # fmt: skip
    return [
        BillLine("fixed", service, item, prices[key]["source"], (cost,) * len(VOLUMES), optional)
        for service, item, key, cost, optional in lines
    ]


def _notice_run(facts: TemplateFacts, prices: dict[str, Any], function: str) -> float:
    lam, sqs, ddb, cw = prices["lambda"], prices["sqs"], prices["dynamodb"], prices["cloudwatch"]
    gb_s = NOTICE_MS / 1000 * facts.memory_mb[function] / 1024
    return float(
        lam["requests_per_million"] / 1e6
        + gb_s * lam["gb_second"]
        + NOTICE_SQS_CALLS * sqs["standard_requests_per_million"] / 1e6
        + NOTICE_QUERIES * 0.5 * ddb["read_request_units_per_million"] / 1e6
        + NOTICE_LOG_BYTES / 1e9 * cw["logs_ingestion_per_gb"]
    )


def metric_lines(metric_counts: dict[tuple[str, str, str], int], donations: int, prices: dict[str, Any]) -> BillLine:
    """Custom metrics (EMF): each metric+dimension set billed for the hours of the month it gets data."""
    price = prices["cloudwatch"]["custom_metric_month"]
    monthly = []
    for volume in VOLUMES:
        hours = sum(
            HOURS_PER_MONTH * (1 - math.exp(-volume * count / donations / HOURS_PER_MONTH))
            for count in metric_counts.values()
        )
        monthly.append(hours / HOURS_PER_MONTH * price)
    names = ", ".join(sorted(f"{name}[{dims}]" if dims else name for _, name, dims in metric_counts))
    item = f"custom metrics (EMF), billed per hour with data: {len(metric_counts)} seen ({names})"
    return BillLine("grows", "CloudWatch", item, prices["cloudwatch"]["source"], tuple(monthly))


def storage_lines(
    bytes_per_donation: float, log_gb_per_donation: float, facts: TemplateFacts, prices: dict[str, Any]
) -> list[BillLine]:
    """DynamoDB storage and PITR of MONTHS_KEPT months of donations; logs held for their retention."""
    ddb, cw = prices["dynamodb"], prices["cloudwatch"]
    stored_gb = [volume * MONTHS_KEPT * bytes_per_donation / 1e9 for volume in VOLUMES]
    retention = max(facts.log_retention_days.values(), default=0)
    log_gb = [volume * log_gb_per_donation * retention / 30 for volume in VOLUMES]
    return [
        BillLine("grows", "DynamoDB", f"storage, {MONTHS_KEPT} months of donations (~{bytes_per_donation:.0f} B each)",
                 ddb["source"], tuple(gb * ddb["storage_gb_month"] for gb in stored_gb)),
        BillLine("grows", "DynamoDB", f"point-in-time recovery ({len(facts.pitr_tables)} tables), same size",
                 ddb["source"], tuple(gb * ddb["pitr_gb_month"] for gb in stored_gb)),
        BillLine("grows", "CloudWatch Logs", f"log storage, {retention} days kept", cw["source"],
                 tuple(gb * cw["logs_storage_gb_month"] for gb in log_gb)),
    ]  # fmt: skip


def warm_up_line(per_warm_up: float, warm_ups_per_donation: float, source: str, *, waf: bool = False) -> BillLine:
    """The form's warm-ups (docs/warm-up.md): ``warm_ups_per_donation`` of them per donation, each
    ``per_warm_up`` US$ (measured: API Gateway, Lambda, DynamoDB, SQS, logs, X-Ray; with ``waf``, WAF's
    request fee, the line then optional like WAF)."""
    monthly = tuple(per_warm_up * warm_ups_per_donation * volume for volume in VOLUMES)
    what = "WAF requests inspected" if waf else "API Gateway, Lambda, DynamoDB, SQS, logs, X-Ray"
    item = (
        f"form warm-ups, {warm_ups_per_donation:g} per donation ({what}): ${per_warm_up * 1000:.4f} per 1,000 warm-ups"
    )
    return BillLine("per donation", "warm-up", item, source, monthly, "EnableWaf" if waf else "")


def free_tier_savings(lines: Sequence[BillLine], facts: TemplateFacts, prices: dict[str, Any]) -> float:
    """What CloudWatch's and SQS's always-free tiers take off the fixed lines (alarms, dashboards, polling)."""
    cw, sqs = prices["cloudwatch"], prices["sqs"]
    alarm_metrics = sum(facts.alarm_metrics.values())
    saved = min(alarm_metrics, cw["free_alarm_metrics"]) * cw["alarm_standard_month"]
    saved += min(facts.dashboards, cw["free_dashboards"]) * cw["dashboard_month"]
    polling = next((line.monthly[0] for line in lines if line.service == "SQS" and line.kind == "fixed"), 0.0)
    saved += min(polling, sqs["free_requests"] * sqs["standard_requests_per_million"] / 1e6)
    return float(saved)


def print_bill(lines: Sequence[BillLine], free_tier: float, out: TextIO) -> tuple[float, float]:
    """The bill table; returns (fixed, fixed without the optional WAF and SnapStart), US$ a month."""
    headers = ["", "service", "item", *[f"{v:,}/month" for v in VOLUMES]]
    print("\nthe monthly bill, US$ (fixed lines from template.yaml; prices: each line's page below)", file=out)
    table(headers, [*_line_rows(lines), *_total_rows(lines, free_tier)], out=out)
    fixed = sum(line.monthly[0] for line in lines if line.kind == "fixed")
    fixed_core = sum(line.monthly[0] for line in lines if line.kind == "fixed" and not line.optional)
    print(f"fixed: ${fixed:.2f} a month, ${fixed_core:.2f} without WAF and SnapStart "
          f"(${fixed_core - free_tier:.2f} after the always-free tiers)", file=out)  # fmt: skip
    for source in sorted({line.source for line in lines}):
        print(f"price source: {source}", file=out)
    return fixed, fixed_core


def _line_rows(lines: Sequence[BillLine]) -> list[list[Any]]:
    """One row a line, the fixed ones first, then those that grow, then those per donation."""
    rows: list[list[Any]] = []
    for kind in ("fixed", "grows", "per donation"):
        for line in [line for line in lines if line.kind == kind]:
            label = f"{kind} ({line.optional})" if line.optional else kind
            rows.append([label, line.service, line.item, *[f"{c:.2f}" for c in line.monthly]])
    return rows


def _total_rows(lines: Sequence[BillLine], free_tier: float) -> list[list[Any]]:
    """The totals at each volume: everything, without the optional lines, and that after the free tiers."""
    totals = [sum(line.monthly[i] for line in lines) for i in range(len(VOLUMES))]
    core = [sum(line.monthly[i] for line in lines if not line.optional) for i in range(len(VOLUMES))]
    return [
        ["total", "", "", *[f"{t:.2f}" for t in totals]],
        ["total", "", "without WAF and SnapStart", *[f"{t:.2f}" for t in core]],
        ["total", "", "the same, after the always-free tiers", *[f"{t - free_tier:.2f}" for t in core]],
    ]
