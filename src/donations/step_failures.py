"""A background step's failures on the donation: retrying, parked, cleared (part of donations.store).

What operators need to know about a step that keeps failing is written where it happens, on the
donation, and the sparse ``attention-index`` (attention_step, attention_since) lists those donations:
the DLQ tools, the notifier and the report read it instead of receiving from a DLQ (a receive changes
counts). A healthy donation never enters it; a failing one costs an index write when it starts
failing, one per retry (its reason is projected) and one when it leaves.
"""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.conditions import Attr

from donations.conditional import Lease
from donations.models import Attention, FailureKind, Step, StepStatus, utc_now
from donations.ports import ParkedMessage

_RECEIPT = Lease("receipt_claim_until")
# Set by the first failure of an episode only (if_not_exists): a step failing again keeps the time its
# trouble began.
_EPISODE_START = frozenset({"attention_since"})
ATTENTION_ATTRIBUTES = (
    "attention_step",
    "attention_since",
    "attention",
    "last_error",
    "attempts",
    "failure_kind",
    "parked_at",
    "parked_message",
)
"""What the attention-index shows about a failing step; removed when it succeeds or is discarded."""
# The operators' indexes (template.yaml, DonationsTable): sparse attention-index (only donations whose
# step is failing or parked), and donor-index / day-index (every donation, keys only: one index write
# at creation, none after, as their keys never change). donations_ops reads them; no function does.
ATTENTION_INDEX = "attention-index"
DONOR_INDEX = "donor-index"
DAY_INDEX = "day-index"


def _status_field(step: Step) -> str:
    return "card_status" if step is Step.TOKENIZE else "receipt_status"


def _step_open(step: Step) -> Any:
    """The step is not done, and no operator discarded it."""
    return Attr(_status_field(step)).is_in([s.value for s in StepStatus if s not in _CLOSED_STEP])


_CLOSED_STEP = (StepStatus.DONE, StepStatus.DISCARDED)


class StepFailureWrites:
    """The store's writes about failing steps; DonationStore provides ``_update_quietly``."""

    def _update_quietly(
        self,
        donation_id: str,
        values: dict[str, Any],
        *,
        remove: list[str] | None = None,
        condition: Any = None,
        if_missing: frozenset[str] = frozenset(),
    ) -> None:
        raise NotImplementedError

    def record_step_retry(self, donation_id: str, step: Step, reason: str, attempts: int) -> None:
        """The step failed and will be retried: the donation enters the attention-index (operators see
        what keeps failing, and why, before anything reaches a DLQ). Failure path only."""
        self._update_quietly(
            donation_id,
            {
                "attention_step": step.value,
                "attention_since": utc_now(),
                "attention": Attention.RETRYING.value,
                "last_error": reason,
                "attempts": attempts,
            },
            condition=_step_open(step),
            if_missing=_EPISODE_START,
        )

    def record_step_failure(
        self, donation_id: str, step: Step, reason: str, *, parked: ParkedMessage | None = None
    ) -> None:
        """Show operators and the form which step failed and why; the message itself is parked in the DLQ.

        ``parked``: the message as it goes to the DLQ, kept on the record so that operators can look
        at it (and find the donation's parked message) without receiving from the DLQ.
        """
        values: dict[str, Any] = {
            _status_field(step): StepStatus.FAILED.value,
            "failed_step": step.value,
            "failure_reason": reason,
            "attention_step": step.value,
            "attention_since": utc_now(),
            "attention": Attention.PARKED.value,
            "last_error": reason,
            "parked_at": utc_now(),
        }
        if parked is not None:
            kind = FailureKind.PERMANENT if parked.permanent else FailureKind.TRANSIENT
            values |= {"failure_kind": kind.value, "attempts": parked.attempts, "parked_message": parked.as_item()}
        self._update_quietly(
            donation_id,
            values,
            remove=[_RECEIPT.attribute] if step is Step.SEND_RECEIPT else [],
            condition=_step_open(step),
            if_missing=_EPISODE_START,
        )

    def clear_step_failure(self, donation_id: str, step: Step) -> None:
        """A step that succeeded after failing (retried or redriven) no longer shows as failed, and leaves
        the attention-index; ``redrives`` and the operators' log stay."""
        self._update_quietly(
            donation_id,
            {},
            remove=["failed_step", "failure_reason", *ATTENTION_ATTRIBUTES],
            condition=Attr("failed_step").eq(step.value) | Attr("attention_step").eq(step.value),
        )
