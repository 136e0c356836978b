"""What is parked in a DLQ (and what keeps failing before it gets there), read without receiving anything.

The consumers record on the donation why its step failed, whether retrying could help
(``failure_kind``) and the message as they parked it (donations.store); the sparse attention-index
lists those donations. So listing and showing parked messages is a query and a read: the DLQ is
only asked for its approximate count. A message without a donation record (malformed, or for a
donation that does not exist) is only visible by receiving it: ``dlq peek`` does, and says so.

:func:`verdict` decides whether a redrive can help: a transient failure (an outage that outlasted
the retries) can; a permanent one fails the same way again unless its cause was fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from donations import attention
from donations.models import Attention, Donation, FailureKind, Step
from donations_ops import operator_store
from donations_ops.aws import Clients
from donations_ops.queues import queue_counts, redact
from donations_ops.stack_resources import OpsError, Queue, Stack

STEP_OF_SOURCE = {"ReceiptQueue": Step.SEND_RECEIPT, "TokenizeQueue": Step.TOKENIZE}
"""Which background step consumes each source queue (template.yaml)."""
QUEUE_NAME = {Step.SEND_RECEIPT: "receipt", Step.TOKENIZE: "tokenize"}
"""The short name donations-ops takes for each step's DLQ."""

# What an operator can do about a permanent failure, by reason (the code after the step's prefix).
_HINTS = (
    ("sendgrid:http_400", "SendGrid refused the request (often the address): `donor fix-email {id} --email NEW "
     "--note TEXT` resends the receipt; or `dlq discard {queue} {id} --note TEXT`"),
    ("sendgrid:sender_not_verified", "verify the sender (ReceiptFromEmail) in SendGrid, then "
     "`redrive {queue} --force`"),
    ("sendgrid:credits_exceeded", "the SendGrid account is out of credits (the key is fine): upgrade the Email API "
     "plan or wait for the daily reset, then `redrive {queue} --force`"),
    ("sendgrid:unauthorized", "rotate the SendGrid API key secret, wait 5 minutes, then `redrive {queue} --force`"),
    ("sendgrid:forbidden", "give the SendGrid key Mail Send access (rotate the secret), wait 5 minutes, then "
     "`redrive {queue} --force`"),
    ("donation_not_charged", "the donation was not charged (`donor show {id}`): discard it unless it gets charged"),
    ("donation_not_found", "no such donation: nothing can succeed; `dlq discard {queue} {id} --note TEXT`"),
    ("stripe:", "Stripe refused to save the card: tell the donor if needed, then "
     "`dlq discard {queue} {id} --note TEXT`"),
)  # fmt: skip
_GENERIC_HINT = "fix the cause, then `redrive {queue} --donation {id} --force`"


@dataclass(frozen=True)
class Verdict:
    redrive: bool
    why: str
    hint: str | None = None


def verdict(donation: Donation | None, step: Step, *, parked_reason: str | None, force: bool = False) -> Verdict:
    """Whether redriving this step of this donation can succeed now.

    ``parked_reason``: the failure_reason a parked message carries (parked at once by a consumer:
    permanent) or None (moved by SQS after its last receive: transient), for messages whose
    donation has no record.
    """
    queue = QUEUE_NAME[step]
    if donation is None:
        if parked_reason is None or force:
            return Verdict(True, "no donation record; redriven as it came" if force else "transient")
        return Verdict(False, "permanent: would fail again", _hint(parked_reason, "?", queue))
    status = donation.card_status if step is Step.TOKENIZE else donation.receipt_status
    if status.value == "discarded":
        return Verdict(False, "discarded by an operator", f"the message is obsolete: `dlq discard {queue} ...`")
    if force:
        return Verdict(True, "forced")
    if status.value == "done":
        return Verdict(True, "already done (the step will acknowledge it)")
    kind = donation.failure_kind or (FailureKind.PERMANENT if parked_reason else FailureKind.TRANSIENT)
    if kind is FailureKind.TRANSIENT:
        return Verdict(True, "transient")
    reason = donation.last_error or donation.failure_reason or parked_reason or "unknown"
    return Verdict(False, "permanent: would fail again", _hint(reason, donation.donation_id, queue))


def _hint(reason: str, donation_id: str, queue: str) -> str:
    text = next((hint for key, hint in _HINTS if key in reason), _GENERIC_HINT)
    return text.format(id=donation_id, queue=queue)


def step_of(stack: Stack, dlq: Queue) -> Step:
    source = stack.source_of(dlq)
    if source.logical_id not in STEP_OF_SOURCE:
        raise OpsError(f"{dlq.logical_id}: no background step consumes {source.logical_id}")
    return STEP_OF_SOURCE[source.logical_id]


@dataclass(frozen=True)
class AttentionRow:
    donation_id: str
    state: str
    """retrying, parked or redriven."""
    kind: str | None
    reason: str | None
    attempts: int | None
    since: str
    parked_at: str | None
    redrives: int
    redrive: bool
    why: str
    hint: str | None
    donor: str | None
    amount: str | None


@dataclass
class StepView:
    dlq: str
    step: str
    dlq_messages: int
    """SQS's approximate count of the DLQ (visible + in flight), read without receiving."""
    queue_messages: int
    """The same for the step's source queue (waiting, retrying, or redriven)."""
    rows: list[AttentionRow] = field(default_factory=list)
    without_record: int = 0
    """DLQ messages no parked donation accounts for (malformed, unknown donation): ``dlq peek`` shows them."""


def view(
    clients: Clients, stack: Stack, dlq: Queue, *, reason: str | None = None, donation_id: str | None = None
) -> StepView:
    """The step's donations that are retrying, parked or redriven, filtered by reason or donation."""
    step = step_of(stack, dlq)
    table = operator_store.donations_table(clients, stack)
    found = attention.entries(table, step)
    donations = operator_store.many(table, [e.donation_id for e in found])
    rows = [_row(entry, donations.get(entry.donation_id), step) for entry in found]
    parked = sum(1 for row in rows if row.state == Attention.PARKED.value)
    visible, in_flight, delayed = queue_counts(clients("sqs"), dlq.url)
    source = stack.source_of(dlq)
    in_queue = sum(queue_counts(clients("sqs"), source.url))
    if reason:
        rows = [row for row in rows if reason in (row.reason or "")]
    if donation_id:
        rows = [row for row in rows if row.donation_id == donation_id]
    total = visible + in_flight + delayed
    return StepView(dlq.logical_id, step.value, total, in_queue, rows, max(0, total - parked))


def _row(entry: attention.AttentionEntry, donation: Donation | None, step: Step) -> AttentionRow:
    decided = verdict(donation, step, parked_reason=entry.last_error if entry.failure_kind == "permanent" else None)
    return AttentionRow(
        donation_id=entry.donation_id,
        state=entry.attention.value,
        kind=entry.failure_kind,
        reason=redact(entry.last_error),
        attempts=donation.attempts if donation else None,
        since=entry.since,
        parked_at=donation.parked_at if donation else None,
        redrives=donation.redrives if donation else 0,
        redrive=decided.redrive,
        why=decided.why,
        hint=decided.hint,
        donor=donation.email_masked if donation else None,
        amount=f"{donation.amount} {donation.currency}" if donation else None,
    )


def show(clients: Clients, stack: Stack, donation_id: str) -> dict[str, Any]:
    """One donation's failing or parked step: the message as parked, why, attempts, redrive history."""
    table = operator_store.donations_table(clients, stack)
    donation = operator_store.require(table, donation_id)
    step = donation.attention_step or donation.failed_step
    decided = verdict(donation, step, parked_reason=donation.failure_reason) if step else None
    message = donation.parked_message or {}
    return {
        "donation_id": donation.donation_id,
        "step": step.value if step else None,
        "state": donation.attention.value if donation.attention else None,
        "kind": donation.failure_kind.value if donation.failure_kind else None,
        "reason": redact(donation.last_error or donation.failure_reason),
        "attempts": donation.attempts,
        "failing_since": donation.attention_since,
        "parked_at": donation.parked_at,
        "redrives": donation.redrives,
        "redrive": decided.redrive if decided else None,
        "why": decided.why if decided else "nothing is failing",
        "hint": decided.hint if decided else None,
        "message": {
            "source_message_id": message.get("message_id"),
            "body": message.get("body"),
            "attributes": {k: redact(str(v)) for k, v in (message.get("attributes") or {}).items()},
        },
        "donation": {
            "status": donation.status.value,
            "amount": donation.amount,
            "currency": donation.currency,
            "donor": donation.email_masked,
            "created_at": donation.created_at,
            "receipt": donation.receipt_status.value,
            "card": donation.card_status.value,
        },
        "operator_log": [{k: redact(v) or "" for k, v in entry.items()} for entry in donation.operator_log],
    }
