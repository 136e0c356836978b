"""The Donations table: every state change is a conditional update, so retries and duplicates are harmless."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError

from donations.errors import DonationNotFound, IdempotencyKeyReused
from donations.models import Donation, DonationRequest, DonationStatus, Step, StepStatus, utc_now
from donations.redaction import mask_email


class ConditionFailed(Exception):
    """A conditional write lost: the record is not in the state the caller expected."""


@dataclass(frozen=True)
class SavedCard:
    customer_id: str
    payment_method_id: str
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None


@dataclass(frozen=True)
class ReceiptClaim:
    claimed: bool
    donation: Donation


class DonationStore:
    def __init__(self, table: Any) -> None:
        # A boto3 DynamoDB Table resource (mypy-boto3 type kept loose so the layer needs no stubs).
        self._table = table

    def get(self, donation_id: str) -> Donation | None:
        item = self._table.get_item(Key={"donation_id": donation_id}, ConsistentRead=True).get("Item")
        return Donation.model_validate(item) if item else None

    def require(self, donation_id: str) -> Donation:
        donation = self.get(donation_id)
        if donation is None:
            raise DonationNotFound(f"No donation {donation_id}")
        return donation

    def create_pending(self, donation_id: str, request: DonationRequest, correlation_id: str) -> Donation:
        """Write the donation before charging; a resubmission finds the same record, another body is refused."""
        now = utc_now()
        donation = Donation(
            donation_id=donation_id,
            status=DonationStatus.PENDING,
            amount=request.amount,
            currency=request.currency,
            email=str(request.email),
            email_masked=mask_email(str(request.email)),
            name=request.name,
            payment_method=request.payment_method,
            save_card=request.save_card,
            metadata=request.metadata,
            request_hash=request.fingerprint(),
            correlation_id=correlation_id,
            created_at=now,
            updated_at=now,
            card_status=StepStatus.PENDING if request.save_card else StepStatus.NOT_REQUESTED,
        )
        try:
            self._table.put_item(
                Item=donation.model_dump(mode="json", exclude_none=True),
                ConditionExpression=Attr("donation_id").not_exists(),
            )
            return donation
        except ClientError as error:
            if not _condition_failed(error):
                raise
        existing = self.require(donation_id)
        if existing.request_hash != donation.request_hash:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was already used for a different donation; use a new key.",
                field="Idempotency-Key",
            )
        return existing

    def mark_charged(self, donation_id: str, payment_intent_id: str, payment_method_id: str | None) -> Donation:
        return self._update(
            donation_id,
            {
                "status": DonationStatus.SUCCEEDED.value,
                "payment_intent_id": payment_intent_id,
                "payment_method_id": payment_method_id,
            },
            condition=Attr("status").is_in(_OPEN_STATUSES) | Attr("status").eq(DonationStatus.SUCCEEDED.value),
        )

    def mark_requires_action(self, donation_id: str, payment_intent_id: str) -> Donation:
        return self._update(
            donation_id,
            {"status": DonationStatus.REQUIRES_ACTION.value, "payment_intent_id": payment_intent_id},
            condition=Attr("status").is_in(_OPEN_STATUSES),
        )

    def mark_declined(self, donation_id: str, decline_code: str, payment_intent_id: str | None) -> Donation:
        return self._update(
            donation_id,
            {
                "status": DonationStatus.DECLINED.value,
                "decline_code": decline_code,
                "payment_intent_id": payment_intent_id,
                "failure_reason": f"card_declined:{decline_code}",
            },
            condition=Attr("status").is_in(_OPEN_STATUSES),
        )

    def mark_failed(self, donation_id: str, reason: str) -> Donation:
        return self._update(
            donation_id,
            {"status": DonationStatus.FAILED.value, "failure_reason": reason},
            condition=Attr("status").is_in(_OPEN_STATUSES),
        )

    def mark_followups_published(self, donation_id: str) -> Donation:
        return self._update(donation_id, {"followups_published": True})

    def record_card(self, donation_id: str, card: SavedCard) -> Donation:
        """Store the token once; a second writer finds the card already saved."""
        return self._update(
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
        """Take the right to send this donation's receipt.

        The claim is a lease: if the sender dies after SendGrid accepted the mail but before
        ``mark_receipt_sent``, the lease runs out and a redelivery sends again (at least once,
        never silently lost). A live lease or a sent receipt makes the claim fail.
        """
        now = time.time() if now is None else now
        claimable = Attr("receipt_status").is_in([StepStatus.PENDING.value, StepStatus.FAILED.value]) | (
            Attr("receipt_status").eq(StepStatus.IN_PROGRESS.value) & Attr("receipt_claim_until").lt(int(now))
        )
        try:
            donation = self._update(
                donation_id,
                {"receipt_status": StepStatus.IN_PROGRESS.value, "receipt_claim_until": int(now) + lease_seconds},
                condition=Attr("status").eq(DonationStatus.SUCCEEDED.value) & claimable,
            )
            return ReceiptClaim(claimed=True, donation=donation)
        except ConditionFailed:
            return ReceiptClaim(claimed=False, donation=self.require(donation_id))

    def mark_receipt_sent(self, donation_id: str, message_id: str) -> Donation:
        return self._update(
            donation_id,
            {"receipt_status": StepStatus.DONE.value, "receipt_message_id": message_id, "receipt_sent_at": utc_now()},
            remove=["receipt_claim_until"],
            condition=Attr("receipt_status").eq(StepStatus.IN_PROGRESS.value),
        )

    def release_receipt_claim(self, donation_id: str) -> Donation:
        """Give the claim back after a failed send, so the retry does not wait for the lease."""
        return self._update(
            donation_id,
            {"receipt_status": StepStatus.PENDING.value},
            remove=["receipt_claim_until"],
            condition=Attr("receipt_status").eq(StepStatus.IN_PROGRESS.value),
        )

    def record_step_failure(self, donation_id: str, step: Step, reason: str) -> Donation:
        """Show operators and the form which step failed and why; the message itself is parked in the DLQ."""
        status_field = "card_status" if step is Step.TOKENIZE else "receipt_status"
        return self._update(
            donation_id,
            {status_field: StepStatus.FAILED.value, "failed_step": step.value, "failure_reason": reason},
            remove=["receipt_claim_until"] if step is Step.SEND_RECEIPT else [],
            condition=Attr(status_field).ne(StepStatus.DONE.value),
        )

    def clear_step_failure(self, donation_id: str, step: Step) -> Donation:
        """A redriven step that then succeeds no longer shows as failed."""
        return self._update(
            donation_id,
            {},
            remove=["failed_step", "failure_reason"],
            condition=Attr("failed_step").eq(step.value),
        )

    def _update(
        self,
        donation_id: str,
        values: dict[str, Any],
        *,
        remove: list[str] | None = None,
        condition: Any = None,
    ) -> Donation:
        values = {**values, "updated_at": utc_now()}
        names = {f"#{index}": name for index, name in enumerate(values)}
        set_clause = ", ".join(f"#{index} = :{index}" for index in range(len(values)))
        attribute_values = {f":{index}": value for index, value in enumerate(values.values())}
        removed = {f"#r{index}": name for index, name in enumerate(remove or [])}
        expression = f"SET {set_clause}" + (f" REMOVE {', '.join(removed)}" if removed else "")
        key_exists = Attr("donation_id").exists()
        arguments: dict[str, Any] = {
            "Key": {"donation_id": donation_id},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": {**names, **removed},
            "ExpressionAttributeValues": attribute_values,
            "ConditionExpression": key_exists & condition if condition is not None else key_exists,
            "ReturnValues": "ALL_NEW",
        }
        try:
            return Donation.model_validate(self._table.update_item(**arguments)["Attributes"])
        except ClientError as error:
            if _condition_failed(error):
                raise ConditionFailed(donation_id) from error
            raise


_OPEN_STATUSES = [DonationStatus.PENDING.value, DonationStatus.REQUIRES_ACTION.value]


def _condition_failed(error: ClientError) -> bool:
    return bool(error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")
