"""Cost model: what N donations cost on AWS, from the requests actually made, priced per 1,000 donations.

N donations go through the in-process pipeline (template.yaml deployed into ``moto.mock_aws``, the
real handlers, the Stripe and SendGrid emulators with the same provider latencies as the donor
latency benchmark, so the functions' billed durations include their waits on Stripe and SendGrid).
The Stripe emulator posts its webhook events (the types the webhook function handles) to a local
HTTP front, as Stripe would to API Gateway. After each donation the follow-up messages are
delivered as Lambda's event source mapping would at low traffic (one message per invocation);
``--delivery batched`` drains them at the end in batches of the template's BatchSize instead. One
scheduled reconciler run is measured at the end and priced per month (a fixed cost).

What is counted, and how:

* AWS API requests: every call of every botocore client (hooks in botocore's BUILTIN_HANDLERS, which
  the handlers' fresh ``boto3.session.Session()`` objects pick up), attributed to the function or to
  the event source mapping that made it.
* Lambda: invocations, and GB-seconds = each invocation's measured duration rounded up to 1 ms x the
  template's MemorySize. INIT (cold start) time is billed too: the handler import time measured in
  fresh interpreters (as in cold_start.py) x an assumed share of cold invocations.
* API Gateway REST: one request per POST /donations and per webhook delivery.
* SQS: requests, each 64 KB chunk of a request counted as one; empty receives of the local runner
  are not per-donation costs (Lambda's pollers long-poll; their idle cost is a fixed monthly one).
* DynamoDB on-demand: moto does not report ConsumedCapacity, so units are computed from the item
  as it was just before and just after each call (read from moto's in-process backend, not through
  the API): a write costs ceil(max(old, new size) / 1 KB) WRU, failed conditional writes included;
  each global secondary index costs what DynamoDB charges for it: an index write when the item
  enters or leaves the index or a projected attribute changes, two when an index key changes
  (delete + put), sized by the projection; a read costs ceil(size / 4 KB) RRU, halved when
  eventually consistent (queries: by the bytes returned).
* Secrets Manager: GetSecretValue calls made (Powertools caches for 5 minutes per environment).
* CloudWatch Logs: the bytes the handlers write (JSON logs, EMF metric documents) + 26 bytes per
  event, plus estimated Lambda platform lines and API Gateway access log lines.
* X-Ray: one trace per donation (active tracing; the trace id travels with the SQS messages).

    python -m benchmarks.cost_model [--donations 200] [--delivery per-donation|batched]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import re
import sys
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from benchmarks.common import (
    CURRENT_INVOCATION,
    AwsCall,
    AwsCallRecorder,
    NullSink,
    benchmark_process,
    free_port,
    machine,
    median,
    quiet_functions,
    table,
    verdict,
)

ROOT = Path(__file__).resolve().parent.parent
PRICES = Path(__file__).with_name("prices.toml")
TARGET_PER_1000 = 0.01
# Lambda writes START, END and REPORT lines per invocation (REPORT with Init Duration on cold
# starts and the X-Ray ids when tracing is active): about 75 + 55 + 260 bytes.
PLATFORM_LOG_BYTES = 390
PLATFORM_LOG_EVENTS = 3
# An SQS event source mapping long-polls with five connections while the queue is idle (20 s each).
IDLE_POLLERS = 5
LONG_POLL_SECONDS = 20
SECONDS_PER_MONTH = 30 * 24 * 3600
RECONCILER = "ReconcilerFunction"


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


@dataclass
class Invocation:
    function: str
    duration_ms: float
    messages: int = 0
    aws_ms: float = 0.0
    provider_ms: float = 0.0


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
    emf_metrics: set[tuple[str, str, str]]
    indexes: dict[str, list[IndexSpec]]
    table_keys: dict[str, frozenset[str]]
    table_labels: dict[str, str]
    access_log_bytes: int
    init_ms: dict[str, float]
    alarms: int
    dashboards: int
    secrets: int
    event_source_queues: int
    reconciler_runs_per_month: float
    reconciler_log_bytes: int
    statuses: dict[int, int]
    webhook_note: str
    machine: str
    started_at: str


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
    fixed: list[Line] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

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


# --------------------------------------------------------------------------- DynamoDB item snapshots

DYNAMODB_ITEM_OPERATIONS = ("GetItem", "PutItem", "UpdateItem", "DeleteItem")


class DynamoSnapshots:
    """Before and after each item call, the item as moto holds it (typed JSON and size in bytes).

    Read from moto's in-process backend, never through the API, so nothing is added to the count.
    """

    def __init__(self, region: str = "us-east-1", account: str = "123456789012") -> None:
        self.region = region
        self.account = account

    def _snapshot(self, call: AwsCall) -> dict[str, Any] | None:
        from moto.dynamodb.models import dynamodb_backends

        body = call.body or {}
        backend = dynamodb_backends[self.account][self.region]
        try:
            table = backend.get_table(body["TableName"])
            if call.operation == "PutItem":
                names = [table.hash_key_attr, table.range_key_attr]
                key = {name: body["Item"][name] for name in names if name}
            else:
                key = body["Key"]
            item = backend.get_item(body["TableName"], key)
        except Exception:  # an unknown table or a malformed call: moto answers it with an error anyway
            return None
        if item is None:
            return None
        return {"attributes": item.to_json()["Attributes"], "size": item.size()}

    def before(self, call: AwsCall) -> None:
        if call.service == "dynamodb" and call.operation in DYNAMODB_ITEM_OPERATIONS:
            call.extra["old"] = self._snapshot(call)

    def after(self, call: AwsCall, parsed: Any) -> None:
        if call.service != "dynamodb":
            return
        if call.operation in DYNAMODB_ITEM_OPERATIONS:
            call.extra["new"] = self._snapshot(call)
        elif call.operation in ("Query", "Scan") and isinstance(parsed, dict):
            call.extra["read_bytes"] = len(json.dumps(parsed.get("Items", []), default=str))


@dataclass(frozen=True)
class IndexSpec:
    name: str
    keys: frozenset[str]
    projection: str  # ALL, KEYS_ONLY, INCLUDE
    included: frozenset[str]


def _index_entry(
    snapshot: dict[str, Any] | None, index: IndexSpec, table_keys: frozenset[str]
) -> dict[str, Any] | None:
    """The item's entry in a (sparse) index, or None when it is not in it."""
    if snapshot is None:
        return None
    attributes = snapshot["attributes"]
    if not index.keys <= set(attributes):
        return None
    if index.projection == "ALL":
        return dict(attributes)
    keep = index.keys | table_keys | (index.included if index.projection == "INCLUDE" else frozenset())
    return {name: value for name, value in attributes.items() if name in keep}


def _entry_size(entry: dict[str, Any] | None) -> int:
    if not entry:
        return 0
    return sum(len(name.encode()) + len(json.dumps(value).encode()) for name, value in entry.items())


def index_write_units(old: Any, new: Any, index: IndexSpec, table_keys: frozenset[str]) -> int:
    """What one base-table write costs in one GSI (DynamoDB's rules for index writes)."""
    before, after = _index_entry(old, index, table_keys), _index_entry(new, index, table_keys)
    if before is None and after is None:
        return 0
    units = max(1, math.ceil(max(_entry_size(before), _entry_size(after)) / 1024))
    if before is None or after is None:
        return units  # enters or leaves the index: one put or one delete
    if any(before.get(k) != after.get(k) for k in index.keys):
        return 2 * units  # an index key changed: delete the old entry, put the new one
    return units if before != after else 0


# --------------------------------------------------------------------------- the run


@dataclass
class _Waits:
    """One invocation's time in provider calls (ms), whichever of its threads made them."""

    provider_ms: float = 0.0


class Meter:
    """Per-invocation timing: the invocation's duration, and its time in AWS and provider calls.

    Thread-safe: the webhook front invokes its function in its own thread while donations go on.
    """

    def __init__(self, recorder: AwsCallRecorder) -> None:
        self.recorder = recorder
        self.invocations: list[Invocation] = []
        self._lock = threading.Lock()
        self._restore: list[Callable[[], None]] = []

    def measure(self, function: str, call: Callable[[], Any], messages: int = 0) -> Any:
        """Time one invocation. Its AWS and provider calls are found by context (CURRENT_INVOCATION), so
        those its worker threads make count too; overlapping calls may sum to more than the duration."""
        invocation = _Waits()
        token = CURRENT_INVOCATION.set(invocation)
        started = time.perf_counter()
        with self.recorder.scope(function):
            mark = len(self.recorder.calls)
            try:
                return call()
            finally:
                duration = (time.perf_counter() - started) * 1000
                CURRENT_INVOCATION.reset(token)
                mine = [c for c in self.recorder.calls[mark:] if c.invocation is invocation]
                aws = sum(c.ms for c in mine if c.ms == c.ms)
                with self._lock:
                    self.invocations.append(Invocation(function, duration, messages, aws, invocation.provider_ms))

    def wrap_providers(self) -> None:
        from donations.mail import ReceiptMailer
        from donations.payments import StripePayments

        for owner, name in ((StripePayments, "charge"), (StripePayments, "save_card"), (ReceiptMailer, "send")):
            inner = getattr(owner, name)

            def timed(*args: Any, __inner: Any = inner, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return __inner(*args, **kwargs)
                finally:
                    spent = (time.perf_counter() - started) * 1000
                    waits = CURRENT_INVOCATION.get()
                    if isinstance(waits, _Waits):
                        with self._lock:
                            waits.provider_ms += spent

            setattr(owner, name, timed)
            self._restore.append(functools.partial(setattr, owner, name, inner))

    def restore(self) -> None:
        while self._restore:
            self._restore.pop()()


class CapturingSink(NullSink):
    """Counts the functions' output (bytes, log events) and collects the EMF metric identities."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: set[tuple[str, str, str]] = set()
        self._pending: dict[int, str] = {}

    def write(self, text: str) -> int:
        super().write(text)
        key = threading.get_ident()
        with self._lock:
            buffered = self._pending.pop(key, "") + text
            *lines, rest = buffered.split("\n")
            if rest:
                self._pending[key] = rest
        for line in lines:
            if line.startswith("{") and '"_aws"' in line:
                self._collect(line)
        return len(text)

    def _collect(self, line: str) -> None:
        try:
            document = json.loads(line)
        except ValueError:
            return
        for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
            for dimensions in directive.get("Dimensions", [[]]):
                labels = ",".join(f"{name}={document.get(name)}" for name in dimensions)
                for metric in directive.get("Metrics", []):
                    with self._lock:
                        self.metrics.add((directive.get("Namespace", ""), metric["Name"], labels))


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


class WebhookFront:
    """API Gateway for the webhook route: the Stripe emulator posts its events here."""

    def __init__(self, pipeline: Any, meter: Meter, count: Callable[[str], None]) -> None:
        from infra.local.front import Front

        self.pipeline = pipeline
        self.meter = meter
        self.count = count
        self.front = Front(free_port(), self._api, lambda *_: (404, {"message": "Not Found"}))
        self.thread = threading.Thread(target=self.front.serve_forever, name="cost-webhook-front", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.front.server_address[1]}"

    def _api(
        self, method: str, path: str, query: str, body: bytes | None, headers: list[tuple[str, str]]
    ) -> tuple[int, dict[str, str], str]:
        route = next((r for r in self.pipeline.routes if r.match(method, path) is not None), None)
        if route is None:
            return 404, {}, "{}"
        self.count(f"{route.method} {route.path}")
        answer = self.meter.measure(
            route.function_logical_id,
            lambda: self.pipeline.call_api(method, path, body=body, headers=headers, query=query),
        )
        return answer.status, answer.headers, answer.text

    def stop(self) -> None:
        self.front.shutdown()
        self.front.server_close()
        self.thread.join(timeout=5)


def _run(config: CostConfig, init_ms: dict[str, float], out: TextIO) -> CostRun:
    from moto import mock_aws

    from benchmarks.donor_latency import LatencyConfig, inject_provider_latency
    from infra.emulators.sendgrid_emulator import SendGridEmulator
    from infra.emulators.stripe import StripeEmulator
    from infra.local.delivery import EventSource, deliver_batch
    from infra.local.events import scheduled_event
    from infra.local.pipeline import Pipeline, ProviderEndpoints

    started_at = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    snapshots = DynamoSnapshots()
    recorder = AwsCallRecorder(on_before=snapshots.before, on_after=snapshots.after).install()
    stripe, sendgrid = StripeEmulator().start(), SendGridEmulator().start()
    meter = Meter(recorder)
    sink = CapturingSink()
    statuses: dict[int, int] = {}
    api_requests: dict[str, int] = {}
    api_lock = threading.Lock()
    webhook_front: WebhookFront | None = None
    webhook_note = "no webhook route in template.yaml"
    reconciler_log_bytes = 0

    def count(route: str) -> None:
        with api_lock:
            api_requests[route] = api_requests.get(route, 0) + 1

    try:
        latency = LatencyConfig(charge_ms=config.charge_ms, save_card_ms=config.save_card_ms, mail_ms=config.mail_ms)
        inject_provider_latency(stripe, sendgrid, latency)
        providers = ProviderEndpoints(stripe_api_base=stripe.url, sendgrid_api_host=sendgrid.url)
        with mock_aws():
            pipeline = Pipeline(providers, stack_name="donations-cost").start()
            meter.wrap_providers()
            sqs = pipeline.clients("sqs")
            sources = []
            for source in pipeline.event_sources():
                # Lambda's pollers long-poll; the local runner's 50 ms re-polls inside the batching
                # window are not what Lambda bills, so deliver without the window here.
                def handler(event: dict[str, Any], context: Any, __source: EventSource = source) -> Any:
                    records = len(event.get("Records", []))
                    return meter.measure(__source.name, lambda: __source.handler(event, context), records)

                sources.append(EventSource(**{**source.__dict__, "handler": handler, "batching_window_seconds": 0.0}))
            post = next(r for r in pipeline.routes if r.method == "POST" and r.path == "/donations")
            webhook_route = next((r for r in pipeline.routes if r.path.startswith("/webhooks/stripe")), None)
            if webhook_route is not None:
                from donations.webhooks import HANDLED_EVENT_TYPES

                webhook_front = WebhookFront(pipeline, meter, count)
                stripe.configure_webhooks(
                    f"{webhook_front.url}{webhook_route.path}",
                    providers.stripe_webhook_secret,
                    enabled_events=HANDLED_EVENT_TYPES,
                )
            run_id = uuid.uuid4().hex[:8]
            saving = round(config.donations * config.save_card_share)
            print(
                f"{config.donations} donations ({saving} saving the card), follow-ups delivered "
                f"{'after each donation' if config.delivery == 'per-donation' else 'in batches at the end'}",
                file=out,
                flush=True,
            )

            def deliver(name: str) -> int:
                with recorder.scope(f"esm:{name}"):
                    return deliver_batch(sqs, next(s for s in sources if s.name == name)).received

            def drain() -> None:
                for _ in range(10 * config.donations + 10):  # bounded
                    if not sum(deliver(source.name) for source in sources):
                        return

            with quiet_functions(sink):
                for index in range(config.donations):
                    body = json.dumps(_donation(index, index < saving))
                    headers = {"Content-Type": "application/json", "Idempotency-Key": f"cost-{run_id}-{index}"}
                    count(f"{post.method} {post.path}")
                    answer = meter.measure(
                        post.function_logical_id,
                        functools.partial(pipeline.call_api, "POST", "/donations", body=body, headers=headers),
                    )
                    statuses[answer.status] = statuses.get(answer.status, 0) + 1
                    if config.delivery == "per-donation":
                        for source in sources:
                            deliver(source.name)
                    if (index + 1) % 50 == 0:
                        print(f"  {index + 1}/{config.donations} donations", file=out, flush=True)
                drain()
                if webhook_front is not None:
                    webhook_note = _wait_for_webhooks(stripe, out)
                    drain()
                if RECONCILER in pipeline.stack.functions:
                    before = sink.bytes
                    rule = pipeline.stack.physical_ids.get(f"{RECONCILER}ReconcileSchedule", "reconcile-schedule")
                    event = scheduled_event(f"arn:aws:events:us-east-1:123456789012:rule/{rule}")
                    meter.measure(RECONCILER, lambda: pipeline.invoke(RECONCILER, event))
                    reconciler_log_bytes = sink.bytes - before
            indexes, table_keys = _table_indexes(pipeline)
            table_labels = {name: logical_id for logical_id, name in pipeline.stack.tables.items()}
            memory = {lid: spec.memory_size for lid, spec in pipeline.stack.functions.items()}
            queues = len(sources)
        meter.restore()
    finally:
        if webhook_front is not None:
            webhook_front.stop()
        recorder.uninstall()
        stripe.stop()
        sendgrid.stop()
    from infra.deploy import load_template

    template = load_template(ROOT / "template.yaml")
    resources = template["Resources"]
    return CostRun(
        config=config,
        donations=config.donations,
        invocations=meter.invocations,
        calls=list(recorder.calls),
        api_requests=api_requests,
        memory_mb=memory,
        log_bytes=sink.bytes - reconciler_log_bytes,
        log_events=sink.lines,
        emf_metrics=sink.metrics,
        indexes=indexes,
        table_keys=table_keys,
        table_labels=table_labels,
        access_log_bytes=_access_log_line_bytes(template),
        init_ms=init_ms,
        alarms=sum(1 for r in resources.values() if r.get("Type") == "AWS::CloudWatch::Alarm"),
        dashboards=sum(1 for r in resources.values() if r.get("Type") == "AWS::CloudWatch::Dashboard"),
        secrets=sum(1 for name in template.get("Parameters", {}) if name.endswith("SecretName")),
        event_source_queues=queues,
        reconciler_runs_per_month=_runs_per_month(resources.get(RECONCILER, {})),
        reconciler_log_bytes=reconciler_log_bytes,
        statuses=statuses,
        webhook_note=webhook_note,
        machine=machine(),
        started_at=started_at,
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


def _runs_per_month(resource: dict[str, Any]) -> float:
    for event in (resource.get("Properties", {}).get("Events") or {}).values():
        if event.get("Type") != "Schedule":
            continue
        found = re.match(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", str(event["Properties"]["Schedule"]))
        if found:
            seconds = int(found.group(1)) * {"m": 60, "h": 3600, "d": 86400}[found.group(2)[0]]
            return SECONDS_PER_MONTH / seconds
    return 0.0


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


# --------------------------------------------------------------------------- pricing


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
    """SQS, DynamoDB and Secrets Manager charges for these calls; notes about what was left out."""
    sqs_p, ddb, sm = prices["sqs"], prices["dynamodb"], prices["secrets_manager"]
    lines: list[Line] = []
    notes: list[str] = []

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
    for label, count in sorted(by_op.items()):
        lines.append(Line("SQS", label, count, "requests", sqs_p["standard_requests_per_million"], 1e6))
    if empty:
        notes.append(
            f"{len(empty)} empty ReceiveMessage calls of the local runner are left out: Lambda's pollers "
            "long-poll, and their idle polling is a fixed cost (below), not a per-donation one."
        )
    wru, gsi, rru, unknown = dynamodb_units(run, calls)
    per_million = ddb["write_request_units_per_million"]
    for table_name, units in sorted(wru.items()):
        lines.append(Line("DynamoDB", f"{table_name} writes", units, "WRU", per_million, 1e6))
    for index_name, units in sorted(gsi.items()):
        lines.append(Line("DynamoDB", f"{index_name} (GSI) writes", units, "WRU", per_million, 1e6))
    for table_name, units in sorted(rru.items()):
        lines.append(Line("DynamoDB", f"{table_name} reads", units, "RRU", ddb["read_request_units_per_million"], 1e6))
    if unknown:
        notes.append(f"DynamoDB operations priced at 1 WRU each (not modelled): {sorted(set(unknown))}")
    secret_calls = sum(1 for c in calls if c.service == "secretsmanager")
    if secret_calls:
        lines.append(
            Line(
                "Secrets Manager", "GetSecretValue (cached 5 min)", secret_calls, "calls", sm["api_calls_per_10k"], 1e4
            )
        )
    return lines, notes


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
    model = CostModel(run, prices)
    api, cw, xray, sqs_p = prices["api_gateway"], prices["cloudwatch"], prices["xray"], prices["sqs"]
    per_donation_calls = [c for c in run.calls if c.scope and c.scope != RECONCILER]
    per_donation_invocations = [i for i in run.invocations if i.function != RECONCILER]

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

    overhead = cw["log_event_overhead_bytes"]
    function_bytes = run.log_bytes + run.log_events * overhead
    platform_bytes = len(per_donation_invocations) * (PLATFORM_LOG_BYTES + PLATFORM_LOG_EVENTS * overhead)
    access_bytes = sum(run.api_requests.values()) * (run.access_log_bytes + overhead)
    per_gb = cw["logs_ingestion_per_gb"]
    model.lines += [
        Line(
            "CloudWatch Logs",
            f"function logs + EMF ({run.log_events} events, measured)",
            function_bytes / 1e9,
            "GB",
            per_gb,
            1,
        ),
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

    # Fixed monthly costs, not per donation
    idle_requests = run.event_source_queues * IDLE_POLLERS * SECONDS_PER_MONTH / LONG_POLL_SECONDS
    model.fixed += [
        Line(
            "CloudWatch",
            f"custom metrics from EMF ({len(run.emf_metrics)} metric+dimension sets seen)",
            len(run.emf_metrics),
            "metric-months",
            cw["custom_metric_month"],
            1,
        ),
        Line(
            "CloudWatch",
            f"alarms ({run.alarms} in template.yaml)",
            run.alarms,
            "alarm-months",
            cw["alarm_standard_month"],
            1,
        ),
        Line(
            "CloudWatch", f"dashboards ({run.dashboards})", run.dashboards, "dashboard-months", cw["dashboard_month"], 1
        ),
        Line(
            "Secrets Manager",
            f"secrets ({run.secrets})",
            run.secrets,
            "secret-months",
            prices["secrets_manager"]["secret_month"],
            1,
        ),
        Line(
            "SQS",
            f"idle polling, {run.event_source_queues} event source mappings "
            f"(est. {IDLE_POLLERS} x {LONG_POLL_SECONDS} s long polls)",
            idle_requests,
            "requests",
            sqs_p["standard_requests_per_million"],
            1e6,
        ),
    ]
    reconciler = [i for i in run.invocations if i.function == RECONCILER]
    if reconciler and run.reconciler_runs_per_month:
        per_run = sum(line.cost for line in lambda_lines(run, reconciler, prices))
        per_run += sum(
            line.cost for line in api_call_lines(run, [c for c in run.calls if c.scope == RECONCILER], prices)[0]
        )
        per_run += (run.reconciler_log_bytes + PLATFORM_LOG_BYTES) / 1e9 * per_gb
        model.fixed.append(
            Line(
                "Lambda",
                f"reconciler on its schedule ({run.reconciler_runs_per_month:,.0f} runs, "
                f"{reconciler[0].duration_ms:.0f} ms measured)",
                run.reconciler_runs_per_month,
                "runs",
                per_run,
                1,
            )
        )
    model.notes.append(
        "Not priced: DynamoDB storage and point-in-time recovery (per GB-month), KMS requests for the "
        "AWS-managed table keys (cached data keys), data transfer out, free tiers, and the providers' "
        "own fees (Stripe, SendGrid)."
    )
    return model


# --------------------------------------------------------------------------- report


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
    table(
        ["service", "US$ per 1,000 donations", "share"],
        [[service, cost, f"{cost / total:.0%}"] for service, cost in model.by_service().items()]
        + [["total", total, "100%"]],
        out=out,
    )
    print(file=out)
    table(
        ["fixed monthly cost (not per donation)", "quantity", "US$ per month"],
        [[line.item, line.quantity, line.cost] for line in model.fixed]
        + [["total", "", sum(line.cost for line in model.fixed)]],
        out=out,
    )
    sensitivity(model, out)
    for note in model.notes:
        print(f"note: {note}", file=out)
    top = next(iter(model.by_service().items()))
    summary = (
        f"cost_model: ${total:.4f} per 1,000 donations (target <= ${TARGET_PER_1000:.2f}) "
        f"largest: {top[0]} ${top[1]:.4f}; fixed ${sum(line.cost for line in model.fixed):.2f}/month; "
        f"prices as of {prices['as_of']} {verdict(total <= TARGET_PER_1000)}"
    )
    print("\n" + summary, file=out, flush=True)
    return summary


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
            "GetSecretValue on every invocation (5-min cache always expired)",
            len(invocations) * prices["secrets_manager"]["api_calls_per_10k"] / 1e4 * per_1000,
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


def parse_args(argv: Sequence[str] | None) -> CostConfig:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cost_model", description=__doc__.split("\n\n")[0])
    defaults = CostConfig()
    parser.add_argument("--donations", "-n", type=int, default=defaults.donations)
    parser.add_argument("--delivery", choices=["per-donation", "batched"], default=defaults.delivery)
    parser.add_argument("--save-card-share", type=float, default=defaults.save_card_share)
    parser.add_argument("--charge-ms", type=float, default=defaults.charge_ms)
    parser.add_argument("--save-card-ms", type=float, default=defaults.save_card_ms)
    parser.add_argument("--mail-ms", type=float, default=defaults.mail_ms)
    parser.add_argument("--cold-start-share", type=float, default=defaults.cold_start_share)
    parser.add_argument(
        "--init-ms", type=float, default=None, help="INIT time for every function instead of measuring it"
    )
    parser.add_argument("--init-repeats", type=int, default=defaults.init_repeats)
    parser.add_argument("--prices", type=Path, default=defaults.prices_path)
    args = parser.parse_args(argv)
    if args.donations < 1 or not 0 <= args.save_card_share <= 1 or not 0 <= args.cold_start_share <= 1:
        parser.error("--donations >= 1; shares within [0, 1]")
    init = None
    if args.init_ms is not None:
        from benchmarks.cold_start import functions_from_template

        init = dict.fromkeys(functions_from_template(), args.init_ms)
    return CostConfig(
        donations=args.donations,
        delivery=args.delivery,
        save_card_share=args.save_card_share,
        charge_ms=args.charge_ms,
        save_card_ms=args.save_card_ms,
        mail_ms=args.mail_ms,
        cold_start_share=args.cold_start_share,
        init_ms=init,
        init_repeats=args.init_repeats,
        prices_path=args.prices,
    )


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    config = parse_args(argv)
    model = price(run(config, out), load_prices(config.prices_path))
    report(model, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
