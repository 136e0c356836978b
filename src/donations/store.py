"""The Donations table: every state change is a conditional update, so retries and duplicates are harmless.

Finding unfinished work without a scan (for donations.reconcile): ``status-unsettled_since-index``
(status, unsettled_since) is sparse. ``unsettled_since`` is set when a donation is created and
removed once it is final and, if charged, its follow-ups are published: querying a status there
reads only the donations still pending, awaiting 3-D Secure, or charged but unpublished, oldest
first, where an index on every donation would read all ever made. Its keys change only when a
donation's status does, so the writes after a donation settled (card saved, receipt sent) cost
no index writes. Keys only: the reconciler re-reads each candidate with a consistent read before
acting (index reads are eventually consistent) and judges its age by the record's ``updated_at``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from donations.conditional import ConditionFailed as ConditionFailed
from donations.conditional import Lease, attempt_is, clock, condition_failed, conditional_update
from donations.errors import DonationNotFound, IdempotencyKeyReused, RequestInProgress
from donations.models import (
    CLOSED_DISPUTE_STATUSES,
    MAX_DAY_OF_MONTH,
    Donation,
    DonationRequest,
    DonationStatus,
    RefundState,
    StepStatus,
    utc_now,
)
from donations.ports import CurrentCharge, DisputeFacts, ReceiptClaim, RefundFailure, SavedCard
from donations.redaction import mask_email
from donations.step_failures import ATTENTION_ATTRIBUTES as ATTENTION_ATTRIBUTES
from donations.step_failures import DAY_INDEX as DAY_INDEX
from donations.step_failures import DONOR_INDEX as DONOR_INDEX
from donations.step_failures import StepFailureWrites

UNSETTLED_INDEX = "status-unsettled_since-index"
UNSETTLED = "unsettled_since"
_CHARGING = Lease("charging_until")
_FOLLOWUPS = Lease("followups_claim_until")
_RECEIPT = Lease("receipt_claim_until")
_REFUND_NOTICE = Lease("refund_notice_claim_until")
# Read-then-write updates retried this often when another writer changed the item in between.
_RACES = 5


def new_donation(
    donation_id: str, request: DonationRequest, correlation_id: str, *, charging_until: int, donor_key: str
) -> Donation:
    """The record of a donation just submitted: pending, charged by nobody yet, held by its request."""
    stamp = utc_now()
    return Donation(
        donation_id=donation_id,
        status=DonationStatus.PENDING,
        amount=request.amount,
        currency=request.currency,
        email=str(request.email),
        email_masked=mask_email(str(request.email)),
        name=request.name,
        payment_method=request.payment_method,
        save_card=request.save_card,
        pledge_day_of_month=_pledge_day(request, stamp),
        metadata=request.metadata,
        request_hash=request.fingerprint(),
        correlation_id=correlation_id,
        created_at=stamp,
        updated_at=stamp,
        unsettled_since=stamp,
        card_status=StepStatus.PENDING if request.save_card else StepStatus.NOT_REQUESTED,
        charging_until=charging_until,
        charge_attempt_started_at=stamp,
        donor_key=donor_key,
        created_day=stamp[:10],
    )


def _pledge_day(request: DonationRequest, stamp: str) -> int | None:
    """A monthly gift's day: the donor's, or the day it is first written (UTC; 28 at most), so that a
    retry on another day names the same one."""
    if not request.monthly:
        return None
    return request.day_of_month or min(int(stamp[8:10]), MAX_DAY_OF_MONTH)


_NO_DONATION_ID = "warm-up"  # never a donation id: those are "don_" + 26 base32 letters (donations.charge)


class DonationStore(StepFailureWrites):
    def __init__(self, table: Any, donor_key: Callable[[str], str]) -> None:
        # A boto3 DynamoDB Table resource (mypy-boto3 type kept loose so the layer needs no stubs).
        self._table = table
        self._donor_key = donor_key  # Identifiers.donor_key: only new donations call it

    def open_connection(self) -> None:
        """Open the connection the next donation's writes reuse (the warm-up, donations.warmup): one
        eventually consistent read (half a read unit) of an id no donation can have."""
        self._table.get_item(Key={"donation_id": _NO_DONATION_ID})

    def get(self, donation_id: str) -> Donation | None:
        item = self._table.get_item(Key={"donation_id": donation_id}, ConsistentRead=True).get("Item")
        return Donation.model_validate(item) if item else None

    def require(self, donation_id: str) -> Donation:
        donation = self.get(donation_id)
        if donation is None:
            raise DonationNotFound(f"No donation {donation_id}")
        return donation

    def create_pending(
        self,
        donation_id: str,
        request: DonationRequest,
        correlation_id: str,
        *,
        lease_seconds: int,
        now: float | None = None,
    ) -> Donation:
        """Write the donation before charging; a resubmission finds the same record, another body is refused.

        The record is also the request's idempotency record: while a request charges a pending
        donation it holds ``charging_until`` (``lease_seconds``, about the invocation's remaining
        time), and a resubmission meanwhile raises RequestInProgress instead of reaching Stripe
        alongside it. A request that died leaves the lease to run out; one that failed gives it back.
        """
        now = clock(now)
        donation = new_donation(
            donation_id,
            request,
            correlation_id,
            charging_until=_CHARGING.ends(now, lease_seconds),
            donor_key=self._donor_key(str(request.email)),
        )
        if self._put_new(donation):
            return donation
        existing = self.require(donation_id)
        if existing.request_hash != donation.request_hash:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was already used for a different donation; use a new key.",
                field="Idempotency-Key",
            )
        if existing.status is not DonationStatus.PENDING:
            return existing
        try:
            return self._update(
                donation_id,
                _CHARGING.until(now, lease_seconds),
                condition=Attr("status").eq(DonationStatus.PENDING.value) & _CHARGING.free(now),
            )
        except ConditionFailed:
            raise RequestInProgress("This donation is being processed; retry in a moment.") from None

    def create_renewal(self, donation: Donation) -> Donation:
        """Write a renewal's donation (donations.renewals) unless it exists; either way, the record as stored."""
        return donation if self._put_new(donation) else self.require(donation.donation_id)

    def _put_new(self, donation: Donation) -> bool:
        """Write the record unless one with its id exists (then False, and nothing written)."""
        try:
            self._table.put_item(
                Item=donation.model_dump(mode="json", exclude_none=True),
                ConditionExpression=Attr("donation_id").not_exists(),
            )
            return True
        except ClientError as error:
            if not condition_failed(error):
                raise
        return False

    def discard_refused(self, donation_id: str, correlation_id: str) -> None:
        """Remove a record this very request created (its correlation id) and the card-testing checks
        refused before Stripe (donations.screening): the same Idempotency-Key may come back anew."""
        try:
            self._table.delete_item(
                Key={"donation_id": donation_id},
                ConditionExpression=Attr("status").eq(DonationStatus.PENDING.value)
                & Attr("correlation_id").eq(correlation_id)
                & Attr("payment_intent_id").not_exists(),
            )
        except ClientError as error:
            if not condition_failed(error):
                raise

    def release_charging(self, donation_id: str) -> None:
        """Give the charging lease back after a failed attempt, so the donor's retry need not wait for it."""
        self._update(
            donation_id, {}, remove=[_CHARGING.attribute], condition=Attr("status").eq(DonationStatus.PENDING.value)
        )

    def mark_charge_attempt_spent(self, donation_id: str, attempt: int) -> None:
        """Stripe stored a server error under this attempt's key: the next request must not replay it."""
        self._update_quietly(
            donation_id,
            {"charge_attempt_spent": True, "charge_attempt_spent_at": utc_now()},
            condition=Attr("status").eq(DonationStatus.PENDING.value) & attempt_is("charge_attempt", attempt),
        )

    def next_charge_attempt(self, donation_id: str, spent_attempt: int) -> Donation:
        """Move a pending donation to a new charge attempt (a new Stripe idempotency key).

        Only from a spent attempt, and only once per attempt: two requests racing here cannot both
        move on (ConditionFailed for the loser). The caller has made sure the spent attempt created no
        PaymentIntent that could still be charged (donations.charge).
        """
        return self._update(
            donation_id,
            {
                "charge_attempt": spent_attempt + 1,
                "charge_attempt_started_at": utc_now(),
                "charge_attempt_spent": False,
                "charge_attempt_spent_at": None,
            },
            condition=Attr("status").eq(DonationStatus.PENDING.value)
            & attempt_is("charge_attempt", spent_attempt)
            & Attr("charge_attempt_spent").eq(True),
        )

    def next_card_attempt(self, donation_id: str, spent_attempt: int) -> None:
        """The tokenize step's Customer and attach keys move on (donations.steps.save_card)."""
        with contextlib.suppress(ConditionFailed):  # another delivery moved it on already
            self._update_quietly(
                donation_id,
                {"card_attempt": spent_attempt + 1},
                condition=attempt_is("card_attempt", spent_attempt),
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
        """Record the charge. With ``claim_followups_seconds``, take the follow-ups' publish lease in the
        same write (see claim_followups): only the first transition out of an open status may, since
        nobody can have claimed a donation that was not charged yet; otherwise ConditionFailed.
        ``card``: (brand, last 4) of the card charged, when Stripe said, in the same write."""
        values: dict[str, Any] = {
            "status": DonationStatus.SUCCEEDED.value,
            "payment_intent_id": payment_intent_id,
            "payment_method_id": payment_method_id,
            "charged_at": utc_now(),
        }
        if card is not None and card[1]:
            values |= {"card_brand": card[0], "card_last4": card[1]}
        condition = Attr("status").is_in(_OPEN_STATUSES)
        if claim_followups_seconds is None:
            condition = condition | Attr("status").eq(DonationStatus.SUCCEEDED.value)
        else:
            values.update(_FOLLOWUPS.until(clock(now), claim_followups_seconds))
        return self._update(
            donation_id, values, remove=[_CHARGING.attribute], condition=condition, if_missing=_FIRST_CHARGE
        )

    def mark_requires_action(self, donation_id: str, payment_intent_id: str) -> Donation:
        return self._update(
            donation_id,
            {"status": DonationStatus.REQUIRES_ACTION.value, "payment_intent_id": payment_intent_id},
            remove=[_CHARGING.attribute],
            condition=Attr("status").is_in(_OPEN_STATUSES),
        )

    def mark_declined(
        self,
        donation_id: str,
        decline_code: str,
        payment_intent_id: str | None,
        *,
        current: CurrentCharge | None = None,
    ) -> Donation:
        """``current``: only if that is still the donation's current charge (see CurrentCharge)."""
        return self._update(
            donation_id,
            {
                "status": DonationStatus.DECLINED.value,
                "decline_code": decline_code,
                "payment_intent_id": payment_intent_id,
                "failure_reason": f"card_declined:{decline_code}",
            },
            remove=[UNSETTLED, _CHARGING.attribute],
            condition=_still_open(current),
        )

    def mark_failed(self, donation_id: str, reason: str, *, current: CurrentCharge | None = None) -> Donation:
        return self._update(
            donation_id,
            {"status": DonationStatus.FAILED.value, "failure_reason": reason},
            remove=[UNSETTLED, _CHARGING.attribute],
            condition=_still_open(current),
        )

    def mark_canceled(
        self, donation_id: str, reason: str, payment_intent_id: str | None, *, current: CurrentCharge | None = None
    ) -> Donation:
        return self._update(
            donation_id,
            {"status": DonationStatus.CANCELED.value, "failure_reason": reason, "payment_intent_id": payment_intent_id},
            remove=[UNSETTLED, _CHARGING.attribute],
            condition=_still_open(current),
        )

    def record_money_taken(
        self, donation_id: str, payment_intent_id: str, payment_method_id: str | None, *, recorded_as: DonationStatus
    ) -> Donation:
        """Record a charge Stripe made for a donation this record calls ``recorded_as`` (canceled, failed or
        declined): charged after all, its follow-ups owed again (back in the reconciler's index), and
        what the record said kept in ``corrected_from``. Only from that status (else ConditionFailed)."""
        stamp = utc_now()
        return self._update(
            donation_id,
            {
                "status": DonationStatus.SUCCEEDED.value,
                "payment_intent_id": payment_intent_id,
                "payment_method_id": payment_method_id,
                "charged_at": stamp,
                "corrected_from": recorded_as.value,
                UNSETTLED: stamp,
            },
            condition=Attr("status").eq(recorded_as.value) & Attr("status").is_in(_NOT_CHARGED_STATUSES),
        )

    def mark_followups_published(self, donation_id: str) -> None:
        # Nothing is owed any more: the donation leaves the reconciler's sparse index.
        self._update_quietly(donation_id, {"followups_published": True}, remove=[UNSETTLED])

    def waiting(self, status: DonationStatus, *, since: str | None, before: str, limit: int) -> list[str]:
        """Ids of unsettled donations in ``status`` created before ``before``, oldest first.

        ``since``: and not before this time (inclusive; None = no lower bound). Times are ISO-8601 UTC
        strings like ``utc_now()``'s (they sort as text). A query, never a scan: see the module docstring.
        """
        waited = Key(UNSETTLED).lt(before) if since is None else Key(UNSETTLED).between(since, before)
        arguments: dict[str, Any] = {
            "IndexName": UNSETTLED_INDEX,
            "KeyConditionExpression": Key("status").eq(status.value) & waited,
            "ProjectionExpression": "donation_id",
            "Limit": limit,
        }
        ids: list[str] = []
        while len(ids) < limit:
            page = self._table.query(**arguments)
            ids += [str(item["donation_id"]) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return ids[:limit]

    def record_card(self, donation_id: str, card: SavedCard) -> None:
        """Store the token once; a second writer finds the card already saved."""
        self._update_quietly(
            donation_id,
            {
                "card_status": StepStatus.DONE.value,
                "customer_id": card.customer_id,
                "payment_method_id": card.payment_method_id,
                "card_brand": card.brand,
                "card_last4": card.last4,
                "card_exp_month": card.exp_month,
                "card_exp_year": card.exp_year,
            },
            condition=Attr("card_status").ne(StepStatus.DONE.value),
        )

    def claim_receipt(self, donation_id: str, lease_seconds: int, now: float | None = None) -> ReceiptClaim:
        """Take the right to send this donation's receipt (one write, no read first).

        The claim is a lease: if the sender dies after SendGrid accepted the mail but before
        ``mark_receipt_sent``, the lease runs out and a redelivery sends again (at least once,
        never silently lost). A live lease, a sent receipt or a donation not charged makes the claim
        fail. Claimed: ``donation`` is the record as it was just before the claim. Not claimed: as
        it is now (None if there is no such donation), for the caller to tell why.
        """
        now = clock(now)
        claimable = Attr("receipt_status").is_in([StepStatus.PENDING.value, StepStatus.FAILED.value]) | (
            Attr("receipt_status").eq(StepStatus.IN_PROGRESS.value) & _RECEIPT.expired(now)
        )
        try:
            before = self._update(
                donation_id,
                {"receipt_status": StepStatus.IN_PROGRESS.value, **_RECEIPT.until(now, lease_seconds)},
                condition=Attr("status").eq(DonationStatus.SUCCEEDED.value) & claimable,
                returning="ALL_OLD",
            )
            return ReceiptClaim(claimed=True, donation=before)
        except ConditionFailed:
            return ReceiptClaim(claimed=False, donation=self.get(donation_id))

    def mark_receipt_sent(self, donation_id: str, message_id: str) -> None:
        self._update_quietly(
            donation_id,
            {"receipt_status": StepStatus.DONE.value, "receipt_message_id": message_id, "receipt_sent_at": utc_now()},
            remove=[_RECEIPT.attribute],
            condition=Attr("receipt_status").eq(StepStatus.IN_PROGRESS.value),
        )

    def release_receipt_claim(self, donation_id: str) -> None:
        """Give the claim back after a failed send, so the retry does not wait for the lease."""
        self._update_quietly(
            donation_id,
            {"receipt_status": StepStatus.PENDING.value},
            remove=[_RECEIPT.attribute],
            condition=Attr("receipt_status").eq(StepStatus.IN_PROGRESS.value),
        )

    # -- follow-up publishing and Stripe webhooks (donations.charge, donations.webhooks) ----------

    def claim_followups(self, donation_id: str, lease_seconds: int, now: float | None = None) -> bool:
        """Take the right to publish a charged donation's follow-ups; False if published or claimed.

        The charge, the webhook and the reconciler may all reach ``publish_follow_ups`` for one
        donation at once: the lease lets one of them publish. A publisher that dies keeps it until
        it runs out, then the reconciler may take it.
        """
        now = clock(now)
        unpublished = Attr("followups_published").eq(False) | Attr("followups_published").not_exists()
        try:
            self._update(
                donation_id,
                _FOLLOWUPS.until(now, lease_seconds),
                condition=Attr("status").eq(DonationStatus.SUCCEEDED.value) & unpublished & _FOLLOWUPS.free(now),
            )
        except ConditionFailed:
            return False
        return True

    def release_followups_claim(self, donation_id: str) -> None:
        """Give the lease back after a failed publish, so the next attempt need not wait for it."""
        self._update_quietly(donation_id, {}, remove=[_FOLLOWUPS.attribute])

    def find_by_payment_intent(self, payment_intent_id: str) -> str | None:
        """The donation charged through this PaymentIntent (a dispute names only the intent and charge).

        Reads the sparse, keys-only ``payment_intent_id-index``: eventually consistent, which is fine
        for events that come days after the charge.
        """
        items = self._table.query(
            IndexName=PAYMENT_INTENT_INDEX,
            KeyConditionExpression=Key("payment_intent_id").eq(payment_intent_id),
            ProjectionExpression="donation_id",
        ).get("Items", [])
        return str(items[0]["donation_id"]) if items else None

    def record_refund(
        self, donation_id: str, amount_refunded: int, refunded_at: str, state: RefundState | None
    ) -> Donation:
        """The refunded total as Stripe says it now. Refunds only grow: an older total arriving late (an
        earlier ``charge.refunded``) does not shrink it (ConditionFailed); the same total again is a no-op.
        A total Stripe stated before a refund failed (still counting that refund) is refused as well."""
        grows = Attr("amount_refunded").not_exists() | Attr("amount_refunded").lte(amount_refunded)
        after_failure = Attr("refund_failed_at").not_exists() | Attr("refund_failed_at").lt(refunded_at)
        return self._update(
            donation_id,
            {"amount_refunded": amount_refunded, "refunded_at": refunded_at, "refund_state": _value(state)},
            condition=grows & after_failure,
        )

    def record_refund_failure(self, donation_id: str, failure: RefundFailure) -> Donation | None:
        """Take a failed refund off the refunded total, once per refund (None: it was taken off already).

        Read, then written on condition that the total is still what was read, so two failures racing
        each take their own amount off."""
        for _ in range(_RACES):
            donation = self.require(donation_id)
            if failure.refund_id in donation.refunds_failed:
                return None
            values = failure.record_values(donation)
            values["refund_state"] = _value(values["refund_state"])
            total_as_read = Attr("amount_refunded").eq(donation.amount_refunded)
            if donation.amount_refunded == 0:
                total_as_read |= Attr("amount_refunded").not_exists()
            unchanged = total_as_read & (
                Attr("refunds_failed").not_exists() | ~Attr("refunds_failed").contains(failure.refund_id)
            )
            try:
                return self._update(donation_id, values, condition=unchanged)
            except ConditionFailed:
                continue
        raise ConditionFailed(donation_id)

    def claim_refund_notice(self, donation_id: str, lease_seconds: int, now: float | None = None) -> ReceiptClaim:
        """Take the right to tell the donor about the refunded total as it is now: one notice per total.

        Claimable when the refunded total is more than the donor was told about, the receipt went out
        first (or an operator discarded it), and no live lease is held. Claimed: the record as it is now
        (its ``amount_refunded`` is what the notice states). Not claimed: the record, for the caller to tell why.
        """
        now = clock(now)
        owed = Attr("amount_refunded").gt(0) & (
            Attr("refund_notice_amount").not_exists() | Attr("refund_notice_amount").lt(Attr("amount_refunded"))
        )
        receipt_out = Attr("receipt_status").is_in([StepStatus.DONE.value, StepStatus.DISCARDED.value])
        try:
            claimed = self._update(
                donation_id,
                _REFUND_NOTICE.until(now, lease_seconds),
                condition=Attr("status").eq(DonationStatus.SUCCEEDED.value)
                & receipt_out
                & owed
                & _REFUND_NOTICE.free(now),
            )
            return ReceiptClaim(claimed=True, donation=claimed)
        except ConditionFailed:
            return ReceiptClaim(claimed=False, donation=self.get(donation_id))

    def mark_refund_notice_sent(self, donation_id: str, amount_refunded: int, message_id: str) -> None:
        """The donor was told about ``amount_refunded``; only by the holder of the lease."""
        self._update_quietly(
            donation_id,
            {
                "refund_notice_amount": amount_refunded,
                "refund_notice_message_id": message_id,
                "refund_notice_sent_at": utc_now(),
            },
            remove=[_REFUND_NOTICE.attribute],
            condition=Attr(_REFUND_NOTICE.attribute).exists(),
        )

    def release_refund_notice_claim(self, donation_id: str) -> None:
        self._update_quietly(donation_id, {}, remove=[_REFUND_NOTICE.attribute])

    def record_dispute(self, donation_id: str, dispute: DisputeFacts) -> Donation:
        """The dispute as this event shows it. A dispute's status only moves towards closed: an open
        status arriving after the closing one (events out of order) changes nothing (ConditionFailed)."""
        another = Attr("dispute_id").not_exists() | Attr("dispute_id").ne(dispute.dispute_id)
        # Balance transactions only accumulate: an event with fewer is older than the record.
        moved = Attr("dispute_balance_transactions").not_exists() | Attr("dispute_balance_transactions").lte(
            dispute.balance_transactions
        )
        condition = another | moved
        if not dispute.closed:
            closed = Attr("dispute_status").is_in(sorted(CLOSED_DISPUTE_STATUSES))
            condition = another | (moved & ~closed)
        return self._update(donation_id, dispute.record_values(), condition=condition)

    def _update(
        self,
        donation_id: str,
        values: dict[str, Any],
        *,
        remove: list[str] | None = None,
        condition: Any = None,
        returning: str = "ALL_NEW",
        if_missing: frozenset[str] = frozenset(),
    ) -> Donation:
        """A conditional update; the record as it is after it (or before it, with ``returning="ALL_OLD"``)."""
        item = conditional_update(
            self._table,
            {"donation_id": donation_id},
            values,
            remove=remove,
            condition=condition,
            returning=returning,
            if_missing=if_missing,
        )
        return Donation.model_validate(item)

    def _update_quietly(
        self,
        donation_id: str,
        values: dict[str, Any],
        *,
        remove: list[str] | None = None,
        condition: Any = None,
        if_missing: frozenset[str] = frozenset(),
    ) -> None:
        """The same, for a caller that needs no record back: DynamoDB sends none, and none is parsed."""
        conditional_update(
            self._table,
            {"donation_id": donation_id},
            values,
            remove=remove,
            condition=condition,
            returning="NONE",
            if_missing=if_missing,
        )


_OPEN_STATUSES = [DonationStatus.PENDING.value, DonationStatus.REQUIRES_ACTION.value]
_NOT_CHARGED_STATUSES = [DonationStatus.CANCELED.value, DonationStatus.FAILED.value, DonationStatus.DECLINED.value]


def _value(state: RefundState | None) -> str | None:
    return state.value if state is not None else None


def _still_open(current: CurrentCharge | None) -> Any:
    """Open, and with ``current``: that is still the donation's charge (CurrentCharge.holds_for, as a condition)."""
    condition = Attr("status").is_in(_OPEN_STATUSES)
    if current is None:
        return condition
    unspent = Attr("charge_attempt_spent").not_exists() | Attr("charge_attempt_spent").eq(False)
    this_intent = Attr("payment_intent_id").not_exists() | Attr("payment_intent_id").eq(current.payment_intent_id)
    return condition & attempt_is("charge_attempt", current.attempt) & unspent & this_intent


# Set by the first write of its kind only (if_not_exists): a replayed charge keeps its time.
_FIRST_CHARGE = frozenset({"charged_at"})
# Open disputes by evidence deadline (donations-ops disputes): sparse, only while a dispute is open
# (``dispute_open``, set by DisputeFacts.record_values).
DISPUTE_INDEX = "dispute-index"
DISPUTE_OPEN = "dispute_open"
# Sparse (only donations that reached Stripe have a payment_intent_id), keys only: see find_by_payment_intent.
PAYMENT_INTENT_INDEX = "payment_intent_id-index"
