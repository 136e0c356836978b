"""Renewal run: a run of due pledges drains under a named Stripe request rate, and donors stay as fast.

A moto server (a process of its own, as the local stack runs it) gets the stack from template.yaml and
``--pledges`` due pledges (default 10,000) written straight into the Pledges table, all on one saved card
in the Stripe emulator. Then:

1. the real schedule-renewals handler runs once (its due-index queries and one conditional write per
   pledge, against moto); the messages it sends are kept in order and fed into the template's
   RenewalQueue through a window (``--window`` messages at most in the queue), because moto's
   ReceiveMessage and SendMessage cost grows with the queue's depth (benchmarks/drain_rate.py), which real
   SQS does not do;
2. the real renew handler drains the queue through ``simulator.local.delivery.deliver_batch`` with the
   template's event source settings (BatchSize, batching window), from as many pollers at once as the
   template's ``ScalingConfig.MaximumConcurrency`` lets Lambda run (each poller one execution
   environment; here they share one interpreter);
3. meanwhile donors give one at a time (POST /donations through the charge function), in phases that
   alternate with the run paused and the run going, so the donor's p50/p99 without and with a run in
   progress share the machine's noise.

The Stripe emulator answers POST /v1/payment_intents after ``--charge-ms`` (default 300 ms, +/-10 %,
seeded; a typical Stripe charge round trip), and counts the requests it receives per second, route, and
whether they are a renewal's (its Idempotency-Key is ``renewal_key``'s ``pledge-...``) or a donor's.

The ceiling: Stripe's documented default limits (docs.stripe.com/rate-limits, "Rate limiter": in live
mode 100 requests a second per account, 25 in a sandbox, and "API endpoints have a default limit of 25
requests per second", each named operation an endpoint of its own, so ``POST /v1/payment_intents``
counts donors and renewals together). Stripe's support asks that background jobs be limited "to a
subset of the maximum" so live charges still succeed. Renewals may use ``CEILING`` = 10 requests a
second of that endpoint (40 %), leaving 15 a second to the donors. The template's model:
``MaximumConcurrency x records side by side per invocation (BatchSize, at most 10) x Stripe calls per
renewal (1) / Stripe's latency``.

    python -m benchmarks.renewal_run [--pledges 10000] [--charge-ms 300] [--phase-donations 10] [--max-seconds 170]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from benchmarks.common import (
    NullSink,
    Summary,
    benchmark_process,
    machine,
    pipeline_on_moto_server,
    quiet_functions,
    table,
    verdict,
)

CEILING = 10.0
"""Renewals' requests a second to POST /v1/payment_intents: 40 % of Stripe's default per-endpoint limit."""
ENDPOINT_LIMIT = 25.0
"""docs.stripe.com/rate-limits: "API endpoints have a default limit of 25 requests per second"."""
ACCOUNT_LIMIT = 100.0
"""docs.stripe.com/rate-limits: live mode, all of an account's requests a second."""
CHARGE_ROUTE = "POST /v1/payment_intents"
STRIPE_CALLS_PER_RENEWAL = 1
"""donations.payments.StripePayments.charge_saved_card: one create with confirm=true, off_session=true (a
redelivery after a crash may add one list read, find_attempt)."""
DONOR_RATIO_TARGET = 1.25
"""The donor's p50 with a run in progress at most 25 % above without (noise on a shared machine included)."""
RENEWAL, DONOR = "renewal", "donor"


@dataclass
class RunConfig:
    pledges: int = 10_000
    charge_ms: float = 300.0
    jitter: float = 0.10
    window: int = 40
    """Renewal messages kept in the queue at most (topped up from the schedule's output)."""
    phase_donations: int = 10
    """Donations per phase; phases alternate run paused / run going. 0: no donors."""
    max_seconds: float = 3600.0
    """Stop the drain after this long (the report then says how many are left). 10,000 pledges take about
    an hour on a 2-core machine (moto's cost per renewal; see docs/monthly-giving.md, "Scale")."""
    seed: int = 7


@dataclass
class RunResult:
    config: RunConfig
    max_concurrency: int
    batch_size: int
    schedule_seconds: float
    scheduled: int
    drain_seconds: float
    running_seconds: float
    """The drain's seconds with the run going (not paused for a donor phase)."""
    renewed: int
    left: int
    retried: int
    """Deliveries the renew handler reported failed (left for a retry after a backoff)."""
    duplicates: int
    """Messages delivered again after they were handled (at least once delivery), acknowledged as done."""
    parked: dict[str, int]
    """Renewals parked in the renewal DLQ, by failure_reason."""
    double_charged: int
    skipped: int
    per_second: dict[int, dict[str, int]]
    donor_ms: dict[str, list[float]]
    donor_errors: int
    machine: str
    started_at: str
    running_spans: list[tuple[float, float]] = field(default_factory=list)

    def total_rates(self) -> list[int]:
        """All POST /v1/payment_intents (renewals and donors) per whole second of the run going."""
        return [self._count(second, RENEWAL) + self._count(second, DONOR) for second in self._running_seconds()]

    def all_requests_peak(self) -> int:
        return max((sum(counts.values()) for counts in self.per_second.values()), default=0)

    def _count(self, second: int, who: str) -> int:
        return self.per_second.get(second, {}).get(f"{CHARGE_ROUTE} {who}", 0)

    def _running_seconds(self) -> list[int]:
        seconds: list[int] = []
        for start, end in self.running_spans:
            seconds += range(math.ceil(start), math.floor(end))  # whole seconds inside the span only
        return seconds

    @property
    def mean_rate(self) -> float:
        count = sum(self._count(second, RENEWAL) for second in self.per_second)
        return count / self.running_seconds if self.running_seconds else math.nan

    @property
    def peak_rate(self) -> int:
        return max((self._count(second, RENEWAL) for second in self.per_second), default=0)

    def model_rate(self, latency_ms: float) -> float:
        side_by_side = min(self.batch_size, 10)  # donations.consumer.MAX_RECORDS_AT_ONCE
        return self.max_concurrency * side_by_side * STRIPE_CALLS_PER_RENEWAL / (latency_ms / 1000)


# --------------------------------------------------------------------------- the pledges


def pledge_id(index: int) -> str:
    return f"pl_{index:024x}"


def write_pledges(pipeline: Any, count: int, customer_id: str, payment_method_id: str, due: str) -> None:
    """``count`` active pledges due on ``due``, on one saved card, straight into the Pledges table."""
    from donations.pledges import Pledge, PledgeState

    pledges = pipeline.clients.session.resource("dynamodb", endpoint_url=pipeline.clients.endpoint_url).Table(
        pipeline.stack.tables["PledgesTable"]
    )
    stamp = datetime.now(UTC).isoformat()
    with pledges.batch_writer() as writer:
        for index in range(count):
            pledge = Pledge(
                pledge_id=pledge_id(index),
                state=PledgeState.ACTIVE,
                amount=2500,
                currency="usd",
                email=f"donor{index}@example.org",
                email_masked="d***@example.org",
                name="Ada Lovelace",
                customer_id=customer_id,
                payment_method_id=payment_method_id,
                card_brand="visa",
                card_last4="4242",
                day_of_month=int(due[8:10]),
                next_charge_on=due,
                due_on=due,
                first_donation_id=f"don_run{index:024d}",
                created_at=stamp,
                updated_at=stamp,
            )
            writer.put_item(Item=pledge.model_dump(mode="json", exclude_none=True))


def saved_card(stripe_url: str) -> tuple[str, str]:
    """A Customer with Stripe's test card attached (docs.stripe.com/testing: pm_card_visa), ready off-session."""
    import stripe

    client = stripe.StripeClient("sk_test_renewal_run", base_addresses={"api": stripe_url})
    customer = client.v1.customers.create(params={"email": "donors@example.org"})
    method = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    return customer.id, method.id


class HeldMessages:
    """Stands in for the schedule's SQS client: keeps the SendMessageBatch entries it sends, in order."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.entries += Entries
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries], "Failed": []}


class Feeder:
    """Moves the held messages into the renewal queue, keeping at most ``window`` there (moto's depth cost)."""

    def __init__(self, sqs: Any, queue_url: str, entries: list[dict[str, Any]], window: int) -> None:
        self.sqs, self.queue_url, self.window = sqs, queue_url, window
        self.entries = entries
        self.sent = 0
        self.lock = threading.Lock()

    @property
    def remaining(self) -> int:
        return len(self.entries) - self.sent

    def top_up(self, consumed: int) -> None:
        """``consumed``: messages the pollers took out so far (deleted or in flight)."""
        with self.lock:
            while self.sent < len(self.entries) and self.sent - consumed < self.window:
                room = min(10, self.window - (self.sent - consumed), len(self.entries) - self.sent)
                batch = [{**entry, "Id": str(i)} for i, entry in enumerate(self.entries[self.sent : self.sent + room])]
                self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=batch)
                self.sent += room


# --------------------------------------------------------------------------- the drain


class Drain:
    """MaximumConcurrency pollers delivering the renewal queue to the renew handler; pausable between batches."""

    def __init__(self, pipeline: Any, feeder: Feeder, concurrency: int) -> None:
        import boto3

        from simulator.local.delivery import EventSource

        spec = next(s for s in pipeline.event_sources() if s.name == "RenewFunction")
        # Lambda runs up to MaximumConcurrency execution environments at once, each with its own
        # interpreter. Here they share one: each poller gets its own entry point around the function's
        # consumer (Powertools' batch processor keeps a batch's records on itself, so two invocations
        # at once must not share one), not Pipeline.invoke (one environment, one invocation at a time).
        from donations.consumer import sqs_lambda_handler

        module = pipeline.handler("RenewFunction")
        self.sources = [
            EventSource(**{**spec.__dict__, "handler": sqs_lambda_handler(module.consumer)}) for _ in range(concurrency)
        ]
        self.source = self.sources[0]
        self.feeder = feeder
        self.going = threading.Event()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.taken = 0
        """Messages handled without a failure, each counted once (SQS delivers at least once: so does moto)."""
        self.handled: set[str] = set()
        self.duplicates = 0
        self.failed = 0
        self.in_flight = 0
        self.empty_polls = 0
        session = boto3.session.Session(region_name=pipeline.clients.region)
        self.threads = [
            threading.Thread(
                target=self._poll,
                args=(session.client("sqs", endpoint_url=pipeline.clients.endpoint_url), source),
                name=f"renewal-poller-{n}",
                daemon=True,
            )
            for n, source in enumerate(self.sources)
        ]

    def start(self) -> None:
        self.going.set()
        for thread in self.threads:
            thread.start()

    def _poll(self, sqs: Any, source: Any) -> None:
        from simulator.local.delivery import deliver_batch

        while not self.stopping.is_set():
            if not self.going.wait(0.1):
                continue
            with self.lock:
                self.in_flight += 1
            try:
                with self.lock:
                    consumed = self.taken
                self.feeder.top_up(consumed)
                result = deliver_batch(sqs, source)
            except Exception as error:  # an SQS call to moto failed: the message comes back, as on AWS
                print(f"  delivery failed: {error!r}", file=sys.stderr)
                self.stopping.wait(1)
                continue
            finally:
                with self.lock:
                    self.in_flight -= 1
            with self.lock:
                for message in result.messages:
                    if message["MessageId"] in result.failed_ids:
                        self.failed += 1
                    elif message["MessageId"] in self.handled:
                        self.duplicates += 1
                    else:
                        self.handled.add(message["MessageId"])
                self.taken = len(self.handled)
                if not result.received:
                    self.empty_polls += 1
            if not result.received:
                time.sleep(0.05)

    @property
    def done(self) -> bool:
        with self.lock:
            return self.taken >= len(self.feeder.entries)

    def pause(self, timeout: float = 10.0) -> None:
        """Stop taking batches and wait for the ones running to finish."""
        self.going.clear()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not self.in_flight:
                    return
            time.sleep(0.01)

    def resume(self) -> None:
        self.going.set()

    def stop(self) -> None:
        self.stopping.set()
        self.going.set()
        for thread in self.threads:
            thread.join(timeout=30)


class Donors:
    """One donation at a time through POST /donations (the charge function), each from another donor."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.count = 0
        self.errors = 0

    def give(self) -> float:
        self.count += 1
        donor = self.count
        body = json.dumps(
            {
                "amount": 2500,
                "currency": "usd",
                "email": f"giver{donor}@example.org",
                "name": "Ada Lovelace",
                "payment_method": "pm_card_visa",
                "save_card": False,
            }
        )
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": str(uuid.uuid4()),
            # Another donor each time, from another address: no card-testing counter is shared.
            "X-Local-Source-Ip": f"10.{donor // 65_536 % 256}.{donor // 256 % 256}.{donor % 256}",
        }
        started = time.perf_counter()
        answer = self.pipeline.call_api("POST", "/donations", body=body, headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status != 201:
            self.errors += 1
        return elapsed


def label_request(req: Any) -> str:
    """Whose request it is, from its Idempotency-Key: a renewal's (donations.renewals.renewal_key) or a donor's."""
    key = req.header("idempotency-key") or ""
    return RENEWAL if key.startswith("pledge-") else DONOR


# --------------------------------------------------------------------------- run


def run(config: RunConfig, out: TextIO | None = None) -> RunResult:
    out = out or sys.stdout
    with benchmark_process():
        return _run(config, out)


def _run(config: RunConfig, out: TextIO) -> RunResult:
    import boto3

    from simulator.local.events import LambdaContext, scheduled_event

    started_at = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    drain: Drain | None = None
    with pipeline_on_moto_server("donations-renewals") as aws:
        pipeline, stripe, port = aws.pipeline, aws.stripe, aws.moto_port
        try:
            mapping = next(m for m in pipeline.stack.event_sources.values() if m.function_logical_id == "RenewFunction")
            concurrency = mapping.maximum_concurrency or 1000
            customer_id, method_id = saved_card(stripe.url)
            now = datetime.now(UTC).replace(microsecond=0)
            print(f"writing {config.pledges} due pledges into moto at 127.0.0.1:{port}...", file=out, flush=True)
            write_pledges(pipeline, config.pledges, customer_id, method_id, now.date().isoformat())
            stripe.set_latency(CHARGE_ROUTE, config.charge_ms, config.charge_ms * config.jitter)
            stripe.seed(config.seed)
            stripe.per_second_label = label_request

            # 1. The schedule, once, as EventBridge invokes it; its messages held for the feeder.
            schedule = pipeline.handler("ScheduleRenewalsFunction")
            held = HeldMessages()
            schedule.wiring().sqs = held  # its SQS client (a cached property), for this run only
            print("running the schedule-renewals handler...", file=out, flush=True)
            started = time.perf_counter()
            with quiet_functions(NullSink()):
                answer = schedule.lambda_handler(
                    scheduled_event("arn:aws:events:us-east-1:123456789012:rule/renewals", at=now),
                    LambdaContext("schedule-renewals", timeout_seconds=300),
                )
            schedule_seconds = time.perf_counter() - started
            scheduled = int(answer["renewals_scheduled"])

            # 2 and 3. The drain, with donor phases alternating paused / going.
            sqs = boto3.session.Session(region_name=pipeline.clients.region).client(
                "sqs", endpoint_url=pipeline.clients.endpoint_url
            )
            feeder = Feeder(sqs, pipeline.queue_url("RenewalQueue"), held.entries, config.window)
            drain = Drain(pipeline, feeder, concurrency)
            donors = Donors(pipeline)
            print(
                f"draining {scheduled} renewals with {concurrency} pollers (BatchSize {drain.source.batch_size}), "
                f"Stripe charge {config.charge_ms:.0f} ms; at most {config.max_seconds:.0f} s...",
                file=out,
                flush=True,
            )
            with quiet_functions(NullSink()):
                if config.phase_donations:
                    donors.give()  # warm: the charge function's first call builds its clients
                samples, spans, drain_seconds = _alternate(drain, donors, config, out)
            drain.stop()
            left = feeder.remaining + max(0, feeder.sent - drain.taken)
            double_charged, renewed = _audit(pipeline, stripe, now.date().isoformat()[:7])
            parked = _parked(sqs, pipeline.queue_url("RenewalDLQ"))
            # Not renewed (charged once and moved on), and no longer waiting in the queue: dropped by the run.
            skipped = config.pledges - renewed - left
        finally:
            if drain is not None:
                drain.stop()
            stripe.per_second_label = None
    return RunResult(
        config,
        concurrency,
        drain.source.batch_size,
        schedule_seconds,
        scheduled,
        drain_seconds,
        sum(end - start for start, end in spans),
        renewed,
        left,
        drain.failed,
        drain.duplicates,
        parked,
        double_charged,
        skipped,
        stripe.requests_per_second(),
        samples,
        donors.errors,
        machine(),
        started_at,
        spans,
    )


def _alternate(
    drain: Drain, donors: Donors, config: RunConfig, out: TextIO
) -> tuple[dict[str, list[float]], list[tuple[float, float]], float]:
    """Until drained (or the time budget is spent): donors with the run going, then with it paused."""
    samples: dict[str, list[float]] = {"run paused": [], "run going": []}
    spans: list[tuple[float, float]] = []
    started = time.time()
    deadline = time.monotonic() + config.max_seconds
    drain.start()
    going_since = time.time()
    last_note = time.monotonic()
    while not drain.done and time.monotonic() < deadline:
        if not config.phase_donations:
            time.sleep(0.2)
        else:
            time.sleep(0.5)  # the pollers at their pace again before the donors' phase
            samples["run going"] += [donors.give() for _ in range(config.phase_donations)]
            drain.pause()
            spans.append((going_since, time.time()))
            samples["run paused"] += [donors.give() for _ in range(config.phase_donations)]
            drain.resume()
            going_since = time.time()
        if time.monotonic() - last_note >= 15:
            last_note = time.monotonic()
            print(f"  {drain.taken} renewed, {time.time() - started:.0f} s", file=out, flush=True)
    drain.pause()
    spans.append((going_since, time.time()))
    return samples, spans, time.time() - started


def _parked(sqs: Any, dlq_url: str) -> dict[str, int]:
    """The renewal DLQ's messages by failure_reason (read, not deleted; the stack goes with the run)."""
    reasons: dict[str, int] = {}
    for _ in range(100):  # bounded: a run parks none, or a few
        messages = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=600
        ).get("Messages", [])
        if not messages:
            break
        for message in messages:
            reason = message.get("MessageAttributes", {}).get("failure_reason", {}).get("StringValue", "?")
            reasons[reason] = reasons.get(reason, 0) + 1
    return reasons


def _audit(pipeline: Any, stripe: Any, period: str) -> tuple[int, int]:
    """(periods charged more than once, pledges renewed: charged and moved on to the next period)."""
    from donations.pledges import renewal_donation_id

    succeeded: dict[str, int] = {}
    for intent in stripe.state()["payment_intents"]:
        donation = intent["metadata"].get("donation_id", "")
        if intent["status"] == "succeeded" and "pledge_id" in intent["metadata"]:
            succeeded[donation] = succeeded.get(donation, 0) + 1
    doubles = sum(1 for n in succeeded.values() if n > 1)
    pledges = pipeline.clients.session.resource("dynamodb", endpoint_url=pipeline.clients.endpoint_url).Table(
        pipeline.stack.tables["PledgesTable"]
    )
    renewed = 0
    arguments: dict[str, Any] = {}
    while True:
        page = pledges.scan(**arguments)
        for item in page["Items"]:
            charged = succeeded.get(renewal_donation_id(str(item["pledge_id"]), period), 0)
            moved_on = item.get("last_period") == period and int(item.get("renewals", 0)) == 1
            renewed += bool(charged and moved_on)
        if "LastEvaluatedKey" not in page:
            break
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return doubles, renewed


# --------------------------------------------------------------------------- report


def report(result: RunResult, out: TextIO | None = None) -> str:
    out = out or sys.stdout
    config = result.config
    drained = result.left == 0
    print(
        f"\nrenewal run, {result.started_at}; {result.machine}\n"
        f"{config.pledges} due pledges; schedule-renewals handler queued {result.scheduled} in "
        f"{result.schedule_seconds:.1f} s; renew: MaximumConcurrency {result.max_concurrency} x BatchSize "
        f"{result.batch_size}; Stripe {CHARGE_ROUTE} answers after {config.charge_ms:.0f} ms +/-{config.jitter:.0%}\n",
        file=out,
    )
    model = result.model_rate(config.charge_ms)
    both, every = max(result.total_rates(), default=0), result.all_requests_peak()
    table(
        ["renewals' Stripe requests/s", "value", "ceiling", "met"],
        [
            ["template model (conc. x batch x calls / latency)", model, CEILING, verdict(model <= CEILING)],
            ["peak, any second", float(result.peak_rate), CEILING, verdict(result.peak_rate <= CEILING)],
            ["mean while the run was going", result.mean_rate, CEILING, verdict(result.mean_rate <= CEILING)],
            ["donors + renewals, peak second", float(both), ENDPOINT_LIMIT, verdict(both <= ENDPOINT_LIMIT)],
            ["all Stripe requests, peak second", float(every), ACCOUNT_LIMIT, verdict(every <= ACCOUNT_LIMIT)],
        ],
        out=out,
    )
    pace = result.renewed / result.running_seconds if result.running_seconds else math.nan
    print(
        f"\nrenewed {result.renewed} of {config.pledges} in {result.drain_seconds:.0f} s "
        f"({result.running_seconds:.0f} s with the run going, {pace:.1f}/s); left {result.left}; "
        f"deliveries failed and retried {result.retried}, duplicates {result.duplicates}, "
        f"parked in the DLQ {sum(result.parked.values())} {result.parked or ''}; "
        f"double charges {result.double_charged}; skipped {result.skipped}; "
        f"at this pace 10,000 take {10_000 / pace / 60 if pace else math.nan:.0f} min\n",
        file=out,
    )
    ratio50 = ratio99 = math.nan
    if config.phase_donations:
        paused, going = Summary.of(result.donor_ms["run paused"]), Summary.of(result.donor_ms["run going"])
        table(
            ["donor POST /donations (ms)", "n", "p50", "p99", "mean"],
            [[name, s.n, s.p50, s.p99, s.mean] for name, s in (("run paused", paused), ("run going", going))],
            out=out,
        )
        ratio50, ratio99 = going.p50 / paused.p50, going.p99 / paused.p99
        print(f"\ngoing / paused: p50 x{ratio50:.2f}, p99 x{ratio99:.2f}; donor errors {result.donor_errors}", file=out)
    met = (
        drained
        and result.double_charged == 0
        and result.skipped == 0
        and result.peak_rate <= CEILING
        and (not config.phase_donations or ratio50 <= DONOR_RATIO_TARGET)
    )
    summary = (
        f"renewal_run: renewed={result.renewed}/{config.pledges} peak={result.peak_rate}/s "
        f"mean={result.mean_rate:.1f}/s ceiling={CEILING:.0f}/s doubles={result.double_charged} "
        f"skipped={result.skipped} donor p50 x{ratio50:.2f} p99 x{ratio99:.2f} {verdict(met)}"
    )
    print("\n" + summary, file=out, flush=True)
    return summary


def parse_args(argv: Sequence[str] | None) -> RunConfig:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.renewal_run", description=__doc__.split("\n\n")[0])
    defaults = RunConfig()
    parser.add_argument("--pledges", "-n", type=int, default=defaults.pledges, help="due pledges")
    parser.add_argument("--charge-ms", type=float, default=defaults.charge_ms, help="Stripe charge latency")
    parser.add_argument("--window", type=int, default=defaults.window, help="renewal messages in the queue at most")
    parser.add_argument(
        "--phase-donations", type=int, default=defaults.phase_donations, help="donations per phase (0: no donors)"
    )
    parser.add_argument("--max-seconds", type=float, default=defaults.max_seconds, help="time budget of the drain")
    args = parser.parse_args(argv)
    if args.pledges < 1 or args.charge_ms <= 0 or args.window < 1 or args.phase_donations < 0 or args.max_seconds <= 0:
        parser.error("--pledges, --charge-ms, --window and --max-seconds must be positive, --phase-donations >= 0")
    return RunConfig(
        pledges=args.pledges,
        charge_ms=args.charge_ms,
        window=args.window,
        phase_donations=args.phase_donations,
        max_seconds=args.max_seconds,
    )


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    report(run(parse_args(argv), out), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
