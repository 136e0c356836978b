"""Cost model, reporting: the priced lines as tables, per 1,000 donations, and how they move with traffic."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from benchmarks.common import table, verdict
from benchmarks.cost_bill import free_tier_savings, print_bill
from benchmarks.cost_pricing import CostModel, dynamodb_units
from benchmarks.cost_run import RECONCILER

TARGET_PER_1000 = 0.01
TARGET_FIXED = 5.00  # US$ a month without WAF and SnapStart: what a small charity can carry


def report(model: CostModel, out: TextIO | None = None) -> str:
    out = out or sys.stdout
    run, prices = model.run, model.prices
    n = run.donations
    print(
        f"\ncost model, {run.started_at}; {run.machine}\n"
        f"{n} donations ({run.config.delivery} delivery, {run.config.save_card_share:.0%} saving the card); "
        f"answers {dict(sorted(run.statuses.items()))}; {run.webhook_note}; provider latency charge "
        f"{run.config.charge_ms:.0f} / save card {run.config.save_card_ms:.0f} / mail {run.config.mail_ms:.0f} ms\n"
        f"prices: {prices['region']} on-demand, as of {prices['as_of']} (benchmarks/prices.toml), "
        f"Lambda {prices['lambda']['architecture']}\n",
        file=out,
    )
    rows = [
        [line.service, line.item, line.quantity / n, line.unit, line.cost * 1000 / n]
        for line in sorted(model.lines, key=lambda line: -line.cost)
    ]
    table(["service", "item", "per donation", "unit", "US$ per 1,000"], rows, out=out)
    print(file=out)
    total = model.per_1000
    _by_service("donations", model.by_service(), total, out)
    per_1000_renewals = _renewals(model, out)
    sensitivity(model, out)
    free = free_tier_savings(model.bill, run.template, prices)
    fixed, fixed_core = print_bill(model.bill, free, out)
    for note in model.notes:
        print(f"note: {note}", file=out)
    top = next(iter(model.by_service().items()))
    renewals = "" if per_1000_renewals is None else f", ${per_1000_renewals:.4f} per 1,000 renewals"
    summary = (
        f"cost_model: ${total:.4f} per 1,000 donations (target <= ${TARGET_PER_1000:.2f}){renewals} "
        f"largest: {top[0]} ${top[1]:.4f}; fixed ${fixed:.2f}/month, ${fixed_core:.2f} without WAF and SnapStart "
        f"(target <= ${TARGET_FIXED:.2f}); prices as of {prices['as_of']} "
        f"{verdict(total <= TARGET_PER_1000 and fixed_core <= TARGET_FIXED)}"
    )
    print("\n" + summary, file=out, flush=True)
    return summary


def _renewals(model: CostModel, out: TextIO) -> float | None:
    """The measured renewals by service, US$ per 1,000 renewals (None: the run renewed none)."""
    renewals, per_1000 = model.run.renewals, model.per_1000_renewals
    if renewals is None or per_1000 is None:
        return None
    functions = sorted({i.function for i in renewals.invocations})
    print(f"{renewals.renewals} monthly renewals, metered apart ({', '.join(functions)}):", file=out)
    _by_service("renewals", model.renewals_by_service(), per_1000, out)
    return per_1000


def _by_service(what: str, costs: dict[str, float], total: float, out: TextIO) -> None:
    """US$ per 1,000 ``what`` by service, with each service's share of ``total``."""
    rows: list[list[Any]] = [[service, cost, f"{cost / total:.0%}"] for service, cost in costs.items()]
    table(["service", f"US$ per 1,000 {what}", "share"], [*rows, ["total", total, "100%"]], out=out)
    print(file=out)


def sensitivity(model: CostModel, out: TextIO) -> None:
    """What-ifs on the measured run, each on its own: how much the figure moves."""
    run, prices = model.run, model.prices
    lam = prices["lambda"]
    per_1000 = 1000 / run.donations
    invocations = [i for i in run.invocations if i.function != RECONCILER]
    rows: list[list[Any]] = []
    extra_init = 0.0
    for function, init in run.init_ms.items():
        count = sum(1 for i in invocations if i.function == function)
        memory_gb = run.memory_mb.get(function, 0) / 1024
        extra_init += count * (1 - run.config.cold_start_share) * init / 1000 * memory_gb
    rows.append(["every invocation a cold start (INIT billed)", extra_init * lam["gb_second"] * per_1000])
    # Lambda's CPU share: at M MB a function gets M/1769 of a vCPU; this machine gave it a whole core.
    extra_gb_s = 0.0
    for i in invocations:
        own = max(0.0, i.duration_ms - i.aws_ms - i.provider_ms)
        factor = max(1.0, lam["full_vcpu_memory_mb"] / run.memory_mb[i.function])
        extra_gb_s += own * (factor - 1) / 1000 * run.memory_mb[i.function] / 1024
    rows.append(["handlers' own CPU time stretched to Lambda's CPU share", extra_gb_s * lam["gb_second"] * per_1000])
    rows.append(
        [
            "a provider key read on every invocation (5-min cache always expired; one KMS Decrypt each)",
            len(invocations) * prices["kms"]["requests_per_10k"] / 1e4 * per_1000,
        ]
    )
    api = prices["api_gateway"]
    requests = sum(run.api_requests.values())
    rows.append(
        [
            "HTTP API instead of REST API",
            requests * (api["http_requests_per_million"] - api["rest_requests_per_million"]) / 1e6 * per_1000,
        ]
    )
    _, gsi, _, _ = dynamodb_units(run, [c for c in run.calls if c.scope and c.scope != RECONCILER])
    rows.append(
        [
            f"no global secondary index writes ({len(gsi)} indexes written to)",
            -sum(gsi.values()) * prices["dynamodb"]["write_request_units_per_million"] / 1e6 * per_1000,
        ]
    )
    rows.append(["no X-Ray tracing", -run.donations * prices["xray"]["traces_recorded_per_million"] / 1e6 * per_1000])
    print(file=out)
    table(["what if (each alone)", "US$ per 1,000, change"], rows, out=out)
