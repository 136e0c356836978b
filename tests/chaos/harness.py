"""Drive many donations through the real handlers under random faults, then check nothing was lost or doubled.

Faults while donations are made and delivered: Stripe and SendGrid timeouts, slow answers, 5xx,
429 and connection resets (before the provider acted, and after it acted with the answer lost),
Stripe's stored 500s (saved under the idempotency key, replayed to every retry; some leave a
PaymentIntent the retry cancels before charging the next attempt); Stripe's payment_intent.*
webhooks delivered at least once, shuffled, some in the middle of a charge; duplicate
SQS deliveries; the charge function dying between Stripe's confirmation and the record update,
or between the record update and publishing; consumers dying in the middle of a batch. Then the
faults stop and the system is left to recover the way it would in production: backoffs pass,
the reconciler runs, operators redrive the DLQs. The invariants are checked on the emulators'
own records (charges per donation, mails in the outbox), not on what the pipeline believes.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from donations.models import DonationStatus, StepStatus
from donations.webhooks import HANDLED_EVENT_TYPES, verify_event
from donations_ops.redrive import copy_messages
from simulator.emulators.stripe import encode_event, sign_payload
from simulator.local.alarms import AlarmEvaluator
from simulator.local.delivery import BatchResult, EventSource, deliver_batch
from simulator.local.events import LambdaContext, sqs_event
from simulator.local.metrics import QueueMetrics
from tests.chaos.after_the_gift import AfterTheGift
from tests.support.keys import a_key
from tests.support.world import CONSUMERS, QUEUES, World

PAYMENT_METHODS = [
    ("pm_card_visa", 0.55),
    ("pm_card_mastercard", 0.25),
    ("pm_card_chargeDeclinedInsufficientFunds", 0.1),
    ("pm_card_chargeDeclined", 0.1),
]


class ChargeCrash(BaseException):
    """The charge function's process dying: no except-block of ours runs."""


@dataclass
class ChaosConfig:
    donations: int = 200
    seed: int = 7
    fault_rate: float = 0.12  # per provider call, split over the fault kinds
    duplicate_rate: float = 0.1  # a delivered message is delivered again
    charge_crash_rate: float = 0.05  # per crash point
    consumer_crash_rate: float = 0.15  # per batch delivery
    save_card_rate: float = 0.6
    donor_attempts: int = 3  # a donor seeing 503 retries with the same key this many times in all
    abandon_rate: float = 0.5  # after the function died under them, this share of donors closes the tab
    # Stored 500s that left a PaymentIntent which could still be confirmed (the donor's retry cancels it
    # before charging the next attempt): this share of the stored 500s that created nothing.
    leftover_rate: float = 0.6
    # Stripe's payment_intent.* events, delivered at least once and out of order. Every spent attempt's
    # cancel and move to the next attempt, and this share of the charges about to be recorded, see
    # every event so far delivered right then (rarer there: the run's time goes into deliveries).
    webhook_midcharge_rate: float = 0.1
    # After the run: this many charged donations refunded (twice in part, or in full) or disputed (lost, won).
    refunds_and_disputes: int = 24


@dataclass
class ChaosReport:
    donations: int = 0
    faults: int = 0
    charge_crashes: int = 0
    consumer_crashes: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    told: Counter[str] = field(default_factory=Counter)
    double_charges: int = 0
    double_receipts: int = 0
    lost: int = 0
    not_recorded: int = 0  # Stripe holds their money, the record says otherwise
    webhooks: Counter[str] = field(default_factory=Counter)  # outcomes of the delivered events
    leftovers: int = 0
    after_the_gift: Counter[str] = field(default_factory=Counter)  # what was done, and the events' outcomes
    violations: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"donations={self.donations} faults={self.faults} charge_crashes={self.charge_crashes} "
            f"consumer_crashes={self.consumer_crashes} duplicates={self.duplicates} dead_lettered={self.dead_lettered} "
            f"told={dict(sorted(self.told.items()))} double_charges={self.double_charges} "
            f"double_receipts={self.double_receipts} lost={self.lost} not_recorded={self.not_recorded} "
            f"leftovers={self.leftovers} webhooks={dict(sorted(self.webhooks.items()))} "
            f"after_the_gift={dict(sorted(self.after_the_gift.items()))} "
            f"violations={len(self.violations)}"
        )


class _CrashingStore:
    """Our own store port, dying between Stripe's confirmation and the record update (crash point A)."""

    def __init__(self, real: Any, run: ChaosRun) -> None:
        self._real, self._run = real, run

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def mark_charged(self, *args: Any, **kwargs: Any) -> Any:
        self._run.maybe_crash_charge("after_stripe_before_record")
        self._run.webhooks.maybe_now(self._run.config.webhook_midcharge_rate)
        return self._real.mark_charged(*args, **kwargs)

    def next_charge_attempt(self, *args: Any, **kwargs: Any) -> Any:
        self._run.webhooks.maybe_now()
        return self._real.next_charge_attempt(*args, **kwargs)


class _InterleavingPayments:
    """Our own payments port, with Stripe's events delivered right after it canceled a spent attempt."""

    def __init__(self, real: Any, run: ChaosRun) -> None:
        self._real, self._run = real, run

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def cancel(self, *args: Any, **kwargs: Any) -> Any:
        canceled = self._real.cancel(*args, **kwargs)
        self._run.webhooks.maybe_now()
        return canceled


class _CrashingPublisher:
    """Our own publisher port, dying between the record update and publishing (crash point B)."""

    def __init__(self, real: Any, run: ChaosRun) -> None:
        self._real, self._run = real, run

    def publish(self, *args: Any, **kwargs: Any) -> Any:
        self._run.maybe_crash_charge("after_record_before_publish")
        return self._real.publish(*args, **kwargs)


def install_provider_faults(world: World, rate: float) -> None:
    """Stripe and SendGrid faults at ``rate`` per provider call, split over the fault kinds."""
    stripe, sendgrid = world.stripe.faults, world.sendgrid.faults
    # Timeouts hold the connection a little longer than the functions' 1 s provider timeout; slow
    # answers come within it. Stored errors are 500s Stripe saved under the request's idempotency
    # key, before or after it acted: replaying that key returns them for 24 h.
    stripe_faults: list[tuple[str, dict[str, Any]]] = [
        ("http_error", {"status": 500}),
        ("http_error", {"status": 503, "phase": "after"}),
        ("stored_error", {"status": 500}),
        ("stored_error", {"status": 500, "phase": "after"}),
        ("rate_limit", {}),
        ("lock_timeout", {}),
        ("reset", {}),
        ("reset", {"phase": "after"}),
        ("timeout", {"latency_ms": 1500}),
        ("latency", {"latency_ms": 600, "jitter_ms": 300}),
    ]
    for kind, extra in stripe_faults:
        stripe.add(kind, rate=rate / len(stripe_faults), path_prefix="/v1/", **extra)
    # SendGrid faults before it accepted the mail: after-acceptance losses are the documented
    # at-least-once window (no idempotency key exists) and have their own test. So a slow SendGrid
    # is one that holds the request without accepting it ("timeout"): a slow answer that arrives
    # after the 1 s timeout would be such a loss (tests/integration/test_provider_fidelity.py has
    # the slow send bounded by the time budget).
    sendgrid_faults: list[tuple[str, dict[str, Any]]] = [
        ("http_error", {"status": 500}),
        ("http_error", {"status": 503}),
        ("rate_limit", {}),
        ("reset", {}),
        ("timeout", {"latency_ms": 1500}),
    ]
    for kind, extra in sendgrid_faults:
        sendgrid.add(kind, rate=rate / len(sendgrid_faults), path_prefix="/v3/mail/send", **extra)


class ChaosRun:
    def __init__(
        self, world: World, config: ChaosConfig, *, before_recovery: Callable[[ChaosRun], None] | None = None
    ) -> None:
        self.world = world
        self.config = config
        # Called once the faults stopped, before backoffs pass, the reconciler runs and DLQs are redriven.
        self.before_recovery = before_recovery
        self.rng = random.Random(config.seed)
        self.report = ChaosReport(donations=config.donations)
        self._alarmed: set[str] = set()
        self._dlqs_used: set[str] = set()
        self._outage_fault: str | None = None
        self.clock = datetime.now(UTC)
        self.webhooks = StripeEvents(world, self.rng, config, self.report)

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> ChaosReport:
        world = self.world
        world.reset()
        world.stripe.seed(self.config.seed)
        world.sendgrid.seed(self.config.seed + 1)
        self._install_faults()
        charge = world.pipeline.handler("ChargeFunction").wiring()
        real_store, real_publisher = charge.store, charge.publisher
        charge.store, charge.publisher = _CrashingStore(real_store, self), _CrashingPublisher(real_publisher, self)
        try:
            with world.charge_ports(payments=lambda real: _InterleavingPayments(real, self)):
                answers = self._donate_all()
            self._deliver_under_chaos()
        finally:
            charge.store, charge.publisher = real_store, real_publisher
            self.report.faults = self._faults_fired()
            world.stripe.faults.clear()
            world.sendgrid.faults.clear()
        if self.before_recovery is not None:
            self.before_recovery(self)
        self._recover()
        self._check(answers)
        self._after_the_gift(answers)
        return self.report

    def _after_the_gift(self, answers: dict[str, dict[str, Any]]) -> None:
        """Refunds and disputes on some charged donations, their events twice and out of order (after_the_gift)."""
        ids = [answer["donation_id"] or _donation_id(key) for key, answer in answers.items()]
        charged = [d for d in ids if self.world.stripe.charges_for(d) == 1]
        phase = AfterTheGift(self.world, self.rng, duplicate_rate=0.3, sendgrid_fault_rate=self.config.fault_rate)
        self.report.violations += phase.run(charged, self.config.refunds_and_disputes)
        self.report.after_the_gift = Counter(phase.done.values()) + phase.outcomes

    def maybe_crash_charge(self, point: str) -> None:
        if self.rng.random() < self.config.charge_crash_rate:
            self.report.charge_crashes += 1
            raise ChargeCrash(point)

    # -- faults ----------------------------------------------------------------------------------

    def _install_faults(self) -> None:
        install_provider_faults(self.world, self.config.fault_rate)

    def _faults_fired(self) -> int:
        return sum(
            f["fired"] for emulator in (self.world.stripe, self.world.sendgrid) for f in emulator.faults.list_faults()
        )

    # -- donors ----------------------------------------------------------------------------------

    def _donate_all(self) -> dict[str, dict[str, Any]]:
        answers: dict[str, dict[str, Any]] = {}
        methods, weights = zip(*PAYMENT_METHODS, strict=True)
        for number in range(self.config.donations):
            key = a_key(f"chaos-{self.config.seed}-{number}")
            body = {
                "amount": self.rng.randrange(100, 100_000),
                "currency": self.rng.choice(["usd", "eur", "gbp"]),
                "email": f"donor{number}@example.org",
                "name": f"Donor {number}",
                "payment_method": self.rng.choices(methods, weights)[0],
                "save_card": self.rng.random() < self.config.save_card_rate,
            }
            answers[key] = {"body": body, **self._donate(key, body)}
            self.report.told[answers[key]["told"]] += 1
            self._sendgrid_outage(number)
            if number % 10 == 9:
                self._deliver_round()
        return answers

    def _donate(self, key: str, body: dict[str, Any]) -> dict[str, Any]:
        """A donor's browser: retries a 503 or a dead connection with the same key, then gives up."""
        for _ in range(self.config.donor_attempts):
            try:
                answer = self.world.post(body, key=key)
            except ChargeCrash:
                # The function died: API Gateway answers 502. Some donors give up (the reconciler must
                # finish their donation); the others retry once Powertools' in-progress record, which
                # outlives the dead invocation until its timeout, has expired.
                if self.rng.random() < self.config.abandon_rate:
                    break
                self.world.expire_in_progress_requests()
                continue
            if answer.status == 201:
                return {"told": "succeeded", "donation_id": answer.body["donation_id"]}
            if answer.status == 402:
                return {"told": "declined", "donation_id": answer.body.get("donation_id")}
            if answer.status not in (502, 503):
                return {"told": f"refused_{answer.status}", "donation_id": None}
            self._after_a_stored_500(key)
        return {"told": "unknown", "donation_id": None}

    def _after_a_stored_500(self, key: str) -> None:
        """A spent attempt: it may have left a PaymentIntent that could still be confirmed, and the
        donor's browser waits out Retry-After (time passes) before it retries."""
        record = self.world.wiring.store.get(_donation_id(key))
        if record is None or not record.charge_attempt_spent:
            return
        attempt = str(record.charge_attempt)
        made = [
            i for i in self.world.stripe.intents_for(record.donation_id) if i["metadata"]["charge_attempt"] == attempt
        ]
        if not made and self.rng.random() < self.config.leftover_rate:
            self.report.leftovers += 1
            self.world.stripe.leave_unconfirmed_intent(record.amount, record.currency, record.donation_id, attempt)
        self.world.age_charge_attempt(record.donation_id, 31)

    # -- delivery --------------------------------------------------------------------------------

    def _deliver_under_chaos(self, rounds: int = 30) -> None:
        for _ in range(rounds):
            if not self._deliver_round():
                self.world.expire_backoffs()

    def _sendgrid_outage(self, number: int) -> None:
        """SendGrid is down for the middle fifth of the donations: receipts exhaust their retries."""
        start, end = (self.config.donations * 2) // 5, (self.config.donations * 3) // 5
        if number == start:
            self._outage_fault = self.world.sendgrid.faults.add("http_error", status=503)
        elif number == end and self._outage_fault:
            for _ in range(self.world.settings.max_receive_count + 1):  # the outage outlasts every retry
                self._deliver_round()
                self.world.expire_backoffs()
            self.world.sendgrid.faults.remove(self._outage_fault)
            self._outage_fault = None

    def _deliver_round(self) -> int:
        self.webhooks.deliver_all()
        delivered = 0
        for name, logical_id in CONSUMERS.items():
            source = next(s for s in self.world.event_sources() if s.name == logical_id)
            result = self._deliver_with_faults(name, source)
            delivered += result.received
        self._watch_alarms()
        return delivered

    def _deliver_with_faults(self, name: str, source: EventSource) -> BatchResult:
        world = self.world
        if self.rng.random() < self.config.consumer_crash_rate:
            return self._crash_mid_batch(name, source)
        result = world.track(deliver_batch(world.sqs, source))
        for message in result.messages:
            if message["MessageId"] not in result.failed_ids and self.rng.random() < self.config.duplicate_rate:
                self.report.duplicates += 1
                world.send(name, message["Body"], message.get("MessageAttributes", {}))
        return result

    def _crash_mid_batch(self, name: str, source: EventSource) -> BatchResult:
        """Process the first records of a batch, then die: nothing of the batch is deleted."""
        world = self.world
        messages = world.sqs.receive_message(
            QueueUrl=source.queue_url,
            MaxNumberOfMessages=source.batch_size,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return BatchResult(source.name)
        self.report.consumer_crashes += 1
        done = messages[: self.rng.randrange(0, len(messages))]
        if done:
            source.handler(sqs_event(done, source.queue_arn), None)
        result = BatchResult(source.name, len(messages), [m["MessageId"] for m in messages], "crash", messages)
        return world.track(result)

    # -- recovery --------------------------------------------------------------------------------

    def _recover(self) -> None:
        """Faults are over: backoffs pass, the reconciler runs, operators redrive the DLQs."""
        self.webhooks.deliver_all()
        # Runs on the schedule just after the donations: their sweeps read the run's stretch of time.
        settings, done = self.world.settings, datetime.now(UTC)
        interval, grace = (
            timedelta(seconds=settings.reconcile_interval_seconds),
            timedelta(seconds=settings.reconcile_grace_seconds),
        )
        scheduled = self.clock + interval + grace
        while scheduled - grace - interval <= done:
            self._settle_queues()
            self.world.reconcile(now=scheduled)
            scheduled += interval
        self.clock = scheduled
        # The last pass is a day later: past Stripe's idempotency window, when the reconciler may
        # conclude that a donation Stripe has no payment for was never charged.
        for hours in (1, 1, 25):
            self._settle_queues()
            self.clock += timedelta(hours=hours)
            self.world.reconcile(now=self.clock)
            self._settle_queues()
            self._watch_alarms()
            for name in ("tokenize", "receipt"):
                dlq, source = self.world.queue_url(f"{name}_dlq"), self.world.queue_url(name)
                copy_messages(self.world.sqs, dlq_url=dlq, destination_url=source)
        self._settle_queues()
        self._watch_alarms()

    def _settle_queues(self, rounds: int = 60) -> None:
        for _ in range(rounds):
            self.world.expire_backoffs()
            if not any(self.world.deliver(name).received for name in CONSUMERS):
                return

    def _watch_alarms(self) -> None:
        """Sample queue metrics and evaluate the template's alarms, as CloudWatch would."""
        world = self.world
        clients = world.pipeline.clients
        QueueMetrics(clients("sqs"), clients("cloudwatch"), list(world.pipeline.stack.queues.values())).publish()
        evaluator = AlarmEvaluator(clients("cloudwatch"), clients("sns"), time_scale=60)
        for transition in evaluator.evaluate():
            if transition.new_state == "ALARM":
                self._alarmed.add(transition.alarm_name)
        for name in ("tokenize_dlq", "receipt_dlq"):
            attributes = world.sqs.get_queue_attributes(
                QueueUrl=world.queue_url(name), AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
            if int(attributes["ApproximateNumberOfMessages"]):
                self._dlqs_used.add(name)
                self.report.dead_lettered = max(
                    self.report.dead_lettered, int(attributes["ApproximateNumberOfMessages"])
                )

    # -- invariants ------------------------------------------------------------------------------

    def _check(self, answers: dict[str, dict[str, Any]]) -> None:
        world, report = self.world, self.report
        for key, answer in answers.items():
            donation_id = answer["donation_id"] or _donation_id(key)
            record = world.wiring.store.get(donation_id)
            charges = world.stripe.charges_for(donation_id)
            mails = len(world.sendgrid.outbox_for(donation_id))
            told = answer["told"]
            if charges > 1:
                report.double_charges += 1
                report.violations.append(f"{donation_id}: charged {charges} times")
            if mails > 1:
                report.double_receipts += 1
                report.violations.append(f"{donation_id}: {mails} receipts")
            if told == "succeeded" and charges != 1:
                report.lost += 1
                report.violations.append(f"{donation_id}: told succeeded, {charges} charges")
            if (told in ("declined",) or told.startswith("refused")) and charges:
                report.violations.append(f"{donation_id}: told {told} but charged")
            if charges and (record is None or record.status is not DonationStatus.SUCCEEDED):
                report.not_recorded += 1
            if charges == 1:
                problem = _incomplete(record, mails, answer["body"]["save_card"])
                if problem:
                    report.lost += 1
                    report.violations.append(f"{donation_id}: charged but {problem}")
            elif told == "unknown" and record is not None and record.status not in _NOT_CHARGED:
                report.violations.append(f"{donation_id}: no charge, but recorded {record.status.value}")
        for name in QUEUES:
            left = world.queued(name)
            if left:
                report.violations.append(f"{name}: {len(left)} messages left")
        for name in self._dlqs_used:
            suffix = "tokenize-dlq-not-empty" if name == "tokenize_dlq" else "receipt-dlq-not-empty"
            if not any(alarm.endswith(suffix) for alarm in self._alarmed):
                report.violations.append(f"{name} received messages but its alarm never fired")


_NOT_CHARGED = (DonationStatus.FAILED, DonationStatus.DECLINED, DonationStatus.CANCELED)


def _incomplete(record: Any, mails: int, save_card: bool) -> str | None:
    if record is None:
        return "no record"
    if record.status is not DonationStatus.SUCCEEDED:
        return f"status {record.status.value}"
    if mails != 1 or record.receipt_status is not StepStatus.DONE:
        return f"{mails} receipts, receipt {record.receipt_status.value}"
    if save_card and record.card_status is not StepStatus.DONE:
        return f"card {record.card_status.value}"
    return None


def _donation_id(key: str) -> str:
    from tests.support.keys import IDENTIFIERS

    return IDENTIFIERS.donation_id(key)


class StripeEvents:
    """Stripe's webhook: every payment_intent.* event the emulator recorded, delivered to the webhook
    function at least once (duplicates at the run's duplicate rate) and in shuffled order; outside the
    charge through the API route, inside it (at its riskiest steps) through the function's own steps."""

    TYPES = frozenset(t for t in HANDLED_EVENT_TYPES if t.startswith("payment_intent."))

    def __init__(self, world: World, rng: random.Random, config: ChaosConfig, report: ChaosReport) -> None:
        self.world, self.rng, self.config, self.report = world, rng, config, report
        self._next = 0  # events before this index were delivered

    def deliver_all(self) -> None:
        for event in self._undelivered():
            self.report.webhooks[self._through_the_route(event)] += 1

    def maybe_now(self, rate: float = 1.0) -> None:
        """At one of the charge's riskiest steps: Stripe's events so far arrive right now (at ``rate``)."""
        if self.rng.random() >= rate:
            return
        events = self._undelivered()
        outcomes: list[str] = []
        worker = threading.Thread(target=lambda: outcomes.extend(self._beside_the_charge(e) for e in events))
        worker.start()
        worker.join(timeout=60)
        for outcome in outcomes:
            self.report.webhooks[f"midcharge_{outcome}"] += 1

    def _undelivered(self) -> list[dict[str, Any]]:
        events = self.world.stripe.events_since(self._next)
        self._next += len(events)
        wanted = [e for e in events if e["type"] in self.TYPES]
        wanted += [e for e in wanted if self.rng.random() < self.config.duplicate_rate]
        self.rng.shuffle(wanted)
        return wanted

    def _through_the_route(self, event: dict[str, Any]) -> str:
        answer = self.world.deliver_stripe_event(event)
        return str(answer.body.get("outcome")) if answer.status == 200 else f"http_{answer.status}"

    def _beside_the_charge(self, event: dict[str, Any]) -> str:
        # The local API runs one function at a time (simulator.local.pipeline): the webhook function's
        # own steps for a signed event, as tests/integration/test_money_safety.webhook_applies.
        module = self.world.pipeline.handler("StripeWebhookFunction")
        secret = self.world.pipeline.providers.stripe_webhook_secret
        payload = encode_event(event)
        verified = verify_event(payload.decode(), sign_payload(payload, secret), secret)
        module.idempotency_config.register_lambda_context(LambdaContext("stripe-webhook", timeout_seconds=10))
        try:
            return str(module.apply_once()(event=verified.model_dump(mode="json"))["outcome"])
        except Exception as error:  # a 409 the route would answer: Stripe retries it later
            return type(error).__name__


def timed(run: ChaosRun) -> tuple[ChaosReport, float]:
    started = time.perf_counter()
    report = run.run()
    return report, time.perf_counter() - started


def as_json(report: ChaosReport) -> str:
    counters = {"told": dict(report.told), "webhooks": dict(report.webhooks)}
    return json.dumps({**report.__dict__, **counters, "after_the_gift": dict(report.after_the_gift)}, indent=2)
