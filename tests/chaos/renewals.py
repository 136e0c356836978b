"""Monthly renewals through the real handlers (schedule and renew) under random faults and crashes, for
three months with dunning, then checked on the emulators' own records: no period charged twice or
skipped, no receipt doubled or lost, every failing card through its tries to lapsed.

Faults: Stripe's and SendGrid's (tests/chaos/harness.install_provider_faults: timeouts, 5xx, 429,
resets before and after acting, stored 500s); the renew function dying before or after any call to
its ports (the pledge store, the donation store, Stripe, the receipt queue); consumers dying in the
middle of a batch; SQS delivering messages twice; renewal messages lost; schedule runs replayed. Then
each month the faults stop and production's recovery runs: backoffs pass, later schedule runs queue
again what was lost, operators redrive the renewal and receipt DLQs, the reconciler runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe

from donations.models import DonationStatus, StepStatus
from donations.pledges import Pledge, PledgeState, pledge_from_donation, renewal_donation_id
from donations_ops.redrive import copy_messages
from simulator.local.delivery import BatchResult, deliver_batch
from simulator.local.events import scheduled_event, sqs_event
from tests.chaos.harness import install_provider_faults
from tests.support.keys import a_key
from tests.support.world import CONSUMERS, DONATION, World

MONTHS = ("2027-01", "2027-02", "2027-03")
DAY = 10
# Each month's schedule runs: the charge day (replayed an hour later), the retries' days, a day between.
RUNS = (("10", "06:00"), ("10", "07:00"), ("12", "06:00"), ("13", "06:00"), ("17", "06:00"))
# Stripe's test cards (docs.stripe.com/testing): every charge declined (generic_decline, soft), lost card (hard).
CARDS = {"good": None, "soft": "pm_card_chargeCustomerFail", "hard": "pm_card_chargeDeclinedLostCard"}
PORTS = ("pledges", "store", "charges", "publisher")
_EXPECTED = {"good": (PledgeState.ACTIVE, 3), "soft": (PledgeState.LAPSED, 0), "hard": (PledgeState.LAPSED, 0)}


class RenewCrash(RuntimeError):
    """The renew function dying at one of its port calls while handling a record: the record is not
    acknowledged and SQS delivers it again (a whole invocation dying is the consumer crash)."""


@dataclass
class RenewalChaosConfig:
    seed: int = 11
    pledges: dict[str, int] = field(default_factory=lambda: {"good": 8, "soft": 3, "hard": 2})
    fault_rate: float = 0.2
    crash_rate: float = 0.04  # per port call of the renew function, before or after it acts
    consumer_crash_rate: float = 0.15
    duplicate_rate: float = 0.1
    lost_rate: float = 0.1  # a renewal message lost before delivery


@dataclass
class RenewalChaosReport:
    renew_crashes: int = 0
    consumer_crashes: int = 0
    duplicates: int = 0
    lost_messages: int = 0
    faults: int = 0
    periods_charged: int = 0
    double_charges: int = 0
    skipped: int = 0
    double_receipts: int = 0
    lost: int = 0
    states: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return " ".join(f"{name}={value}" for name, value in self.__dict__.items() if name != "violations")


class _Crashing:
    """A port of the renew function that dies, at the run's rate, just before or just after a call acts."""

    def __init__(self, real: Any, chaos: RenewalChaos) -> None:
        self._real, self._chaos = real, chaos

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._real, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self._chaos.maybe_crash()
            result = attribute(*args, **kwargs)
            self._chaos.maybe_crash()
            return result

        return call


class RenewalChaos:
    def __init__(self, world: World, config: RenewalChaosConfig) -> None:
        self.world, self.config = world, config
        self.rng = random.Random(config.seed)
        self.report = RenewalChaosReport()
        self.kinds: dict[str, str] = {}  # pledge id -> good, soft or hard

    def maybe_crash(self) -> None:
        if self.rng.random() < self.config.crash_rate:
            self.report.renew_crashes += 1
            raise RenewCrash

    def run(self) -> RenewalChaosReport:
        self.world.reset()
        self.world.stripe.seed(self.config.seed)
        self._make_pledges()
        module = self.world.pipeline.handler("RenewFunction")
        original = module.renew

        def renew_under_chaos(message: Any, **ports: Any) -> Any:
            crashing = {name: _Crashing(port, self) for name, port in ports.items() if name in PORTS}
            return original(message, **{**ports, **crashing})

        for month in MONTHS:
            install_provider_faults(self.world, self.config.fault_rate)
            module.renew = renew_under_chaos
            try:
                for day, time in RUNS:
                    self._schedule(f"{month}-{day}T{time}:00+00:00")
                    self._deliver_under_chaos()
            finally:
                module.renew = original
                self.report.faults += sum(
                    f["fired"] for e in (self.world.stripe, self.world.sendgrid) for f in e.faults.list_faults()
                )
                self.world.stripe.faults.clear()
                self.world.sendgrid.faults.clear()
            self._recover(month)
        self._check()
        return self.report

    # -- setup -----------------------------------------------------------------------------------

    def _make_pledges(self) -> None:
        """One donor gives with save_card; pledges on that Customer, each on its card kind."""
        answer = self.world.post({**DONATION, "save_card": True}, key=a_key(f"renewal-chaos-{self.config.seed}"))
        assert answer.status == 201, answer.body
        self.world.drain()
        donation = self.world.record(answer.body["donation_id"])
        base = pledge_from_donation(donation, DAY, datetime(2026, 12, 5, tzinfo=UTC).date())
        # The account's own secret key, as the Dashboard would: the functions' restricted keys may not attach.
        account = stripe.StripeClient("sk_test_local_emulator", base_addresses={"api": self.world.stripe.url})
        for kind, count in self.config.pledges.items():
            for number in range(count):
                card = CARDS[kind]
                method = (
                    base.payment_method_id
                    if card is None
                    else account.v1.payment_methods.attach(card, params={"customer": base.customer_id}).id
                )
                pledge = pledge_from_donation(donation, DAY, datetime(2026, 12, 5, tzinfo=UTC).date())
                # Many pledges on one first gift (whose own pledge id derives from it): each an id of its own.
                own_id = "pl_" + hashlib.sha256(f"{self.config.seed}:{kind}:{number}".encode()).hexdigest()[:24]
                pledge = pledge.model_copy(update={"payment_method_id": method, "pledge_id": own_id})
                self.world.wiring.pledges.create(pledge)
                self.kinds[pledge.pledge_id] = kind

    # -- chaos -----------------------------------------------------------------------------------

    def _schedule(self, at: str) -> None:
        moment = datetime.fromisoformat(at)
        event = scheduled_event("arn:aws:events:us-east-1:123456789012:rule/renewals", at=moment)
        self.world.pipeline.invoke("ScheduleRenewalsFunction", event)

    def _deliver_under_chaos(self, rounds: int = 12) -> None:
        for _ in range(rounds):
            self._lose_some()
            received = sum(self._deliver_with_faults(name) for name in CONSUMERS)
            if not received:
                self.world.expire_backoffs()

    def _lose_some(self) -> None:
        for message in self.world.queued("renewal"):
            if self.rng.random() < self.config.lost_rate:
                self.report.lost_messages += 1
                self.world.sqs.delete_message(
                    QueueUrl=self.world.queue_url("renewal"), ReceiptHandle=message["ReceiptHandle"]
                )

    def _deliver_with_faults(self, name: str) -> int:
        world = self.world
        source = next(s for s in world.event_sources() if s.name == CONSUMERS[name])
        if self.rng.random() < self.config.consumer_crash_rate:
            messages = world.sqs.receive_message(
                QueueUrl=source.queue_url, MaxNumberOfMessages=source.batch_size, AttributeNames=["All"]
            ).get("Messages", [])
            if messages:
                self.report.consumer_crashes += 1
                done = messages[: self.rng.randrange(0, len(messages))]
                if done:
                    self._handle(source, done)
                # Nothing of the batch was deleted: it comes back after its visibility timeout (backoffs pass)
                world.track(
                    BatchResult(source.name, len(messages), [m["MessageId"] for m in messages], "crash", messages)
                )
            return len(messages)
        result = world.track(deliver_batch(world.sqs, source))
        for message in result.messages:
            if message["MessageId"] not in result.failed_ids and self.rng.random() < self.config.duplicate_rate:
                self.report.duplicates += 1
                world.send(name, message["Body"], message.get("MessageAttributes", {}))
        return result.received

    @staticmethod
    def _handle(source: Any, messages: list[dict[str, Any]]) -> None:
        with contextlib.suppress(Exception):  # a batch whose every record failed raises
            source.handler(sqs_event(messages, source.queue_arn), None)

    # -- recovery --------------------------------------------------------------------------------

    def _recover(self, month: str) -> None:
        """The faults are over: later runs queue again what was lost (after 6 hours), backoffs pass,
        operators redrive the DLQs, the reconciler runs."""
        last = datetime.fromisoformat(f"{month}-{RUNS[-1][0]}T{RUNS[-1][1]}:00+00:00")
        for step in range(1, 8):
            self._settle()
            for name in ("renewal", "receipt", "tokenize"):
                dlq, source = self.world.queue_url(f"{name}_dlq"), self.world.queue_url(name)
                copy_messages(self.world.sqs, dlq_url=dlq, destination_url=source)
            self._schedule((last + timedelta(hours=7 * step)).isoformat())
            self._settle()
        self.world.reconcile(now=datetime.now(UTC) + timedelta(minutes=10))
        self._settle()

    def _settle(self, rounds: int = 40) -> None:
        for _ in range(rounds):
            self.world.expire_backoffs()
            if not any(self.world.deliver(name).received for name in CONSUMERS):
                return

    # -- invariants (the emulators' records, not the pipeline's beliefs) ---------------------------

    def _check(self) -> None:
        world, report = self.world, self.report
        for pledge_id, kind in self.kinds.items():
            pledge = world.wiring.pledges.get(pledge_id)
            assert pledge is not None
            report.states[f"{kind}:{pledge.state.value}"] += 1
            for month in MONTHS:
                self._check_period(pledge, kind, month)
            expected = {
                "good": (PledgeState.ACTIVE, 3),
                "soft": (PledgeState.LAPSED, 0),
                "hard": (PledgeState.LAPSED, 0),
            }
            if (pledge.state, pledge.renewals) != expected[kind]:
                report.violations.append(f"{pledge_id} ({kind}): {pledge.state.value}, {pledge.renewals} renewals")
        for name in CONSUMERS:
            for queue in (name, f"{name}_dlq"):
                left = world.queued(queue)
                if left:
                    report.violations.append(f"{queue}: {len(left)} messages left")

    def _check_period(self, pledge: Pledge, kind: str, month: str) -> None:
        world, report = self.world, self.report
        charged = 0
        for renewal_try in (1, 2, 3):
            donation_id = renewal_donation_id(pledge.pledge_id, month, renewal_try)
            charges = world.stripe.charges_for(donation_id)
            mails = len(world.sendgrid.outbox_for(donation_id))
            charged += charges
            if mails > 1:
                report.double_receipts += 1
                report.violations.append(f"{donation_id}: {mails} receipts")
            if charges == 1:
                record = world.wiring.store.get(donation_id)
                if record is None or record.status is not DonationStatus.SUCCEEDED or mails != 1:
                    report.lost += 1
                    report.violations.append(
                        f"{donation_id}: charged, recorded {record and record.status}, {mails} mails"
                    )
                elif record.receipt_status is not StepStatus.DONE:
                    report.lost += 1
                    report.violations.append(f"{donation_id}: charged, receipt {record.receipt_status.value}")
        report.periods_charged += charged
        if charged > 1:
            report.double_charges += 1
            report.violations.append(f"{pledge.pledge_id} {month}: charged {charged} times")
        if kind == "good" and charged == 0:
            report.skipped += 1
            report.violations.append(f"{pledge.pledge_id} {month}: skipped")
        if kind != "good" and charged:
            report.violations.append(f"{pledge.pledge_id} {month}: a {kind} card charged")
