"""In-memory fakes of the core's ports (donations.ports), for the unit tier: no AWS, no provider, no socket.

``FakeStore`` keeps each conditional write's condition as DonationStore states it (a lost condition
raises ConditionFailed); tests/integration/test_store_contract.py runs the same scenarios against
both, so the fake cannot drift from the real store. The others are scripted: tell them what the
provider answers next, read back what they were asked.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from donations.errors import IdempotencyKeyReused, RequestInProgress
from donations.models import (
    CLOSED_DISPUTE_STATUSES,
    Attention,
    Donation,
    DonationRequest,
    DonationStatus,
    FailureKind,
    FollowUpMessage,
    RefundState,
    Step,
    StepStatus,
    utc_now,
)
from donations.ports import (
    AttackMode,
    ChallengeVerdict,
    ChargeOutcome,
    ChargeState,
    CurrentCharge,
    DisputeFacts,
    IntentSnapshot,
    Mailer,
    ParkedMessage,
    Payments,
    Publisher,
    ReceiptClaim,
    RefundFailure,
    SavedCard,
    Store,
    Tally,
)
from donations.store import ATTENTION_ATTRIBUTES, ConditionFailed, new_donation
from tests.support.keys import IDENTIFIERS

_OPEN = (DonationStatus.PENDING, DonationStatus.REQUIRES_ACTION)
_NOT_CHARGED = (DonationStatus.CANCELED, DonationStatus.FAILED, DonationStatus.DECLINED)
Condition = Callable[[Donation], bool]


def _always(_: Donation) -> bool:
    return True


class FakeStore:
    """The Donations table as a dict; every write conditional, as DonationStore's."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.records: dict[str, Donation] = {}
        self.clock = clock or time.time
        self.writes: list[str] = []

    # -- reads -----------------------------------------------------------------------------------

    def get(self, donation_id: str) -> Donation | None:
        return self.records.get(donation_id)

    def require(self, donation_id: str) -> Donation:
        from donations.errors import DonationNotFound

        found = self.get(donation_id)
        if found is None:
            raise DonationNotFound(f"No donation {donation_id}")
        return found

    def waiting(self, status: DonationStatus, *, since: str | None, before: str, limit: int) -> list[str]:
        found = [
            d
            for d in self.records.values()
            if d.status is status
            and d.unsettled_since is not None
            and (d.unsettled_since < before if since is None else since <= d.unsettled_since <= before)
        ]
        return [d.donation_id for d in sorted(found, key=lambda d: d.unsettled_since or "")][:limit]

    def find_by_payment_intent(self, payment_intent_id: str) -> str | None:
        return next((d.donation_id for d in self.records.values() if d.payment_intent_id == payment_intent_id), None)

    # -- the charge --------------------------------------------------------------------------------

    def create_pending(
        self,
        donation_id: str,
        request: DonationRequest,
        correlation_id: str,
        *,
        lease_seconds: int,
        now: float | None = None,
    ) -> Donation:
        now = self._now(now)
        donation = new_donation(
            donation_id,
            request,
            correlation_id,
            charging_until=int(now) + lease_seconds,
            donor_key=IDENTIFIERS.donor_key(str(request.email)),
        )
        existing = self.records.get(donation_id)
        if existing is None:
            self.records[donation_id] = donation
            self.writes.append("create_pending")
            return donation
        if existing.request_hash != donation.request_hash:
            raise IdempotencyKeyReused("This Idempotency-Key was already used for a different donation.")
        if existing.status is not DonationStatus.PENDING:
            return existing
        try:
            return self._update(
                donation_id,
                {"charging_until": int(now) + lease_seconds},
                lambda d: d.status is DonationStatus.PENDING and _free(d.charging_until, now),
            )
        except ConditionFailed:
            raise RequestInProgress("This donation is being processed; retry in a moment.") from None

    def discard_refused(self, donation_id: str, correlation_id: str) -> None:
        found = self.records.get(donation_id)
        if (
            found is not None
            and found.status is DonationStatus.PENDING
            and found.correlation_id == correlation_id
            and found.payment_intent_id is None
        ):
            del self.records[donation_id]
            self.writes.append("discard_refused")

    def release_charging(self, donation_id: str) -> None:
        self._update(donation_id, {"charging_until": None}, lambda d: d.status is DonationStatus.PENDING)

    def mark_charge_attempt_spent(self, donation_id: str, attempt: int) -> None:
        self._update(
            donation_id,
            {"charge_attempt_spent": True, "charge_attempt_spent_at": utc_now()},
            lambda d: d.status is DonationStatus.PENDING and d.charge_attempt == attempt,
        )

    def next_charge_attempt(self, donation_id: str, spent_attempt: int) -> Donation:
        return self._update(
            donation_id,
            {
                "charge_attempt": spent_attempt + 1,
                "charge_attempt_started_at": utc_now(),
                "charge_attempt_spent": False,
                "charge_attempt_spent_at": None,
            },
            lambda d: (
                d.status is DonationStatus.PENDING and d.charge_attempt == spent_attempt and d.charge_attempt_spent
            ),
        )

    def mark_charged(
        self,
        donation_id: str,
        payment_intent_id: str,
        payment_method_id: str | None,
        *,
        claim_followups_seconds: int | None = None,
        now: float | None = None,
        card: tuple[str | None, str | None] | None = None,
    ) -> Donation:
        values: dict[str, Any] = {
            "status": DonationStatus.SUCCEEDED,
            "payment_intent_id": payment_intent_id,
            "payment_method_id": payment_method_id,
            "charging_until": None,
        }
        current = self.records.get(donation_id)
        values["charged_at"] = (current.charged_at if current else None) or utc_now()
        if card is not None and card[1]:
            values |= {"card_brand": card[0], "card_last4": card[1]}
        if claim_followups_seconds is None:
            allowed = (*_OPEN, DonationStatus.SUCCEEDED)
        else:
            allowed = _OPEN
            values["followups_claim_until"] = int(self._now(now)) + claim_followups_seconds
        return self._update(donation_id, values, lambda d: d.status in allowed)

    def mark_requires_action(self, donation_id: str, payment_intent_id: str) -> Donation:
        values = {"status": DonationStatus.REQUIRES_ACTION, "payment_intent_id": payment_intent_id}
        return self._update(donation_id, {**values, "charging_until": None}, lambda d: d.status in _OPEN)

    def mark_declined(
        self,
        donation_id: str,
        decline_code: str,
        payment_intent_id: str | None,
        *,
        current: CurrentCharge | None = None,
    ) -> Donation:
        values = {
            "status": DonationStatus.DECLINED,
            "decline_code": decline_code,
            "payment_intent_id": payment_intent_id,
            "failure_reason": f"card_declined:{decline_code}",
        }
        return self._settle(donation_id, values, current)

    def mark_failed(self, donation_id: str, reason: str, *, current: CurrentCharge | None = None) -> Donation:
        return self._settle(donation_id, {"status": DonationStatus.FAILED, "failure_reason": reason}, current)

    def mark_canceled(
        self, donation_id: str, reason: str, payment_intent_id: str | None, *, current: CurrentCharge | None = None
    ) -> Donation:
        values = {"status": DonationStatus.CANCELED, "failure_reason": reason, "payment_intent_id": payment_intent_id}
        return self._settle(donation_id, values, current)

    def record_money_taken(
        self, donation_id: str, payment_intent_id: str, payment_method_id: str | None, *, recorded_as: DonationStatus
    ) -> Donation:
        stamp = utc_now()
        values = {
            "status": DonationStatus.SUCCEEDED,
            "payment_intent_id": payment_intent_id,
            "payment_method_id": payment_method_id,
            "charged_at": stamp,
            "corrected_from": recorded_as,
            "unsettled_since": stamp,
        }
        return self._update(donation_id, values, lambda d: d.status is recorded_as and d.status in _NOT_CHARGED)

    def _settle(self, donation_id: str, values: dict[str, Any], current: CurrentCharge | None) -> Donation:
        final = {**values, "unsettled_since": None, "charging_until": None}
        return self._update(
            donation_id, final, lambda d: d.status in _OPEN and (current is None or current.holds_for(d))
        )

    # -- follow-ups ----------------------------------------------------------------------------------

    def claim_followups(self, donation_id: str, lease_seconds: int, now: float | None = None) -> bool:
        now = self._now(now)
        try:
            self._update(
                donation_id,
                {"followups_claim_until": int(now) + lease_seconds},
                lambda d: (
                    d.status is DonationStatus.SUCCEEDED
                    and not d.followups_published
                    and _free(d.followups_claim_until, now)
                ),
            )
        except ConditionFailed:
            return False
        return True

    def release_followups_claim(self, donation_id: str) -> None:
        self._update(donation_id, {"followups_claim_until": None}, _always)

    def mark_followups_published(self, donation_id: str) -> None:
        self._update(donation_id, {"followups_published": True, "unsettled_since": None}, _always)

    # -- the background steps --------------------------------------------------------------------

    def next_card_attempt(self, donation_id: str, spent_attempt: int) -> None:
        with contextlib.suppress(ConditionFailed):  # another delivery moved it on already
            self._update(donation_id, {"card_attempt": spent_attempt + 1}, lambda d: d.card_attempt == spent_attempt)

    def record_card(self, donation_id: str, card: SavedCard) -> None:
        values = {
            "card_status": StepStatus.DONE,
            "customer_id": card.customer_id,
            "payment_method_id": card.payment_method_id,
            "card_brand": card.brand,
            "card_last4": card.last4,
            "card_exp_month": card.exp_month,
            "card_exp_year": card.exp_year,
        }
        self._update(donation_id, values, lambda d: d.card_status is not StepStatus.DONE)

    def claim_receipt(self, donation_id: str, lease_seconds: int, now: float | None = None) -> ReceiptClaim:
        now = self._now(now)
        before = self.records.get(donation_id)

        def claimable(d: Donation) -> bool:
            expired = d.receipt_claim_until is not None and d.receipt_claim_until < int(now)
            return d.status is DonationStatus.SUCCEEDED and (
                d.receipt_status in (StepStatus.PENDING, StepStatus.FAILED)
                or (d.receipt_status is StepStatus.IN_PROGRESS and expired)
            )

        try:
            values = {"receipt_status": StepStatus.IN_PROGRESS, "receipt_claim_until": int(now) + lease_seconds}
            self._update(donation_id, values, claimable)
        except ConditionFailed:
            return ReceiptClaim(claimed=False, donation=self.get(donation_id))
        return ReceiptClaim(claimed=True, donation=before)

    def mark_receipt_sent(self, donation_id: str, message_id: str) -> None:
        values = {
            "receipt_status": StepStatus.DONE,
            "receipt_message_id": message_id,
            "receipt_sent_at": utc_now(),
            "receipt_claim_until": None,
        }
        self._update(donation_id, values, lambda d: d.receipt_status is StepStatus.IN_PROGRESS)

    def release_receipt_claim(self, donation_id: str) -> None:
        values = {"receipt_status": StepStatus.PENDING, "receipt_claim_until": None}
        self._update(donation_id, values, lambda d: d.receipt_status is StepStatus.IN_PROGRESS)

    def record_step_retry(self, donation_id: str, step: Step, reason: str, attempts: int) -> None:
        values: dict[str, Any] = {
            "attention_step": step,
            "attention": Attention.RETRYING,
            "last_error": reason,
            "attempts": attempts,
        }
        self._update(donation_id, self._episode(donation_id, values), _step_open(step))

    def record_step_failure(
        self, donation_id: str, step: Step, reason: str, *, parked: ParkedMessage | None = None
    ) -> None:
        status_field = "card_status" if step is Step.TOKENIZE else "receipt_status"
        values: dict[str, Any] = {
            status_field: StepStatus.FAILED,
            "failed_step": step,
            "failure_reason": reason,
            "attention_step": step,
            "attention": Attention.PARKED,
            "last_error": reason,
            "parked_at": utc_now(),
        }
        if parked is not None:
            kind = FailureKind.PERMANENT if parked.permanent else FailureKind.TRANSIENT
            values |= {"failure_kind": kind, "attempts": parked.attempts, "parked_message": parked.as_item()}
        if step is Step.SEND_RECEIPT:
            values["receipt_claim_until"] = None
        self._update(donation_id, self._episode(donation_id, values), _step_open(step))

    def clear_step_failure(self, donation_id: str, step: Step) -> None:
        cleared = dict.fromkeys(("failed_step", "failure_reason", *ATTENTION_ATTRIBUTES))
        self._update(donation_id, cleared, lambda d: step in (d.failed_step, d.attention_step))

    def _episode(self, donation_id: str, values: dict[str, Any]) -> dict[str, Any]:
        """attention_since is set by the first failure of an episode only (if_not_exists)."""
        current = self.records.get(donation_id)
        since = current.attention_since if current is not None and current.attention_since else utc_now()
        return {**values, "attention_since": since}

    # -- webhooks ------------------------------------------------------------------------------------

    def record_refund(
        self, donation_id: str, amount_refunded: int, refunded_at: str, state: RefundState | None
    ) -> Donation:
        values = {"amount_refunded": amount_refunded, "refunded_at": refunded_at, "refund_state": state}

        def applies(d: Donation) -> bool:
            after_failure = d.refund_failed_at is None or d.refund_failed_at < refunded_at
            return d.amount_refunded <= amount_refunded and after_failure

        return self._update(donation_id, values, applies)

    def record_refund_failure(self, donation_id: str, failure: RefundFailure) -> Donation | None:
        d = self.require(donation_id)
        if failure.refund_id in d.refunds_failed:
            return None
        values = failure.record_values(d)
        return self._update(donation_id, values, _always)

    def claim_refund_notice(self, donation_id: str, lease_seconds: int, now: float | None = None) -> ReceiptClaim:
        now = self._now(now)

        def claimable(d: Donation) -> bool:
            return (
                d.status is DonationStatus.SUCCEEDED
                and d.receipt_status in (StepStatus.DONE, StepStatus.DISCARDED)
                and d.refund_notice_amount < d.amount_refunded
                and _free(d.refund_notice_claim_until, now)
            )

        try:
            claimed = self._update(donation_id, {"refund_notice_claim_until": int(now) + lease_seconds}, claimable)
        except ConditionFailed:
            return ReceiptClaim(claimed=False, donation=self.get(donation_id))
        return ReceiptClaim(claimed=True, donation=claimed)

    def mark_refund_notice_sent(self, donation_id: str, amount_refunded: int, message_id: str) -> None:
        values = {
            "refund_notice_amount": amount_refunded,
            "refund_notice_message_id": message_id,
            "refund_notice_sent_at": utc_now(),
            "refund_notice_claim_until": None,
        }
        self._update(donation_id, values, lambda d: d.refund_notice_claim_until is not None)

    def release_refund_notice_claim(self, donation_id: str) -> None:
        self._update(donation_id, {"refund_notice_claim_until": None}, _always)

    def record_dispute(self, donation_id: str, dispute: DisputeFacts) -> Donation:
        def applies(d: Donation) -> bool:
            if d.dispute_id != dispute.dispute_id:
                return True
            older = d.dispute_balance_transactions > dispute.balance_transactions
            return not older and (dispute.closed or d.dispute_status not in CLOSED_DISPUTE_STATUSES)

        return self._update(donation_id, dispute.record_values(), applies)

    # -- test helpers ------------------------------------------------------------------------------

    def put(self, donation: Donation) -> Donation:
        self.records[donation.donation_id] = donation
        return donation

    def change(self, donation_id: str, **values: Any) -> Donation:
        """Set fields directly, as time or another writer would (no condition)."""
        changed = self.records[donation_id].model_copy(update=values)
        self.records[donation_id] = changed
        return changed

    def _now(self, now: float | None) -> float:
        return self.clock() if now is None else now

    def _update(self, donation_id: str, values: dict[str, Any], condition: Condition) -> Donation:
        current = self.records.get(donation_id)
        if current is None or not condition(current):
            raise ConditionFailed(donation_id)
        updated = current.model_copy(update={**values, "updated_at": utc_now()})
        self.records[donation_id] = updated
        self.writes.append(str(sorted(values)))
        return updated


def _step_open(step: Step) -> Condition:
    field_name = "card_status" if step is Step.TOKENIZE else "receipt_status"
    return lambda d: getattr(d, field_name) not in (StepStatus.DONE, StepStatus.DISCARDED)


def _free(lease_until: int | None, now: float) -> bool:
    return lease_until is None or lease_until < int(now)


@dataclass
class FakePayments:
    """Stripe as a script: what ``charge`` and ``save_card`` do next, and what Stripe knows."""

    charges: list[ChargeOutcome | Exception] = field(default_factory=list)
    """What the next charges answer (or raise), in order; empty: succeeded."""
    cards: list[SavedCard | Exception] = field(default_factory=list)
    attempts: dict[tuple[str, int], IntentSnapshot] = field(default_factory=dict)
    """(donation id, charge attempt) -> the PaymentIntent Stripe's list finds for it."""
    searches: dict[str, list[IntentSnapshot]] = field(default_factory=dict)
    """donation id -> what Stripe's search by metadata finds."""
    intents: dict[str, IntentSnapshot] = field(default_factory=dict)
    succeeded: list[tuple[int, IntentSnapshot]] = field(default_factory=list)
    """(created, PaymentIntent) that Stripe's search finds succeeded."""
    outage: Exception | None = None
    """Raised by every lookup while set (Stripe unreachable)."""
    fingerprints: dict[str, str] = field(default_factory=dict)
    """PaymentMethod id -> its card's fingerprint (what a retrieve of the method says)."""
    calls: list[tuple[str, str]] = field(default_factory=list)

    def charge(self, donation: Donation) -> ChargeOutcome:
        self.calls.append(("charge", f"{donation.donation_id}#{donation.charge_attempt}"))
        answer = self.charges.pop(0) if self.charges else None
        if isinstance(answer, Exception):
            raise answer
        return answer or ChargeOutcome(ChargeState.SUCCEEDED, f"pi_{donation.donation_id}", "pm_saved")

    def find_attempt(self, donation: Donation) -> IntentSnapshot | None:
        self.calls.append(("find_attempt", f"{donation.donation_id}#{donation.charge_attempt}"))
        self._reachable()
        return self.attempts.get((donation.donation_id, donation.charge_attempt))

    def lookup(self, payment_intent_id: str) -> IntentSnapshot:
        self.calls.append(("lookup", payment_intent_id))
        self._reachable()
        return self.intents[payment_intent_id]

    def find_for_donation(self, donation_id: str) -> list[IntentSnapshot]:
        self.calls.append(("find_for_donation", donation_id))
        self._reachable()
        return list(self.searches.get(donation_id, []))

    def cancel(self, donation_id: str, payment_intent_id: str) -> IntentSnapshot:
        self.calls.append(("cancel", payment_intent_id))
        known = self.intents.get(payment_intent_id) or IntentSnapshot(payment_intent_id, "canceled", None)
        canceled = IntentSnapshot(known.id, "canceled", known.payment_method_id)
        self.intents[payment_intent_id] = canceled
        return canceled

    def succeeded_between(self, start: int, end: int, *, max_pages: int) -> tuple[list[IntentSnapshot], bool]:
        self.calls.append(("succeeded_between", f"{start}-{end}"))
        self._reachable()
        found = [intent for created, intent in self.succeeded if start <= created < end]
        return found[: max_pages * 100], len(found) <= max_pages * 100

    def card_fingerprint(self, payment_method_id: str) -> str | None:
        self.calls.append(("card_fingerprint", payment_method_id))
        return self.fingerprints.get(payment_method_id)

    def save_card(self, donation: Donation) -> SavedCard:
        self.calls.append(("save_card", f"{donation.donation_id}#{donation.card_attempt}"))
        answer = self.cards.pop(0) if self.cards else None
        if isinstance(answer, Exception):
            raise answer
        return answer or SavedCard(f"cus_{donation.donation_id}", "pm_saved", "visa", "4242", 12, 2034)

    def _reachable(self) -> None:
        if self.outage is not None:
            raise self.outage

    def charged(self) -> int:
        return sum(1 for call, _ in self.calls if call == "charge")


@dataclass
class FakeMailer:
    """SendGrid as a script: the next sends' failures (or none), and the receipts sent."""

    failures: list[Exception] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)

    def send(self, donation: Donation) -> str:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(donation.donation_id)
        return f"msg-{len(self.sent)}"

    def send_refund_notice(self, donation: Donation) -> str:
        """Recorded as ``refund:<donation id>:<refunded sum>``."""
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(f"refund:{donation.donation_id}:{donation.amount_refunded}")
        return f"msg-{len(self.sent)}"


@dataclass
class FakePublisher:
    """SQS as a script: fails while ``failures`` holds errors; records what was published."""

    failures: list[Exception] = field(default_factory=list)
    published: list[FollowUpMessage] = field(default_factory=list)

    def publish(self, donation: Donation, correlation_id: str) -> list[FollowUpMessage]:
        from donations.followups import follow_up_messages

        if self.failures:
            raise self.failures.pop(0)
        messages = follow_up_messages(donation, correlation_id)
        self.published += messages
        return messages

    def publish_refund_notice(self, donation_id: str, correlation_id: str) -> FollowUpMessage:
        if self.failures:
            raise self.failures.pop(0)
        message = FollowUpMessage(
            type=Step.SEND_RECEIPT, donation_id=donation_id, correlation_id=correlation_id, mail="refund_notice"
        )
        self.published.append(message)
        return message

    def steps_for(self, donation_id: str) -> list[Step]:
        return [m.type for m in self.published if m.donation_id == donation_id]


# The fakes fit the ports (mypy checks these when it reads this file; at run time they are plain assignments).
_FITS: tuple[type[Store], type[Payments], type[Mailer], type[Publisher]] = (
    FakeStore,
    FakePayments,
    FakeMailer,
    FakePublisher,
)


# -- card testing (donations.screening) ----------------------------------------------------------


@dataclass
class FakeVelocity:
    """The counters as dicts, with DonationStore-like conditions: a donation id counts once per key;
    past a limit nothing is counted (tests/integration/test_card_testing.py holds the real one to it)."""

    limits: Any = None  # donations.velocity.VelocityLimits; None: the defaults
    attempts: dict[str, set[str]] = field(default_factory=dict)
    declined: dict[str, set[str]] = field(default_factory=dict)
    outage: Exception | None = None
    resets_in_seconds: int = 1800

    def __post_init__(self) -> None:
        from donations.velocity import VelocityLimits

        self.limits = self.limits or VelocityLimits()

    def count_attempt(self, donation_id: str, ip: str, email: str, *, soft_limits: bool = True) -> list[Tally]:
        if self.outage is not None:
            raise self.outage
        ip_limits = (self.limits.ip_attempts_per_hour if soft_limits else None, self.limits.ip_declines_per_hour)
        email_limits = (self.limits.email_attempts_per_day if soft_limits else None, self.limits.email_declines_per_day)
        return [
            self._count("ip", f"ip#{ip}", donation_id, *ip_limits),
            self._count("email", f"email#{email}", donation_id, *email_limits),
        ]

    def _count(self, kind: str, key: str, donation_id: str, max_attempts: int | None, max_declines: int) -> Tally:
        ids, declines = self.attempts.setdefault(key, set()), len(self.declined.get(key, set()))
        over = None
        if declines >= max_declines:
            over = "declines"
        elif max_attempts is not None and donation_id not in ids and len(ids) >= max_attempts:
            over = "attempts"
        else:
            ids.add(donation_id)
        return Tally(kind, len(ids), declines, over, self.resets_in_seconds)

    def card_declines(self, fingerprint: str) -> int:
        return len(self.declined.get(f"card#{fingerprint}", set()))

    def record_decline(self, donation_id: str, ip: str, email: str, fingerprint: str | None) -> None:
        keys = [f"ip#{ip}", f"email#{email}"] + ([f"card#{fingerprint}"] if fingerprint else [])
        for key in keys:
            self.declined.setdefault(key, set()).add(donation_id)


@dataclass
class FakeAttackMode:
    """The attack mode's record: ``under_attack`` as set, declines and refusals counted."""

    under_attack: bool = False
    opens_after_declines: int | None = None
    declines: int = 0
    refusals: int = 0
    attempts: int = 0
    reads: int = 0

    def cached(self, max_age_seconds: float) -> AttackMode | None:
        return None  # always read, so tests see each read

    def current(self, max_age_seconds: float = 0) -> AttackMode:
        self.reads += 1
        return AttackMode(self.under_attack, reason="test" if self.under_attack else None)

    def note_decline(self) -> AttackMode:
        self.declines += 1
        if self.opens_after_declines is not None and self.declines >= self.opens_after_declines:
            self.under_attack = True
        return AttackMode(self.under_attack)

    def note_refusal(self) -> None:
        self.refusals += 1

    def note_attempt(self) -> None:
        self.attempts += 1


@dataclass
class FakeChallenges:
    """Turnstile's siteverify: tokens listed in ``valid`` pass once, as Cloudflare's do."""

    valid: set[str] = field(default_factory=set)
    verified: list[str] = field(default_factory=list)

    def verify(self, token: str, remote_ip: str, idempotency_key: str) -> ChallengeVerdict:
        self.verified.append(token)
        if token in self.valid:
            return ChallengeVerdict(True)
        return ChallengeVerdict(False, ("invalid-input-response",))
