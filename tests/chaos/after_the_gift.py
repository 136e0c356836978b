"""The chaos run's last phase: refunds and disputes on the donations it charged, their Stripe events delivered
at least once, duplicated and shuffled (a dispute's end before its start, a smaller refunded sum after a
larger one), through a SendGrid that fails some sends, with receipt-queue messages delivered twice.

What must hold, for every donation touched: the record's refunded sum is Stripe's (``charge.amount_refunded``),
counted once; the donor got one notice per refunded sum at most, the last one stating the final sum, and no
notice at all without a refund; a dispute's recorded status is Stripe's final one, and the money it moved
(its balance transactions and their dispute fee) is Stripe's, counted once whatever order its created,
funds_withdrawn, closed and funds_reinstated events came in.
"""

from __future__ import annotations

import random
from collections import Counter

from donations.models import Donation
from tests.support.world import World

EVENT_TYPES = frozenset(
    {
        "charge.refunded",
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.closed",
        "charge.dispute.funds_reinstated",
    }
)
KINDS = ("refund_twice", "refund_in_full", "dispute_lost", "dispute_won")


class AfterTheGift:
    def __init__(self, world: World, rng: random.Random, *, duplicate_rate: float, sendgrid_fault_rate: float) -> None:
        self.world, self.rng = world, rng
        self.duplicate_rate, self.sendgrid_fault_rate = duplicate_rate, sendgrid_fault_rate
        self.done: dict[str, str] = {}  # donation id -> what happened to it (KINDS)
        self.outcomes: Counter[str] = Counter()

    def run(self, charged: list[str], how_many: int) -> list[str]:
        """Act on ``how_many`` of the ``charged`` donations, deliver, settle; the violations found."""
        first_event = len(self.world.stripe.events)
        for index, donation_id in enumerate(self.rng.sample(sorted(charged), min(how_many, len(charged)))):
            self._act(donation_id, KINDS[index % len(KINDS)])
        events = [e for e in self.world.stripe.events_since(first_event) if e["type"] in EVENT_TYPES]
        events += [e for e in events if self.rng.random() < self.duplicate_rate]
        self.rng.shuffle(events)
        fault = self.world.sendgrid.faults.add(
            "http_error", status=503, rate=self.sendgrid_fault_rate, path_prefix="/v3/mail/send"
        )
        for event in events:
            answer = self.world.deliver_stripe_event(event)
            self.outcomes[str(answer.body.get("outcome")) if answer.status == 200 else f"http_{answer.status}"] += 1
            if self.rng.random() < self.duplicate_rate:
                self.world.duplicate_queued("receipt")
            self.world.deliver("receipt")
        self.world.sendgrid.faults.remove(fault)
        self._settle()
        return self._check()

    def _act(self, donation_id: str, kind: str) -> None:
        [intent] = [i for i in self.world.stripe.intents_for(donation_id) if i["status"] == "succeeded"]
        charge_id, amount = intent["latest_charge"], intent["amount"]
        if kind == "refund_twice":
            self.world.stripe.refund(charge_id, max(1, amount // 3))
            self.world.stripe.refund(charge_id, max(1, amount // 3))
        elif kind == "refund_in_full":
            self.world.stripe.refund(charge_id)
        else:
            dispute = self.world.stripe.dispute(charge_id)
            self.world.stripe.close_dispute(dispute["id"], kind.removeprefix("dispute_"))
        self.done[donation_id] = kind

    def _settle(self, rounds: int = 60) -> None:
        for _ in range(rounds):
            self.world.expire_backoffs()
            if not self.world.deliver("receipt").received:
                return

    def _check(self) -> list[str]:
        violations: list[str] = []
        for donation_id, kind in self.done.items():
            violations += [f"{donation_id} ({kind}): {problem}" for problem in self._problems(donation_id, kind)]
        return violations

    def _problems(self, donation_id: str, kind: str) -> list[str]:
        record = self.world.record(donation_id)
        [intent] = [i for i in self.world.stripe.intents_for(donation_id) if i["status"] == "succeeded"]
        charge = self.world.stripe.charge(intent["latest_charge"])
        notices = [
            m["dynamic_template_data"]["amount_refunded_display"]
            for m in self.world.sendgrid.outbox_for(donation_id)
            if m["dynamic_template_data"].get("refund_notice")
        ]
        problems = []
        if record.amount_refunded != charge["amount_refunded"]:
            problems.append(f"recorded {record.amount_refunded} refunded, Stripe {charge['amount_refunded']}")
        if len(notices) != len(set(notices)):
            problems.append(f"a second notice for the same sum: {notices}")
        refunds = len(self.world.stripe.refunds_for(intent["id"]))
        if len(notices) > refunds or (refunds and record.refund_notice_amount != charge["amount_refunded"]):
            problems.append(f"{len(notices)} notices for {refunds} refunds, told {record.refund_notice_amount}")
        if kind.startswith("dispute"):
            problems += self._dispute_problems(record, intent["id"], kind)
        return problems

    def _dispute_problems(self, record: Donation, payment_intent_id: str, kind: str) -> list[str]:
        [dispute] = self.world.stripe.disputes_for(payment_intent_id)
        moved = dispute["balance_transactions"]
        problems = []
        if record.dispute_status != kind.removeprefix("dispute_"):
            problems.append(f"dispute recorded as {record.dispute_status}")
        if (record.dispute_balance_transactions, record.dispute_fee) != (len(moved), sum(bt["fee"] for bt in moved)):
            problems.append(f"dispute money recorded {record.dispute_balance_transactions}, fee {record.dispute_fee}")
        return problems
