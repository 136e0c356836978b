"""Donor latency: POST /donations through the local stack vs. the synchronous baseline vs. the charge alone.

The provider emulators inject realistic latencies (charge 300 ms, customer create + attach 250 ms,
mail send 200 ms, each +/-10 % uniform jitter, seeded). One process runs the local stack (moto
server, emulators, the real handlers, the pollers that run the background steps, the HTTP front),
the synchronous baseline (benchmarks/sync_baseline.py) behind the same kind of front, and the
client. Each round sends one request to each of the three, in a shuffled order, so the three share
the machine's noise:

* pipeline: POST /donations on the local stack's front (the charge function; follow-ups queued);
* baseline: POST /donations on the baseline's front (charge, save card, send mail, then answer);
* floor:    the Stripe SDK's ``payment_intents.create`` to the emulator, the one round trip the
            donor cannot avoid.

Targets: pipeline p50 <= 1.10 x floor p50; baseline p50 / pipeline p50 >= 2.2.

    python -m benchmarks.donor_latency [--donations 100] [--charge-ms 300] [--save-card-ms 250] ...
"""

from __future__ import annotations

import argparse
import functools
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import requests

from benchmarks.common import (
    AwsCallRecorder,
    NullSink,
    Summary,
    benchmark_process,
    machine,
    median,
    percentile,
    table,
    verdict,
)
from simulator.local.process import free_port

FLOOR_TARGET = 1.10
SPEEDUP_TARGET = 2.2
VARIANTS = ("pipeline", "baseline", "floor")
QUIET_NOTE = "; QUIET STACK (diagnostic: no webhook deliveries, no local reconciler)"


@dataclass
class LatencyConfig:
    donations: int = 100
    warmup: int = 3
    charge_ms: float = 300.0
    save_card_ms: float = 250.0
    """Customer create + PaymentMethod attach, split evenly between the two calls."""
    mail_ms: float = 200.0
    jitter: float = 0.10
    """Uniform jitter as a fraction of each mean (0.10 = +/-10 %)."""
    seed: int = 7
    quiet_stack: bool = False
    """Diagnostic: no webhook deliveries to the stack and no local reconciler runs during the rounds."""


@dataclass
class LatencyResult:
    config: LatencyConfig
    samples: dict[str, list[float]]
    requests: dict[str, list[RequestProbe]]
    call_ms: dict[str, dict[str, list[float]]]
    errors: dict[str, int]
    machine: str
    started_at: str
    summaries: dict[str, Summary] = field(init=False)

    def __post_init__(self) -> None:
        self.summaries = {name: Summary.of(values) for name, values in self.samples.items()}

    @property
    def speedup(self) -> float:
        return self.summaries["baseline"].p50 / self.summaries["pipeline"].p50

    @property
    def floor_ratio(self) -> float:
        return self.summaries["pipeline"].p50 / self.summaries["floor"].p50

    def paired(self, numerator: str, denominator: str) -> list[float]:
        """Per-round ratios (the variants of one round ran back to back)."""
        return [a / b for a, b in zip(self.samples[numerator], self.samples[denominator], strict=True)]

    @property
    def met(self) -> bool:
        return self.floor_ratio <= FLOOR_TARGET and self.speedup >= SPEEDUP_TARGET


def _donation(save_card: bool = True, donor: int = 0) -> dict[str, Any]:
    return {
        "amount": 2500,
        "currency": "usd",
        "email": f"donor{donor}@example.org",
        "name": "Ada Lovelace",
        "payment_method": "pm_card_visa",
        "save_card": save_card,
    }


def _donor_address(donor: int) -> str:
    """Each round is another donor, from another address (the local front's X-Local-Source-Ip): the
    card-testing counters are new items, as for most donors, and no donor reaches a limit."""
    return f"10.{donor // 65_536 % 256}.{donor // 256 % 256}.{donor % 256}"


def inject_provider_latency(stripe: Any, sendgrid: Any, config: LatencyConfig) -> None:
    """Set the emulators' per-route latencies (mean, +/- jitter) and seed their jitter."""
    half = config.save_card_ms / 2
    routes = [
        (stripe, "POST /v1/payment_intents", config.charge_ms),
        (stripe, "POST /v1/customers", half),
        (stripe, "POST /v1/payment_methods", half),  # .../{id}/attach
        (sendgrid, "POST /v3/mail/send", config.mail_ms),
    ]
    for emulator, route, mean in routes:
        emulator.set_latency(route, mean, mean * config.jitter)
    stripe.seed(config.seed)
    sendgrid.seed(config.seed + 1)


def copy_table(dynamodb: Any, source: str, suffix: str) -> str:
    """An empty table with the source table's keys and global secondary indexes, on demand."""
    description = dynamodb.describe_table(TableName=source)["Table"]
    name = f"{source}{suffix}"
    indexes = [
        {"IndexName": i["IndexName"], "KeySchema": i["KeySchema"], "Projection": i["Projection"]}
        for i in description.get("GlobalSecondaryIndexes", [])
    ]
    dynamodb.create_table(
        TableName=name,
        KeySchema=description["KeySchema"],
        AttributeDefinitions=description["AttributeDefinitions"],
        BillingMode="PAY_PER_REQUEST",
        **({"GlobalSecondaryIndexes": indexes} if indexes else {}),
    )
    return name


def _timed(fn: Callable[[], None]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def run(config: LatencyConfig, out: TextIO | None = None) -> LatencyResult:
    out = out or sys.stdout
    with benchmark_process():
        return _run(config, out)


def _run(config: LatencyConfig, out: TextIO) -> LatencyResult:
    # Nothing from donations.* may be imported before the stack starts: Powertools reads its settings
    # (metrics namespace, service) from the environment the pipeline sets, at import time.
    from simulator.local.config import LocalConfig
    from simulator.local.stack import LocalStack

    started_at = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    local = LocalConfig(
        api_port=free_port(),
        moto_port=free_port(),
        stripe_port=free_port(),
        sendgrid_port=free_port(),
        turnstile_port=free_port(),
        stack_name="donations-bench",
        stripe_api_key="",
        sendgrid_api_key="",
        environment={},
    )
    if config.quiet_stack:
        local.reconcile_seconds = 0
    print(f"starting the local stack (moto, emulators, handlers, pollers, front) on {local.api_port}...", file=out)
    stack = LocalStack(local, console=NullSink())
    baseline_server = None
    probes: Probes | None = None
    recorder = AwsCallRecorder()
    try:
        stack.start()
        # Hooks into every botocore session created from here on: the handlers build their clients
        # lazily, at their first invocation (the stack's own clients, made in start(), are not hooked).
        recorder.install()
        assert stack.stripe is not None and stack.sendgrid is not None
        inject_provider_latency(stack.stripe, stack.sendgrid, config)
        if config.quiet_stack:
            stack.stripe.configure_webhooks(None)
        baseline_server, stripe_client = _start_baseline(stack)
        probes = _probes(recorder, stack, baseline_server)
        with _Variants(
            f"http://127.0.0.1:{local.api_port}/donations", baseline_server.url, stripe_client, out
        ) as calls:
            samples = _rounds(config, calls, probes, out)
            errors = calls.errors
    finally:
        recorder.uninstall()
        if probes is not None:
            probes.restore()
        if baseline_server is not None:
            baseline_server.stop()
        stack.stop()
    return LatencyResult(config, samples, probes.requests, probes.call_ms, errors, machine(), started_at)


def _start_baseline(stack: Any) -> tuple[Any, Any]:
    """The old flow's server beside the stack (same adapters, same emulators), and a bare Stripe client."""
    from benchmarks.sync_baseline import SyncBaselineHandler, SyncBaselineServer, SyncBaselineSettings
    from donations.payments import build_stripe_client

    settings = SyncBaselineSettings.from_env()  # the functions' settings, which Pipeline.start put in os.environ
    # The baseline writes to a table of its own, shaped like the Donations table: in the shared one,
    # the pipeline's webhook function and reconciler would find its charged donations and send
    # their receipts in the background, racing the baseline's own claim.
    baseline_table = copy_table(stack.pipeline.clients("dynamodb"), settings.donations_table, "-sync-baseline")
    baseline_settings = settings.model_copy(
        update={"donations_table": baseline_table, "stripe_charge_secret_name": _store_baseline_key(stack)}
    )
    baseline_server = SyncBaselineServer(SyncBaselineHandler(baseline_settings), free_port()).start()
    return baseline_server, build_stripe_client(settings, stack.pipeline.providers.stripe_api_key)


def _store_baseline_key(stack: Any) -> str:
    """The old flow's one function charged and saved the card with one key: a restricted key in the Stripe
    emulator with the charge's and the tokenize step's permissions together (donations.stripe_keys), stored
    as the stack stores the functions' keys. Returns the parameter's name."""
    from donations.stripe_keys import STRIPE_KEY_PERMISSIONS, Access

    permissions: dict[str, str] = {}
    for function in ("charge", "tokenize"):
        for resource, access in STRIPE_KEY_PERMISSIONS[function].items():
            if permissions.get(resource) != Access.WRITE:  # Write includes Read
                permissions[resource] = access.value
    key = "rk_test_local_sync_baseline"
    stack.stripe.restrict(key, permissions)
    name = f"/{stack.pipeline.stack_name}/sync-baseline/stripe-key"
    encryption = {"KeyId": arn} if (arn := stack.pipeline.stack.outputs.get("SecretsKeyArn")) else {}
    stack.pipeline.clients("ssm").put_parameter(Name=name, Value=key, Type="SecureString", Overwrite=True, **encryption)
    return name


def _probes(recorder: AwsCallRecorder, stack: Any, baseline_server: Any) -> Probes:
    # Attribution only (what is measured is the client-side time): time inside the handlers, their
    # Stripe charge and AWS calls, and the local stack's own CloudWatch emulation.
    probes = Probes(recorder)
    probes.wrap_request(stack.front, "api", "pipeline")
    probes.wrap_time(stack.pipeline, "call_api", "handler")
    probes.wrap_request(baseline_server.front, "api", "baseline")
    probes.wrap_time(baseline_server, "handler", "handler")
    probes.wrap_time(stack.output, "_forward_metrics", "emf")
    probes.wrap_time(stack.function_metrics, "record", "bookkeeping")
    probes.wrap_providers()
    return probes


class _Variants:
    """One donation each way: through the pipeline, through the old flow, and the Stripe charge alone."""

    def __init__(self, api: str, baseline_url: str, stripe_client: Any, out: TextIO) -> None:
        self._urls = {"pipeline": api, "baseline": f"{baseline_url}/donations"}
        self._stripe = stripe_client
        self._out = out
        self._sessions = {name: requests.Session() for name in self._urls}
        self.errors = dict.fromkeys(VARIANTS, 0)

    def __enter__(self) -> _Variants:
        return self

    def __exit__(self, *exc: object) -> None:
        for session in self._sessions.values():
            session.close()

    def __call__(self, name: str, key: str, donor: int = 0) -> None:
        if name == "floor":
            self._floor(key)
            return
        headers = {"Idempotency-Key": key, "X-Local-Source-Ip": _donor_address(donor)}
        response = self._sessions[name].post(self._urls[name], json=_donation(donor=donor), headers=headers, timeout=30)
        if response.status_code != 201:
            self.errors[name] += 1
            print(f"  {name}: HTTP {response.status_code} {response.text[:200]}", file=self._out)

    def _floor(self, key: str) -> None:
        self._stripe.v1.payment_intents.create(
            params={
                "amount": 2500,
                "currency": "usd",
                "payment_method": "pm_card_visa",
                "allowed_payment_method_types": ["card"],
                "confirm": True,
                "setup_future_usage": "off_session",
                "metadata": {"donation_id": key},
                "description": f"Donation {key}",
            },
            options={"idempotency_key": f"floor-{key}"},
        )


def _rounds(config: LatencyConfig, calls: _Variants, probes: Probes, out: TextIO) -> dict[str, list[float]]:
    """Each round runs every variant once, in shuffled order; the warm-up rounds are not kept."""
    rng = random.Random(config.seed)
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    total = config.warmup + config.donations
    run_id = uuid.uuid4().hex[:8]
    print(f"{total} rounds ({config.warmup} warm-up), each: pipeline, baseline, floor in shuffled order", file=out)
    for round_no in range(total):
        order = list(VARIANTS)
        rng.shuffle(order)
        for name in order:
            elapsed = _timed(functools.partial(calls, name, f"bench-{run_id}-{name}-{round_no}", round_no))
            if round_no >= config.warmup:
                samples[name].append(elapsed)
        if round_no < config.warmup:
            probes.clear()
        if (round_no + 1) % 25 == 0:
            print(f"  {round_no + 1}/{total} rounds", file=out, flush=True)
    return samples


@dataclass
class RequestProbe:
    """Where one request's time went, server side (ms)."""

    server: float = 0.0
    """From the HTTP front receiving the request to its answer being ready."""
    handler: float = 0.0
    stripe_charge: float = 0.0
    stripe_save_card: float = 0.0
    mail: float = 0.0
    aws: float = 0.0
    aws_sends: float = 0.0
    """The part of ``aws`` spent in SendMessage, which the charge makes side by side inside ``publish``."""
    publish: float = 0.0
    aws_calls: dict[str, int] = field(default_factory=dict)
    emf: float = 0.0
    bookkeeping: float = 0.0


class Probes:
    """Timers around the handlers and what they call, per request, without changing what they do."""

    def __init__(self, recorder: AwsCallRecorder) -> None:
        self.recorder = recorder
        self.requests: dict[str, list[RequestProbe]] = {"pipeline": [], "baseline": []}
        self.call_ms: dict[str, dict[str, list[float]]] = {"pipeline": {}, "baseline": {}}
        self._local = threading.local()
        self._restore: list[Callable[[], None]] = []

    def clear(self) -> None:
        for probes in self.requests.values():
            probes.clear()
        for calls in self.call_ms.values():
            calls.clear()

    def _current(self) -> RequestProbe | None:
        return getattr(self._local, "probe", None)

    def wrap_request(self, owner: Any, attribute: str, name: str) -> None:
        """One POST /donations as the front serves it, and the AWS calls made in its thread meanwhile.

        Other requests to the same front (the Stripe emulator's webhook deliveries) pass through.
        """
        inner = getattr(owner, attribute)

        def probed(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
            if (method, path) != ("POST", "/donations"):
                return inner(method, path, *args, **kwargs)
            probe = RequestProbe()
            self._local.probe = probe
            first = len(self.recorder.calls)
            started = time.perf_counter()
            try:
                with self.recorder.scope(name):
                    return inner(method, path, *args, **kwargs)
            finally:
                probe.server = (time.perf_counter() - started) * 1000
                mine = [c for c in self.recorder.calls[first:] if c.scope == name]
                probe.aws = sum(c.ms for c in mine if c.ms == c.ms)
                probe.aws_sends = sum(c.ms for c in mine if c.ms == c.ms and c.operation == "SendMessage")
                for call in mine:
                    key = f"{call.service}:{call.operation}"
                    probe.aws_calls[key] = probe.aws_calls.get(key, 0) + 1
                    self.call_ms[name].setdefault(key, []).append(call.ms)
                self.requests[name].append(probe)
                self._local.probe = None

        self._patch(owner, attribute, probed)

    def wrap_time(self, owner: Any, attribute: str, slot: str) -> None:
        """Time spent in ``owner.attribute`` by the thread of the request being probed."""
        inner = getattr(owner, attribute)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                probe = self._current()
                if probe is not None:
                    setattr(probe, slot, getattr(probe, slot) + (time.perf_counter() - started) * 1000)

        self._patch(owner, attribute, timed)

    def wrap_providers(self) -> None:
        from donations.followups import FollowUpPublisher
        from donations.mail import ReceiptMailer
        from donations.payments import StripePayments

        self.wrap_time(FollowUpPublisher, "publish", "publish")
        self.wrap_time(StripePayments, "charge", "stripe_charge")
        self.wrap_time(StripePayments, "save_card", "stripe_save_card")
        self.wrap_time(ReceiptMailer, "send", "mail")

    def _patch(self, owner: Any, attribute: str, replacement: Any) -> None:
        had_own = attribute in vars(owner)
        original = vars(owner).get(attribute)
        setattr(owner, attribute, replacement)

        def restore() -> None:
            if had_own:
                setattr(owner, attribute, original)
            else:
                delattr(owner, attribute)

        self._restore.append(restore)

    def restore(self) -> None:
        while self._restore:
            self._restore.pop()()


def report(result: LatencyResult, out: TextIO | None = None) -> str:
    out = out or sys.stdout
    config = result.config
    print(
        f"\ndonor latency, {result.started_at}; {result.machine}\n"
        f"provider latency: charge {config.charge_ms:.0f} ms, customer+attach {config.save_card_ms:.0f} ms, "
        f"mail {config.mail_ms:.0f} ms, jitter +/-{config.jitter:.0%}; {config.donations} rounds after "
        f"{config.warmup} warm-up{QUIET_NOTE if config.quiet_stack else ''}\n",
        file=out,
    )
    rows = []
    labels = {
        "pipeline": "pipeline  POST /donations (local stack)",
        "baseline": "baseline  POST /donations (sync flow)",
        "floor": "floor     Stripe payment_intents.create",
    }
    for name in VARIANTS:
        s = result.summaries[name]
        rows.append([labels[name], s.n, s.p50, s.p95, s.p99, s.p5, s.p95, result.errors[name]])
    table(["client-side latency (ms)", "n", "p50", "p95", "p99", "spread p5", "..p95", "errors"], rows, out=out)

    speedups, floors = result.paired("baseline", "pipeline"), result.paired("pipeline", "floor")
    print(file=out)
    table(
        ["ratio", "of medians", "paired median", "paired p25", "paired p75", "target", "met"],
        [
            [
                "baseline / pipeline",
                result.speedup,
                median(speedups),
                percentile(speedups, 25),
                percentile(speedups, 75),
                f">= {SPEEDUP_TARGET}",
                verdict(result.speedup >= SPEEDUP_TARGET),
            ],
            [
                "pipeline / floor",
                result.floor_ratio,
                median(floors),
                percentile(floors, 25),
                percentile(floors, 75),
                f"<= {FLOOR_TARGET:.2f}",
                verdict(result.floor_ratio <= FLOOR_TARGET),
            ],
        ],
        out=out,
    )
    pipeline_p50, floor_p50 = result.summaries["pipeline"].p50, result.summaries["floor"].p50
    print(file=out)
    breakdown(result, out)
    b = result.summaries["baseline"]
    summary = (
        f"donor_latency: pipeline p50={pipeline_p50:.0f} ms p95={result.summaries['pipeline'].p95:.0f} "
        f"p99={result.summaries['pipeline'].p99:.0f}; baseline p50={b.p50:.0f} ms; floor p50={floor_p50:.0f} ms; "
        f"baseline/pipeline={result.speedup:.2f}x (>= {SPEEDUP_TARGET}) "
        f"pipeline/floor={result.floor_ratio:.3f} (<= {FLOOR_TARGET:.2f}) {verdict(result.met)}"
    )
    print("\n" + summary, file=out, flush=True)
    return summary


def breakdown(result: LatencyResult, out: TextIO) -> None:
    """Where the time goes, per request, server side: medians of per-request values (ms)."""
    rows: list[list[Any]] = []
    call_lines: list[str] = []
    for name in ("pipeline", "baseline"):
        probes = result.requests.get(name) or []
        clients = result.samples[name]
        if not probes or len(probes) != len(clients):
            continue
        for label, values in _time_parts(name, clients, probes):
            rows.append([f"{name}: {label}", median(values), percentile(values, 5), percentile(values, 95)])
        call_lines.append(
            f"{name} AWS calls per request (count @ median ms): {_aws_calls(probes, result.call_ms.get(name, {}))}"
        )
    table(["where the time goes (ms, per request)", "p50", "p5", "p95"], rows, out=out)
    for line in call_lines:
        print(line, file=out)
    _print_without_local_cloudwatch(result, out)


def _time_parts(name: str, clients: list[float], probes: list[RequestProbe]) -> list[tuple[str, list[float]]]:
    """The rows of one side's breakdown: the pipeline has no card save or mail in the request, the baseline
    no follow-up messages and none of the local stack's CloudWatch emulation."""
    parts: list[tuple[str, list[float]]] = [
        ("client-side latency", clients),
        ("  HTTP front + client (client - server)", [c - p.server for c, p in zip(clients, probes, strict=True)]),
        ("  local stack CloudWatch bookkeeping after the handler (local only)", [p.bookkeeping for p in probes]),
        ("  handler", [p.handler for p in probes]),
        ("    Stripe charge (StripePayments.charge)", [p.stripe_charge for p in probes]),
        ("    Stripe customer + attach (StripePayments.save_card)", [p.stripe_save_card for p in probes]),
        ("    SendGrid mail send (ReceiptMailer.send)", [p.mail for p in probes]),
        ("    follow-up messages (SendMessage calls side by side)", [p.publish for p in probes]),
        ("    other AWS API calls (sum per request)", [p.aws - p.aws_sends for p in probes]),
        ("    EMF metrics forwarded to moto CloudWatch (local only)", [p.emf for p in probes]),
        ("    rest: Powertools, parsing, validation, logging", [_rest(p) for p in probes]),
    ]
    if name == "pipeline":
        return [part for part in parts if "save_card" not in part[0] and "SendGrid" not in part[0]]
    return [part for part in parts if "local only" not in part[0] and "follow-up" not in part[0]]


def _aws_calls(probes: list[RequestProbe], timings: dict[str, list[float]]) -> str:
    counts: dict[str, list[int]] = {}
    for probe in probes:
        for key in {k for p in probes for k in p.aws_calls}:
            counts.setdefault(key, []).append(probe.aws_calls.get(key, 0))
    return ", ".join(
        f"{k.split(':')[1]} x{median(v):g} @ {median(timings.get(k) or [float('nan')]):.1f} ms"
        for k, v in sorted(counts.items())
    )


def _print_without_local_cloudwatch(result: LatencyResult, out: TextIO) -> None:
    probes = result.requests.get("pipeline") or []
    clients = result.samples["pipeline"]
    if not probes or len(probes) != len(clients):
        return
    # Attribution, not the headline: AWS extracts EMF metrics and Lambda metrics off the request path.
    local_only = [c - p.emf - p.bookkeeping for c, p in zip(clients, probes, strict=True)]
    floor = result.summaries["floor"].p50
    print(
        f"\npipeline without the local stack's CloudWatch emulation (EMF forwarding + Lambda metrics, which "
        f"AWS does off the request path): p50 {median(local_only):.0f} ms = "
        f"{median(local_only) / floor:.2f} x floor",
        file=out,
    )


def _rest(probe: RequestProbe) -> float:
    providers = probe.stripe_charge + probe.stripe_save_card + probe.mail
    return probe.handler - providers - probe.publish - (probe.aws - probe.aws_sends) - probe.emf


def parse_args(argv: Sequence[str] | None) -> LatencyConfig:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.donor_latency", description=__doc__.split("\n\n")[0])
    defaults = LatencyConfig()
    parser.add_argument("--donations", "-n", type=int, default=defaults.donations, help="measured rounds")
    parser.add_argument("--warmup", type=int, default=defaults.warmup)
    parser.add_argument("--charge-ms", type=float, default=defaults.charge_ms)
    parser.add_argument("--save-card-ms", type=float, default=defaults.save_card_ms, help="customer create + attach")
    parser.add_argument("--mail-ms", type=float, default=defaults.mail_ms)
    parser.add_argument("--jitter", type=float, default=defaults.jitter, help="fraction of each mean, e.g. 0.1")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--quiet-stack",
        action="store_true",
        help="diagnostic: no Stripe webhook deliveries and no local reconciler runs while measuring",
    )
    args = parser.parse_args(argv)
    if args.donations < 1 or args.warmup < 0:
        parser.error("--donations must be >= 1 and --warmup >= 0")
    return LatencyConfig(
        donations=args.donations,
        warmup=args.warmup,
        charge_ms=args.charge_ms,
        save_card_ms=args.save_card_ms,
        mail_ms=args.mail_ms,
        jitter=args.jitter,
        seed=args.seed,
        quiet_stack=args.quiet_stack,
    )


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    result = run(parse_args(argv), out)
    report(result, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
