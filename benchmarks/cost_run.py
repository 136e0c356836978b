"""Cost model, the run: N donations through the in-process pipeline, metered (see benchmarks.cost_model)."""

from __future__ import annotations

import functools
import json
import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from benchmarks.common import AwsCall, AwsCallRecorder, benchmark_process, machine, median, quiet_functions
from benchmarks.cost_metering import CapturingSink, DynamoSnapshots, IndexSpec, Invocation, Meter, WebhookFront
from benchmarks.cost_template import TemplateFacts, template_facts

ROOT = Path(__file__).resolve().parent.parent
PRICES = Path(__file__).with_name("prices.toml")
SECONDS_PER_MONTH = 30 * 24 * 3600
RECONCILER = "ReconcilerFunction"
SCHEDULE_RENEWALS = "ScheduleRenewalsFunction"
# Form warm-ups (POST /warmup, sent on the donor's first focus) per donation. Of the donors who start a
# donation form, 12 % finish by the bleakest estimate, 18 % most often, 30 % at best ("How To Improve
# Your Donation Flow Conversion Rate", GiveGab, info.givegab.com/blog/how-to-improve-donation-flow-
# conversion-rate/; Truesense puts abandonment once the giving process starts at 50-70 %): 1 / 0.12 is
# 8.3 starts per donation, rounded up to 10. A form view without a focus sends none.
WARM_UPS_PER_DONATION = 10.0


@dataclass
class CostConfig:
    donations: int = 200
    delivery: str = "per-donation"
    save_card_share: float = 1.0
    charge_ms: float = 300.0
    save_card_ms: float = 250.0
    mail_ms: float = 200.0
    cold_start_share: float = 0.10
    init_ms: dict[str, float] | None = None
    """Handler import (INIT) time per function; None measures it in fresh interpreters."""
    init_repeats: int = 3
    prices_path: Path = PRICES
    parameters: dict[str, str] = field(default_factory=dict)
    """Template parameters to price the fixed lines with (e.g. SnapStart=true); the run uses the defaults."""
    warm_ups_per_donation: float = WARM_UPS_PER_DONATION
    warm_up_samples: int = 20
    """Warm-ups sent after the donations, metered apart, to price one (docs/warm-up.md)."""
    renewals: int = 20
    """Monthly pledges renewed through the schedule and renew functions, metered apart, to price one."""


@dataclass
class WarmUpRun:
    """The form's warm-ups, metered apart from the donations: priced per warm-up, x the ratio x donations."""

    samples: int
    invocations: list[Invocation]
    calls: list[AwsCall]
    log_bytes: int
    log_events: int


@dataclass
class _Window:
    """How far the run's records had got at one moment (calls, invocations, log output, API requests, metrics)."""

    calls: int
    invocations: int
    log_bytes: int
    log_events: int
    api_requests: dict[str, int]
    metrics: dict[tuple[str, str, str], int]


@dataclass
class RenewalRun:
    """Monthly renewals, metered apart: one schedule run finding ``renewals`` due pledges, their renew
    invocations, receipts and Stripe's webhook events (priced per renewal); and one schedule run finding
    none, as most of its 720 hourly runs a month do (priced per run, a fixed cost)."""

    renewals: int
    invocations: list[Invocation]
    calls: list[AwsCall]
    log_bytes: int
    log_events: int
    api_requests: dict[str, int]
    empty_run: list[Invocation]
    empty_run_calls: list[AwsCall]
    empty_run_log_bytes: int
    empty_run_metrics: list[str]
    """The custom metrics (EMF) the run finding nothing sent: every hourly run sends them."""


@dataclass
class CostRun:
    config: CostConfig
    donations: int
    invocations: list[Invocation]
    calls: list[AwsCall]
    api_requests: dict[str, int]
    """Route ("POST /donations") -> requests."""
    memory_mb: dict[str, int]
    log_bytes: int
    log_events: int
    emf_metrics: dict[tuple[str, str, str], int]
    """(namespace, metric, dimensions) -> EMF documents that carried it during the run."""
    indexes: dict[str, list[IndexSpec]]
    table_keys: dict[str, frozenset[str]]
    table_labels: dict[str, str]
    access_log_bytes: int
    init_ms: dict[str, float]
    template: TemplateFacts
    """The template's billable resources for the priced parameters (benchmarks.cost_template)."""
    reconciler_log_bytes: int
    statuses: dict[int, int]
    webhook_note: str
    machine: str
    started_at: str
    warm_ups: WarmUpRun | None = None
    renewals: RenewalRun | None = None


def _donation(index: int, save_card: bool) -> dict[str, Any]:
    return {
        "amount": 2500,
        "currency": "usd",
        "email": f"donor{index}@example.org",
        "name": "Ada Lovelace",
        "payment_method": "pm_card_visa",
        "save_card": save_card,
    }


def run(config: CostConfig, out: TextIO | None = None) -> CostRun:
    out = out or sys.stdout
    init_ms = config.init_ms
    if init_ms is None:
        init_ms = measure_init(config.init_repeats, out)
    with benchmark_process():
        return _run(config, init_ms, out)


def measure_init(repeats: int, out: TextIO) -> dict[str, float]:
    """Median handler import time per function, in fresh interpreters with tracing on (cold_start.py)."""
    import tempfile

    from benchmarks.cold_start import functions_from_template, sample, variants

    setups = functions_from_template()
    found, _ = variants(setups)
    handlers = [v for v in found if not v.bare]
    print(f"measuring INIT (handler import, tracing on) in {repeats} fresh interpreters per function...", file=out)
    measured: dict[str, list[float]] = {v.function: [] for v in handlers}
    with tempfile.TemporaryDirectory(prefix="cost-init-") as cwd:
        for variant in handlers:
            sample(variant, setups[variant.function], cwd)  # warm the byte-code caches
        for _ in range(repeats):
            for variant in handlers:
                measured[variant.function].append(sample(variant, setups[variant.function], cwd)[0])
    return {function: median(values) for function, values in measured.items()}


@dataclass
class _Traffic:
    """What one run sends through the pipeline, and what it counts on the way."""

    config: CostConfig
    pipeline: Any
    meter: Meter
    sources: list[Any]
    out: TextIO
    sink: CapturingSink = field(default_factory=CapturingSink)
    statuses: dict[int, int] = field(default_factory=dict)
    api_requests: dict[str, int] = field(default_factory=dict)
    webhook_note: str = "no webhook route in template.yaml"
    reconciler_log_bytes: int = 0
    warm_ups: WarmUpRun | None = None
    renewals: RenewalRun | None = None
    set_aside: list[tuple[_Window, _Window]] = field(default_factory=list)
    """Phases metered apart from the donations (pledging, renewals): (start, end) of each."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, route: str) -> None:
        with self._lock:
            self.api_requests[route] = self.api_requests.get(route, 0) + 1

    def deliver(self, name: str) -> int:
        from simulator.local.delivery import deliver_batch

        with self.meter.recorder.scope(f"esm:{name}"):
            source = next(s for s in self.sources if s.name == name)
            return deliver_batch(self.pipeline.clients("sqs"), source).received

    def drain(self) -> None:
        for _ in range(10 * self.config.donations + 10):  # bounded
            if not sum(self.deliver(source.name) for source in self.sources):
                return

    def donate(self) -> None:
        """POST each donation as API Gateway would; deliver its follow-ups after it, or all at the end."""
        config, run_id = self.config, uuid.uuid4().hex[:8]
        post = next(r for r in self.pipeline.routes if r.method == "POST" and r.path == "/donations")
        saving = round(config.donations * config.save_card_share)
        when = "after each donation" if config.delivery == "per-donation" else "in batches at the end"
        print(
            f"{config.donations} donations ({saving} saving the card), follow-ups delivered {when}",
            file=self.out,
            flush=True,
        )
        for index in range(config.donations):
            body = json.dumps(_donation(index, index < saving))
            headers = {
                "Content-Type": "application/json",
                "Idempotency-Key": f"cost-{run_id}-{index:06d}",
                # Each donation another donor, from another address (card-testing counters as for most donors).
                "X-Local-Source-Ip": f"10.{index // 65_536 % 256}.{index // 256 % 256}.{index % 256}",
            }
            self.count(f"{post.method} {post.path}")
            call = functools.partial(self.pipeline.call_api, "POST", "/donations", body=body, headers=headers)
            answer = self.meter.measure(post.function_logical_id, call)
            self.statuses[answer.status] = self.statuses.get(answer.status, 0) + 1
            if config.delivery == "per-donation":
                for source in self.sources:
                    self.deliver(source.name)
            if (index + 1) % 50 == 0:
                print(f"  {index + 1}/{config.donations} donations", file=self.out, flush=True)
        self.drain()

    def warm_up(self) -> None:
        """The form's warm-ups (POST /warmup) as a browser sends them, metered apart (a meter of their own,
        their calls and log bytes set aside); last, so nothing else runs meanwhile."""
        from donations.api import WARMUP_PATH

        route = next((r for r in self.pipeline.routes if r.path == WARMUP_PATH), None)
        if route is None or self.config.warm_up_samples < 1:
            return
        meter, recorder = Meter(self.meter.recorder), self.meter.recorder
        mark, log_bytes, log_events = len(recorder.calls), self.sink.bytes, self.sink.lines
        for index in range(self.config.warm_up_samples):
            headers = {"Origin": "https://donate.example.org", "X-Local-Source-Ip": f"10.255.0.{index % 250 + 1}"}
            call = functools.partial(self.pipeline.call_api, "POST", WARMUP_PATH, headers=headers)
            meter.measure(route.function_logical_id, call)
        self.warm_ups = WarmUpRun(
            self.config.warm_up_samples,
            meter.invocations,
            list(recorder.calls[mark:]),
            self.sink.bytes - log_bytes,
            self.sink.lines - log_events,
        )

    def mark(self) -> _Window:
        return _Window(
            len(self.meter.recorder.calls),
            len(self.meter.invocations),
            self.sink.bytes,
            self.sink.lines,
            dict(self.api_requests),
            dict(self.sink.metrics),
        )

    def pledge(self) -> None:
        """The monthly gifts whose pledges the renewals charge: POST /donations with ``monthly`` (due on the
        1st of next month), their follow-ups delivered; set apart from the donations. Run before Stripe's
        webhooks are pointed at the front, so their events are not sent."""
        if self.config.renewals < 1 or SCHEDULE_RENEWALS not in self.pipeline.stack.functions:
            return
        start, run_id = self.mark(), uuid.uuid4().hex[:8]
        for index in range(self.config.renewals):
            body = json.dumps({**_donation(index, True), "monthly": True, "day_of_month": 1})
            headers = {
                "Content-Type": "application/json",
                "Idempotency-Key": f"cost-pledge-{run_id}-{index:06d}",
                "X-Local-Source-Ip": f"10.254.{index // 256 % 256}.{index % 256}",
            }
            self.meter.measure(
                "ChargeFunction",
                functools.partial(self.pipeline.call_api, "POST", "/donations", body=body, headers=headers),
            )
        self.drain()
        self.set_aside.append((start, self.mark()))

    def renew(self, stripe: Any) -> None:
        """One schedule run on the pledges' due day, the renewals and receipts it leads to and Stripe's
        events for them; then one more run, which finds nothing due. Each metered apart."""
        from datetime import UTC, datetime

        from donations.pledges import first_charge_on

        if self.config.renewals < 1 or SCHEDULE_RENEWALS not in self.pipeline.stack.functions:
            return
        due = first_charge_on(1, datetime.now(UTC).date())
        at = datetime.combine(due, datetime.min.time(), UTC).replace(hour=6)
        start = self.mark()
        answer = self._schedule(at)
        self.drain()
        if self.webhook_note != "no webhook route in template.yaml":
            _wait_for_webhooks(stripe, self.out)
            self.drain()
        end = self.mark()
        self.set_aside.append((start, end))
        print(f"  {self.config.renewals} pledges renewed on {due:%Y-%m-%d}: {answer}", file=self.out, flush=True)
        empty = Meter(self.meter.recorder)
        calls = len(self.meter.recorder.calls)
        empty.measure(SCHEDULE_RENEWALS, lambda: self._invoke_schedule(at.replace(hour=7)))
        after = self.mark()
        self.set_aside.append((end, after))
        self.renewals = RenewalRun(
            renewals=self.config.renewals,
            invocations=self.meter.invocations[start.invocations : end.invocations],
            calls=self.meter.recorder.calls[start.calls : end.calls],
            log_bytes=end.log_bytes - start.log_bytes,
            log_events=end.log_events - start.log_events,
            api_requests={k: v - start.api_requests.get(k, 0) for k, v in end.api_requests.items()},
            empty_run=empty.invocations,
            empty_run_calls=self.meter.recorder.calls[calls:],
            empty_run_log_bytes=after.log_bytes - end.log_bytes,
            empty_run_metrics=sorted(name for _, name, _ in _grown(end.metrics, after.metrics)),
        )

    def _schedule(self, at: Any) -> Any:
        return self.meter.measure(SCHEDULE_RENEWALS, lambda: self._invoke_schedule(at))

    def _invoke_schedule(self, at: Any) -> Any:
        from simulator.local.events import scheduled_event

        return self.pipeline.invoke(
            SCHEDULE_RENEWALS, scheduled_event("arn:aws:events:us-east-1:123456789012:rule/renewals", at=at)
        )

    def run_reconciler(self) -> None:
        """One scheduled reconciler run, metered apart (it is priced per month, not per donation)."""
        from simulator.local.events import scheduled_event

        if RECONCILER not in self.pipeline.stack.functions:
            return
        before = self.sink.bytes
        rule = self.pipeline.stack.physical_ids.get(f"{RECONCILER}ReconcileSchedule", "reconcile-schedule")
        event = scheduled_event(f"arn:aws:events:us-east-1:123456789012:rule/{rule}")
        self.meter.measure(RECONCILER, lambda: self.pipeline.invoke(RECONCILER, event))
        self.reconciler_log_bytes = self.sink.bytes - before


def _grown(before: dict[Any, int], after: dict[Any, int]) -> dict[Any, int]:
    """The counts that grew from ``before`` to ``after``, by how much."""
    return {key: count - before.get(key, 0) for key, count in after.items() if count > before.get(key, 0)}


@dataclass(frozen=True)
class _StackFacts:
    indexes: dict[str, list[IndexSpec]]
    table_keys: dict[str, frozenset[str]]
    table_labels: dict[str, str]
    memory_mb: dict[str, int]

    @classmethod
    def read(cls, pipeline: Any) -> _StackFacts:
        indexes, table_keys = _table_indexes(pipeline)
        labels = {name: logical_id for logical_id, name in pipeline.stack.tables.items()}
        memory = {lid: spec.memory_size for lid, spec in pipeline.stack.functions.items()}
        return cls(indexes, table_keys, labels, memory)


def _run(config: CostConfig, init_ms: dict[str, float], out: TextIO) -> CostRun:
    from moto import mock_aws

    from benchmarks.donor_latency import LatencyConfig, inject_provider_latency
    from simulator.emulators.sendgrid_emulator import SendGridEmulator
    from simulator.emulators.stripe import StripeEmulator
    from simulator.local.pipeline import Pipeline, ProviderEndpoints

    started_at = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    snapshots = DynamoSnapshots()
    recorder = AwsCallRecorder(on_before=snapshots.before, on_after=snapshots.after).install()
    stripe, sendgrid = StripeEmulator().start(), SendGridEmulator().start()
    meter = Meter(recorder)
    webhook_front: WebhookFront | None = None
    try:
        latency = LatencyConfig(charge_ms=config.charge_ms, save_card_ms=config.save_card_ms, mail_ms=config.mail_ms)
        inject_provider_latency(stripe, sendgrid, latency)
        providers = ProviderEndpoints(stripe_api_base=stripe.url, sendgrid_api_host=sendgrid.url)
        with mock_aws():
            pipeline = Pipeline(providers, stack_name="donations-cost").start()
            meter.wrap_providers()
            traffic = _Traffic(config, pipeline, meter, _metered_sources(pipeline, meter), out)
            with quiet_functions(traffic.sink):
                traffic.pledge()  # before the webhook front: Stripe sends no events for the pledges' gifts
            webhook_front = _webhook_front(traffic, stripe, providers.stripe_webhook_secret)
            with quiet_functions(traffic.sink):
                traffic.donate()
                if webhook_front is not None:
                    traffic.webhook_note = _wait_for_webhooks(stripe, out)
                    traffic.drain()
                traffic.run_reconciler()
                traffic.renew(stripe)
                traffic.warm_up()
            facts = _StackFacts.read(pipeline)
        meter.restore()
    finally:
        if webhook_front is not None:
            webhook_front.stop()
        recorder.uninstall()
        stripe.stop()
        sendgrid.stop()
    return _cost_run(traffic, facts, init_ms, started_at)


def _metered_sources(pipeline: Any, meter: Meter) -> list[Any]:
    """The SQS event sources, each invocation metered. Lambda's pollers long-poll; the local runner's
    50 ms re-polls inside the batching window are not what Lambda bills, so no window here."""
    from simulator.local.delivery import EventSource

    sources = []
    for source in pipeline.event_sources():

        def handler(event: dict[str, Any], context: Any, __source: EventSource = source) -> Any:
            records = len(event.get("Records", []))
            return meter.measure(__source.name, lambda: __source.handler(event, context), records)

        sources.append(EventSource(**{**source.__dict__, "handler": handler, "batching_window_seconds": 0.0}))
    return sources


def _webhook_front(traffic: _Traffic, stripe: Any, secret: str) -> WebhookFront | None:
    """Stripe's events posted to the webhook route, as Stripe would to API Gateway (None: no such route)."""
    route = next((r for r in traffic.pipeline.routes if r.path.startswith("/webhooks/stripe")), None)
    if route is None:
        return None
    from donations.webhooks import HANDLED_EVENT_TYPES

    front = WebhookFront(traffic.pipeline, traffic.meter, traffic.count)
    stripe.configure_webhooks(f"{front.url}{route.path}", secret, enabled_events=HANDLED_EVENT_TYPES)
    return front


def _cost_run(traffic: _Traffic, facts: _StackFacts, init_ms: dict[str, float], started_at: str) -> CostRun:
    from infra.deploy import load_template

    template = load_template(ROOT / "template.yaml")
    sink, config, warm_ups = traffic.sink, traffic.config, traffic.warm_ups
    calls = list(traffic.meter.recorder.calls)
    if warm_ups is not None:  # priced apart (cost_pricing.warm_up_line)
        calls = calls[: len(calls) - len(warm_ups.calls)]
    invocations = list(traffic.meter.invocations)
    api_requests = dict(traffic.api_requests)
    log_bytes = sink.bytes - traffic.reconciler_log_bytes - (warm_ups.log_bytes if warm_ups else 0)
    log_events = sink.lines - (warm_ups.log_events if warm_ups else 0)
    metrics = dict(sink.metrics)
    for start, end in reversed(traffic.set_aside):  # pledging and renewals: priced apart (cost_pricing)
        for key, count in _grown(start.metrics, end.metrics).items():
            metrics[key] -= count
        del calls[start.calls : end.calls]
        del invocations[start.invocations : end.invocations]
        log_bytes -= end.log_bytes - start.log_bytes
        log_events -= end.log_events - start.log_events
        for route, count in end.api_requests.items():
            api_requests[route] -= count - start.api_requests.get(route, 0)
    return CostRun(
        config=config,
        donations=config.donations,
        invocations=invocations,
        calls=calls,
        api_requests={route: count for route, count in api_requests.items() if count},
        memory_mb=facts.memory_mb,
        log_bytes=log_bytes,
        log_events=log_events,
        emf_metrics={key: count for key, count in metrics.items() if count > 0},
        indexes=facts.indexes,
        table_keys=facts.table_keys,
        table_labels=facts.table_labels,
        access_log_bytes=_access_log_line_bytes(template),
        init_ms=init_ms,
        template=template_facts(template, config.parameters),
        reconciler_log_bytes=traffic.reconciler_log_bytes,
        statuses=traffic.statuses,
        webhook_note=traffic.webhook_note,
        machine=machine(),
        started_at=started_at,
        warm_ups=warm_ups,
        renewals=traffic.renewals,
    )


def _wait_for_webhooks(stripe: Any, out: TextIO) -> str:
    """Let the emulator deliver every event it queued (bounded); say what became of them."""
    deadline = time.monotonic() + 60
    statuses: dict[str, str] = {}
    while time.monotonic() < deadline:
        statuses = stripe.webhooks.snapshot()["event_status"]
        if all(status != "pending" for status in statuses.values()):
            break
        time.sleep(0.2)
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    text = "webhook events " + ", ".join(f"{status} {count}" for status, count in sorted(counts.items()))
    print(f"  {text}", file=out, flush=True)
    return text


def _table_indexes(pipeline: Any) -> tuple[dict[str, list[IndexSpec]], dict[str, frozenset[str]]]:
    dynamodb = pipeline.clients("dynamodb")
    indexes: dict[str, list[IndexSpec]] = {}
    keys: dict[str, frozenset[str]] = {}
    for name in pipeline.stack.tables.values():
        description = dynamodb.describe_table(TableName=name)["Table"]
        keys[name] = frozenset(k["AttributeName"] for k in description["KeySchema"])
        indexes[name] = [
            IndexSpec(
                index["IndexName"],
                frozenset(k["AttributeName"] for k in index["KeySchema"]),
                index.get("Projection", {}).get("ProjectionType", "ALL"),
                frozenset(index.get("Projection", {}).get("NonKeyAttributes", [])),
            )
            for index in description.get("GlobalSecondaryIndexes", [])
        ]
    return indexes, keys


def _access_log_line_bytes(template: dict[str, Any]) -> int:
    """One API Gateway access log line: the template's format with 24-character values."""
    for resource in template["Resources"].values():
        setting = resource.get("Properties", {}).get("AccessLogSetting")
        if isinstance(setting, dict) and isinstance(setting.get("Format"), str):
            return len(re.sub(r"\$context\.[A-Za-z.]+", "x" * 24, setting["Format"]).encode())
    return 0
