"""Cost model, pricing: the metered run turned into priced lines, per donation and per month.

Prices come from ``benchmarks/prices.toml`` (us-east-1 list prices; check them before quoting).
DynamoDB units are computed from item sizes before and after each call, index writes included
(moto does not report ConsumedCapacity); see benchmarks.cost_model for what is counted.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import AwsCall, median
from benchmarks.cost_bill import VOLUMES, BillLine, fixed_lines, metric_lines, storage_lines, warm_up_line
from benchmarks.cost_metering import Invocation, index_write_units
from benchmarks.cost_run import PRICES, RECONCILER, SCHEDULE_RENEWALS, CostRun

# Lambda writes START, END and REPORT lines per invocation (REPORT with Init Duration on cold
# starts and the X-Ray ids when tracing is active): about 75 + 55 + 260 bytes.
PLATFORM_LOG_BYTES = 390
PLATFORM_LOG_EVENTS = 3
# Items of the donations table are kept; the idempotency and velocity tables expire theirs (TTL).
KEPT_TABLE = "DonationsTable"
ITEM_OVERHEAD_BYTES = 100  # DynamoDB's storage overhead per item


@dataclass
class Line:
    service: str
    item: str
    quantity: float
    unit: str
    unit_price: float
    per_unit: float  # quantity of units per price unit (e.g. 1e6 for "per million")
    note: str = ""

    @property
    def cost(self) -> float:
        return self.quantity * self.unit_price / self.per_unit


@dataclass
class CostModel:
    run: CostRun
    prices: dict[str, Any]
    lines: list[Line] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bill: list[BillLine] = field(default_factory=list)
    """The monthly bill at each of cost_bill.VOLUMES: the template's fixed lines, what grows, per donation."""
    renewal_lines: list[Line] = field(default_factory=list)
    """The measured renewals' lines (run.renewals), for all of them."""

    @property
    def per_1000_renewals(self) -> float | None:
        renewals = self.run.renewals
        if renewals is None or not renewals.renewals:
            return None
        return sum(line.cost for line in self.renewal_lines) * 1000 / renewals.renewals

    def renewals_by_service(self) -> dict[str, float]:
        """US$ per 1,000 renewals by service."""
        renewals = self.run.renewals.renewals if self.run.renewals else 0
        grouped: dict[str, float] = {}
        for line in self.renewal_lines:
            grouped[line.service] = grouped.get(line.service, 0.0) + line.cost * 1000 / max(1, renewals)
        return dict(sorted(grouped.items(), key=lambda kv: -kv[1]))

    @property
    def total(self) -> float:
        return sum(line.cost for line in self.lines)

    @property
    def per_1000(self) -> float:
        return self.total * 1000 / self.run.donations

    def by_service(self) -> dict[str, float]:
        grouped: dict[str, float] = {}
        for line in self.lines:
            grouped[line.service] = grouped.get(line.service, 0.0) + line.cost * 1000 / self.run.donations
        return dict(sorted(grouped.items(), key=lambda kv: -kv[1]))


def load_prices(path: Path = PRICES) -> dict[str, Any]:
    with path.open("rb") as handle:
        return tomllib.load(handle)


def dynamodb_units(
    run: CostRun, calls: Sequence[AwsCall]
) -> tuple[dict[str, float], dict[str, float], dict[str, float], list[str]]:
    """(WRU by table, GSI WRU by table and index, RRU by table, operations not modelled)."""
    wru: dict[str, float] = {}
    gsi: dict[str, float] = {}
    rru: dict[str, float] = {}
    unknown: list[str] = []
    for call in calls:
        if call.service != "dynamodb" or call.operation == "DescribeTable":
            continue
        body = call.body or {}
        table_name = body.get("TableName", "?")
        label = run.table_labels.get(table_name, table_name)
        old, new = call.extra.get("old"), call.extra.get("new")
        consistent = 1.0 if body.get("ConsistentRead") else 0.5
        if call.operation == "GetItem":
            size = old["size"] if old else 0
            rru[label] = rru.get(label, 0.0) + max(1, math.ceil(size / 4096)) * consistent
        elif call.operation in ("Query", "Scan"):
            size = call.extra.get("read_bytes", 0)
            rru[label] = rru.get(label, 0.0) + max(1, math.ceil(size / 4096)) * consistent
        elif call.operation in ("PutItem", "UpdateItem", "DeleteItem"):
            size = max(old["size"] if old else 0, new["size"] if new else 0)
            wru[label] = wru.get(label, 0.0) + max(1, math.ceil(size / 1024))
            for index in run.indexes.get(table_name, []):
                units = index_write_units(old, new, index, run.table_keys.get(table_name, frozenset()))
                if units:
                    key = f"{label} {index.name}"
                    gsi[key] = gsi.get(key, 0.0) + units
        else:
            unknown.append(call.operation)
            wru[label] = wru.get(label, 0.0) + 1
    return wru, gsi, rru, unknown


def api_call_lines(run: CostRun, calls: Sequence[AwsCall], prices: dict[str, Any]) -> tuple[list[Line], list[str]]:
    """SQS, DynamoDB, Secrets Manager and KMS (SecureString reads) charges for these calls; notes left out."""
    sqs_lines, sqs_notes = _sqs_lines(calls, prices["sqs"])
    dynamodb_lines, dynamodb_notes = _dynamodb_lines(run, calls, prices["dynamodb"])
    return [*sqs_lines, *dynamodb_lines, *_secret_read_lines(calls, prices)], [*sqs_notes, *dynamodb_notes]


def _sqs_lines(calls: Sequence[AwsCall], sqs_p: dict[str, Any]) -> tuple[list[Line], list[str]]:
    """SQS requests by operation and caller, each billed per 64 KB chunk; the local runner's empty polls left out."""

    def chunks(call: AwsCall) -> int:
        return max(1, math.ceil(call.request_bytes / int(sqs_p["request_chunk_bytes"])))

    sqs_calls = [c for c in calls if c.service == "sqs"]
    empty = [c for c in sqs_calls if c.operation == "ReceiveMessage" and c.returned == 0]
    by_op: dict[str, int] = {}
    for call in sqs_calls:
        if call in empty:
            continue
        label = f"{call.operation} ({'event source mapping' if call.scope.startswith('esm:') else call.scope})"
        by_op[label] = by_op.get(label, 0) + chunks(call)
    lines = [
        Line("SQS", label, count, "requests", sqs_p["standard_requests_per_million"], 1e6)
        for label, count in sorted(by_op.items())
    ]
    notes: list[str] = []
    if empty:
        notes.append(
            f"{len(empty)} empty ReceiveMessage calls of the local runner are left out: Lambda's pollers "
            "long-poll, and their idle polling is a fixed cost (below), not a per-donation one."
        )
    return lines, notes


def _dynamodb_lines(run: CostRun, calls: Sequence[AwsCall], ddb: dict[str, Any]) -> tuple[list[Line], list[str]]:
    """On-demand write and read request units, by table and by index."""
    wru, gsi, rru, unknown = dynamodb_units(run, calls)
    per_million = ddb["write_request_units_per_million"]
    lines: list[Line] = []
    for table_name, units in sorted(wru.items()):
        lines.append(Line("DynamoDB", f"{table_name} writes", units, "WRU", per_million, 1e6))
    for index_name, units in sorted(gsi.items()):
        lines.append(Line("DynamoDB", f"{index_name} (GSI) writes", units, "WRU", per_million, 1e6))
    for table_name, units in sorted(rru.items()):
        lines.append(Line("DynamoDB", f"{table_name} reads", units, "RRU", ddb["read_request_units_per_million"], 1e6))
    notes = [f"DynamoDB operations priced at 1 WRU each (not modelled): {sorted(set(unknown))}"] if unknown else []
    return lines, notes


def _secret_read_lines(calls: Sequence[AwsCall], prices: dict[str, Any]) -> list[Line]:
    """Secrets Manager's GetSecretValue calls and the KMS Decrypt behind each SecureString read."""
    lines: list[Line] = []
    secret_calls = sum(1 for c in calls if c.service == "secretsmanager")
    if secret_calls:
        item = "GetSecretValue (cached 5 min)"
        lines.append(
            Line("Secrets Manager", item, secret_calls, "calls", prices["secrets_manager"]["api_calls_per_10k"], 1e4)
        )
    parameter_reads = sum(1 for c in calls if c.service == "ssm" and c.operation == "GetParameter")
    if parameter_reads:
        # SSM's standard GetParameter is free; each SecureString read is one KMS Decrypt (the stack's key or aws/ssm).
        item = "Decrypt of a SecureString read (GetParameter, cached 5 min)"
        lines.append(Line("KMS", item, parameter_reads, "requests", prices["kms"]["requests_per_10k"], 1e4))
    return lines


def lambda_lines(run: CostRun, invocations: Sequence[Invocation], prices: dict[str, Any]) -> list[Line]:
    lam = prices["lambda"]
    lines: list[Line] = []
    granularity = lam["billing_granularity_ms"]
    for function in sorted({i.function for i in invocations}):
        mine = [i for i in invocations if i.function == function]
        memory_gb = run.memory_mb[function] / 1024
        billed_ms = sum(math.ceil(i.duration_ms / granularity) * granularity for i in mine)
        p50 = median([i.duration_ms for i in mine])
        lines.append(Line("Lambda", f"{function} invocations", len(mine), "requests", lam["requests_per_million"], 1e6))
        lines.append(
            Line(
                "Lambda",
                f"{function} compute ({run.memory_mb[function]} MB, p50 {p50:.0f} ms)",
                billed_ms / 1000 * memory_gb,
                "GB-s",
                lam["gb_second"],
                1,
            )
        )
        share = run.config.cold_start_share
        if lam.get("init_phase_billed") and function in run.init_ms and share > 0:
            lines.append(
                Line(
                    "Lambda",
                    f"{function} INIT ({share:.0%} cold x {run.init_ms[function]:.0f} ms)",
                    len(mine) * share * run.init_ms[function] / 1000 * memory_gb,
                    "GB-s",
                    lam["gb_second"],
                    1,
                )
            )
    return lines


def price(run: CostRun, prices: dict[str, Any]) -> CostModel:
    """Every priced line of the run: per donation (API Gateway, Lambda, SQS, DynamoDB, Secrets
    Manager, logs, X-Ray) and fixed per month (metrics, alarms, dashboards, secrets, idle polling,
    the reconciler's schedule)."""
    model = CostModel(run, prices)
    per_donation_calls = [c for c in run.calls if c.scope and c.scope != RECONCILER]
    per_donation_invocations = [i for i in run.invocations if i.function != RECONCILER]
    api = prices["api_gateway"]
    for route, count in sorted(run.api_requests.items()):
        model.lines.append(
            Line(
                "API Gateway", f"REST API requests ({route})", count, "requests", api["rest_requests_per_million"], 1e6
            )
        )
    model.lines += lambda_lines(run, per_donation_invocations, prices)
    lines, notes = api_call_lines(run, per_donation_calls, prices)
    model.lines += lines
    model.notes += notes
    model.lines += _log_and_trace_lines(run, len(per_donation_invocations), prices)
    waf_lines, waf_notes = _waf_lines(run, prices)
    model.lines += waf_lines
    model.notes += waf_notes
    model.notes.append(
        "Not priced: KMS requests for the AWS-managed keys (DynamoDB, SQS and Lambda cache their data keys), "
        "SNS e-mails past the free 1,000 a month, data transfer out, and the providers' own fees (Stripe, SendGrid)."
    )
    model.renewal_lines = renewal_lines(run, prices)
    model.bill = monthly_bill(model)
    return model


def renewal_lines(run: CostRun, prices: dict[str, Any]) -> list[Line]:
    """The measured renewals: the schedule run that found them, each renew invocation, its receipt and
    Stripe's events (API Gateway, Lambda, SQS, DynamoDB, KMS, logs, X-Ray), for all ``renewals``."""
    renewals = run.renewals
    if renewals is None or not renewals.renewals:
        return []
    api, cw, xray = prices["api_gateway"], prices["cloudwatch"], prices["xray"]
    overhead = cw["log_event_overhead_bytes"]
    requests = sum(renewals.api_requests.values())
    log_bytes = (
        renewals.log_bytes
        + renewals.log_events * overhead
        + len(renewals.invocations) * (PLATFORM_LOG_BYTES + PLATFORM_LOG_EVENTS * overhead)
        + requests * (run.access_log_bytes + overhead)
    )
    lines = [
        Line("API Gateway", f"REST API requests ({route})", count, "requests", api["rest_requests_per_million"], 1e6)
        for route, count in sorted(renewals.api_requests.items())
        if count
    ]
    lines += lambda_lines(run, renewals.invocations, prices)
    lines += api_call_lines(run, renewals.calls, prices)[0]
    lines.append(Line("CloudWatch Logs", "logs (function, platform, access)", log_bytes / 1e9, "GB",
                      cw["logs_ingestion_per_gb"], 1))  # fmt: skip
    traces = renewals.renewals + 1  # one per renew message (its receipt follows it), one the schedule run's
    lines.append(Line("X-Ray", "traces", traces, "traces", xray["traces_recorded_per_million"], 1e6))
    if run.template.waf_rules and requests:
        waf = prices["waf"]
        lines.append(
            Line("WAF", "requests inspected (webhooks)", requests, "requests", waf["requests_per_million"], 1e6)
        )
    return lines


def _log_and_trace_lines(run: CostRun, invocations: int, prices: dict[str, Any]) -> list[Line]:
    cw, xray = prices["cloudwatch"], prices["xray"]
    overhead = cw["log_event_overhead_bytes"]
    function_bytes = run.log_bytes + run.log_events * overhead
    platform_bytes = invocations * (PLATFORM_LOG_BYTES + PLATFORM_LOG_EVENTS * overhead)
    access_bytes = sum(run.api_requests.values()) * (run.access_log_bytes + overhead)
    per_gb = cw["logs_ingestion_per_gb"]
    measured = f"function logs + EMF ({run.log_events} events, measured)"
    return [
        Line("CloudWatch Logs", measured, function_bytes / 1e9, "GB", per_gb, 1),
        Line("CloudWatch Logs", "Lambda START/END/REPORT lines (estimated)", platform_bytes / 1e9, "GB", per_gb, 1),
        Line("CloudWatch Logs", "API Gateway access logs (estimated)", access_bytes / 1e9, "GB", per_gb, 1),
        Line(
            "X-Ray",
            "traces recorded (1 per donation)",
            run.donations,
            "traces",
            xray["traces_recorded_per_million"],
            1e6,
        ),
    ]


def _reconciler_run(run: CostRun, prices: dict[str, Any]) -> float:
    """One measured run of the reconciler, US$ (its schedule makes it a fixed cost)."""
    reconciler = [i for i in run.invocations if i.function == RECONCILER]
    calls = [c for c in run.calls if c.scope == RECONCILER]
    return _scheduled_run(run, reconciler, calls, run.reconciler_log_bytes, prices)


def _measured_runs(run: CostRun, prices: dict[str, Any]) -> dict[str, float]:
    """Scheduled functions other than the reconciler with a measured run, US$ a run: the renewals'
    schedule finding nothing due, as most of its hourly runs do."""
    renewals = run.renewals
    if renewals is None or not renewals.empty_run:
        return {}
    cost = _scheduled_run(run, renewals.empty_run, renewals.empty_run_calls, renewals.empty_run_log_bytes, prices)
    return {SCHEDULE_RENEWALS: cost}


def _scheduled_run(
    run: CostRun, invocations: Sequence[Invocation], calls: Sequence[AwsCall], log_bytes: int, prices: dict[str, Any]
) -> float:
    """One run of a scheduled function, US$, from its measured invocations, calls and log output."""
    if not invocations:
        return 0.0
    per_run = sum(line.cost for line in lambda_lines(run, invocations, prices)) / len(invocations)
    per_run += sum(line.cost for line in api_call_lines(run, calls, prices)[0]) / len(invocations)
    per_run_log_bytes = log_bytes / len(invocations) + PLATFORM_LOG_BYTES
    return float(per_run + per_run_log_bytes / 1e9 * prices["cloudwatch"]["logs_ingestion_per_gb"])


def _bytes_per_donation(run: CostRun) -> float:
    """Bytes a donation keeps in the donations table: its items' largest size seen, + DynamoDB's overhead."""
    puts = [
        c
        for c in run.calls
        if c.service == "dynamodb"
        and c.operation == "PutItem"
        and run.table_labels.get((c.body or {}).get("TableName", ""), "") == KEPT_TABLE
    ]
    writes = [
        c.extra["new"]["size"]
        for c in run.calls
        if c.service == "dynamodb"
        and c.extra.get("new")
        and run.table_labels.get((c.body or {}).get("TableName", ""), "") == KEPT_TABLE
    ]
    return len(puts) / run.donations * (max(writes, default=0) + ITEM_OVERHEAD_BYTES)


def monthly_bill(model: CostModel) -> list[BillLine]:
    """Fixed lines (template), lines that grow with the donations kept, and the measured per-donation lines."""
    run, prices = model.run, model.prices
    facts = run.template
    run_metrics = {SCHEDULE_RENEWALS: run.renewals.empty_run_metrics} if run.renewals else {}
    bill = fixed_lines(facts, prices, _reconciler_run(run, prices), _measured_runs(run, prices), run_metrics)
    bill.append(metric_lines(run.emf_metrics, run.donations, prices))
    log_gb = sum(line.quantity for line in model.lines if line.service == "CloudWatch Logs") / run.donations
    bill += storage_lines(_bytes_per_donation(run), log_gb, facts, prices)
    sources = {"API Gateway": "api_gateway", "Lambda": "lambda", "SQS": "sqs", "DynamoDB": "dynamodb", "WAF": "waf",
               "Secrets Manager": "secrets_manager", "KMS": "kms", "CloudWatch Logs": "cloudwatch",
               "X-Ray": "xray"}  # fmt: skip
    for service, per_1000 in model.by_service().items():
        optional = "EnableWaf" if service == "WAF" else ""
        monthly = tuple(per_1000 * volume / 1000 for volume in VOLUMES)
        item = f"measured: ${per_1000:.4f} per 1,000 donations"
        bill.append(BillLine("per donation", service, item, prices[sources[service]]["source"], monthly, optional))
    bill += warm_up_lines(run, prices)
    restores = [i for i in run.invocations if i.function in facts.snapstart_functions]
    if restores:
        lam = prices["lambda"]
        per_donation = (
            sum(
                run.config.cold_start_share * run.memory_mb[i.function] / 1024 * lam["snapstart_restore_gb"]
                for i in restores
            )
            / run.donations
        )
        item = f"SnapStart restores ({run.config.cold_start_share:.0%} of invocations, per GB of MemorySize)"
        monthly = tuple(per_donation * volume for volume in VOLUMES)
        bill.append(BillLine("per donation", "Lambda", item, lam["source"], monthly, "SnapStart"))
    return bill


def warm_up_lines(run: CostRun, prices: dict[str, Any]) -> list[BillLine]:
    """The form's warm-ups, priced from the warm-ups the run sent (metered apart), x the ratio x donations."""
    warm = run.warm_ups
    if warm is None or not warm.samples:
        return []
    api, cw, xray = prices["api_gateway"], prices["cloudwatch"], prices["xray"]
    overhead = cw["log_event_overhead_bytes"]
    log_bytes = (
        warm.log_bytes
        + warm.log_events * overhead
        + len(warm.invocations) * (PLATFORM_LOG_BYTES + PLATFORM_LOG_EVENTS * overhead)
        + warm.samples * (run.access_log_bytes + overhead)
    )
    lines = [
        Line("API Gateway", "REST API requests (POST /warmup)", warm.samples, "requests",
             api["rest_requests_per_million"], 1e6),
        *lambda_lines(run, warm.invocations, prices),
        *api_call_lines(run, warm.calls, prices)[0],
        Line("CloudWatch Logs", "logs", log_bytes / 1e9, "GB", cw["logs_ingestion_per_gb"], 1),
        Line("X-Ray", "traces (1 per warm-up)", warm.samples, "traces", xray["traces_recorded_per_million"], 1e6),
    ]  # fmt: skip
    ratio = run.config.warm_ups_per_donation
    bill = [warm_up_line(sum(line.cost for line in lines) / warm.samples, ratio, api["source"])]
    if run.template.waf_rules:
        waf = prices["waf"]
        bill.append(warm_up_line(waf["requests_per_million"] / 1e6, ratio, waf["source"], waf=True))
    return bill


def _waf_lines(run: CostRun, prices: dict[str, Any]) -> tuple[list[Line], list[str]]:
    """WAF in front of the API (on by default): every API request inspected (the web ACL and its rules
    are fixed lines, benchmarks.cost_bill); and a note on the card-testing metrics."""
    notes = [
        "Card testing: the CardTestingRefusals series (total and 2 reasons) and CardTestingCheckFailures are "
        "custom metrics billed per hour they receive data: $0 in a month without refused attempts, at most "
        f"4 x ${prices['cloudwatch']['custom_metric_month']:.2f} a month. Cloudflare Turnstile's Free plan costs "
        "nothing; its siteverify is called only for tokens (under attack)."
    ]
    if not run.template.waf_rules:
        return [], notes
    waf = prices["waf"]
    inspected = sum(run.api_requests.values())
    return [
        Line("WAF", "requests inspected (every API request)", inspected, "requests", waf["requests_per_million"], 1e6)
    ], notes
