"""What operators do to parked messages: redrive what can succeed, discard with a note, fix an address.

Each action is recorded on the donation (its ``operator_log``; redrives also in ``redrives``), so a
ticket cites the donation id, which never changes, rather than an SQS message id, which does on
every redrive. A redrive skips messages that would fail the same way again (donations_ops.parked.
verdict) unless forced, and says why and what to do instead.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from donations.models import FollowUpMessage, Step, deliverable_address
from donations_ops import operator_store
from donations_ops.alarms import firing_for_service
from donations_ops.aws import Clients
from donations_ops.parked import QUEUE_NAME, AttentionRow, StepView, step_of, verdict, view
from donations_ops.queues import Message, receive, redact, release, string_attributes
from donations_ops.redrive import (
    COPY_VISIBILITY_SECONDS,
    Pacer,
    RedriveResult,
    move_task_unusable,
    not_implemented,
    redrive,
    visible_count,
)
from donations_ops.stack_resources import OpsError, Queue, Stack

SEARCH_LIMIT = 1000
"""Look at most at this many DLQ messages for one action (each is received, then handed back)."""


@dataclass(frozen=True)
class Skipped:
    donation_id: str | None
    why: str
    hint: str | None
    reason: str | None = None


@dataclass
class SafeRedrive:
    dlq: str
    destination: str
    method: str
    """"copy" (message by message, with verdicts), "move-task" (SQS's own), or "dry-run"."""
    moved: list[str] = field(default_factory=list)
    """Donation ids (or message ids, for messages without one) sent back to their queue."""
    skipped: list[Skipped] = field(default_factory=list)
    not_deleted: list[str] = field(default_factory=list)
    without_record: int = 0
    fallback_reason: str | None = None
    task: RedriveResult | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.not_deleted and (self.task is None or self.task.ok)


def message_donation(message: Message) -> str | None:
    attributes = string_attributes(message)
    if attributes.get("donation_id"):
        return attributes["donation_id"]
    try:
        body = json.loads(message.get("Body", ""))
    except ValueError:
        return None
    found = body.get("donation_id") if isinstance(body, dict) else None
    return found if isinstance(found, str) else None


@contextlib.contextmanager
def held_messages(sqs: Any, queue_url: str, *, limit: int = SEARCH_LIMIT) -> Iterator[Callable[[], list[Message]]]:
    """Receive the queue's messages batch by batch, keeping each hidden until the end, then hand back
    every one not deleted meanwhile (so a batch never brings back one already looked at)."""
    held: list[Message] = []

    def next_batch() -> list[Message]:
        if len(held) >= limit:
            return []
        batch = receive(sqs, queue_url, 10, COPY_VISIBILITY_SECONDS)
        held.extend(batch)
        return batch

    try:
        yield next_batch
    finally:
        release(sqs, queue_url, [m["ReceiptHandle"] for m in held if not m.get("_deleted")])


def _delete(sqs: Any, queue_url: str, message: Message) -> bool:
    try:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    except Exception:  # an expired handle: the message stays, and will come back
        return False
    message["_deleted"] = True
    return True


def _send_back(sqs: Any, queue_url: str, message: Message, redrives: int | None) -> None:
    attributes = {
        name: {"DataType": "String", "StringValue": value} for name, value in string_attributes(message).items()
    }
    if redrives is not None:  # the message carries its donation's redrive count, too
        attributes["redrives"] = {"DataType": "Number", "StringValue": str(redrives)}
    sqs.send_message(QueueUrl=queue_url, MessageBody=message["Body"], MessageAttributes=attributes)


def redrive_safely(
    clients: Clients,
    stack: Stack,
    dlq: Queue,
    *,
    donation_id: str | None = None,
    reason: str | None = None,
    force: bool = False,
    note: str = "",
    max_messages: int | None = None,
    rate: float | None = None,
    dry_run: bool = False,
    method: str = "auto",
    wait_seconds: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> SafeRedrive:
    """Move back what can succeed now; skip (and explain) what would fail the same way again."""
    step, destination = step_of(stack, dlq), stack.source_of(dlq)
    listing = view(clients, stack, dlq, reason=reason, donation_id=donation_id)
    parked = [row for row in listing.rows if row.state == "parked"]
    if dry_run:
        return _dry_run(dlq, destination, listing, parked, force)
    everything = donation_id is None and reason is None and max_messages is None
    fallback: str | None = None
    if method != "copy" and everything and listing.without_record == 0 and all(r.redrive or force for r in parked):
        # Every parked message can go back: SQS's own move task, where the endpoint has one.
        moved, fallback = _move_task_redrive(
            clients, stack, dlq, parked, note=note, rate=rate, method=method, wait_seconds=wait_seconds, sleep=sleep
        )
        if moved is not None:
            return moved
    elif method == "move-task":
        raise OpsError("--method move-task moves every message: it cannot skip those that would fail again")
    result = _copy_with_verdicts(
        clients, stack, dlq, step, donation_id=donation_id, reason=reason, force=force, note=note,
        max_messages=max_messages, rate=rate,
    )  # fmt: skip
    result.fallback_reason = fallback
    return result


def _dry_run(dlq: Queue, destination: Queue, listing: StepView, parked: list[AttentionRow], force: bool) -> SafeRedrive:
    """What a redrive would move and skip, moving nothing."""
    result = SafeRedrive(dlq.logical_id, destination.logical_id, "dry-run", without_record=listing.without_record)
    result.moved = [row.donation_id for row in parked if row.redrive or force]
    result.skipped = [Skipped(r.donation_id, r.why, r.hint, r.reason) for r in parked if not (r.redrive or force)]
    return result


def _move_task_redrive(
    clients: Clients,
    stack: Stack,
    dlq: Queue,
    parked: list[AttentionRow],
    *,
    note: str,
    rate: float | None,
    method: str,
    wait_seconds: float,
    sleep: Callable[[float], None],
) -> tuple[SafeRedrive | None, str | None]:
    """The whole DLQ by SQS's move task: (the redrive, None), or (None, why the copy must do it instead)."""
    fallback = move_task_unusable(None, rate)
    if fallback is not None:
        return None, fallback
    try:
        task = redrive(clients, stack, dlq, rate=rate, method="move-task", wait_seconds=wait_seconds, sleep=sleep)
    except (NotImplementedError, ClientError) as error:
        fallback = not_implemented(error)
        if fallback is None or method == "move-task":
            raise
        return None, f"StartMessageMoveTask not available: {fallback}"
    result = SafeRedrive(dlq.logical_id, stack.source_of(dlq).logical_id, "move-task", task=task)
    result.moved = [row.donation_id for row in parked]
    _record_redrives(clients, stack, step_of(stack, dlq), result.moved, note)
    return result, None


def alarms_against_redrive(clients: Clients, stack: Stack, dlq: Queue) -> list[str]:
    """The alarms in ALARM that say the DLQ's step still fails (a redrive now would park its messages
    again); the DLQ's own alarm is not one of them (messages parked is why one redrives)."""
    return [alarm.name for alarm in firing_for_service(clients, stack, step_of(stack, dlq).value)]


def _record_redrives(clients: Clients, stack: Stack, step: Step, donation_ids: list[str], note: str) -> None:
    table = operator_store.donations_table(clients, stack)
    for donation in operator_store.many(table, donation_ids).values():
        with contextlib.suppress(operator_store.RecordChanged):  # the step already ran again: nothing to note
            operator_store.record_redrive(table, donation, step, note)


@dataclass
class _Copy:
    """One redrive by copy: what it moves, and how it decides."""

    sqs: Any
    table: Any
    step: Step
    dlq: Queue
    destination: Queue
    result: SafeRedrive
    pacer: Pacer
    wanted: str | None
    reason: str | None
    force: bool
    note: str

    def message(self, message: Message) -> None:
        donation_id = message_donation(message)
        donation = operator_store.get(self.table, donation_id) if donation_id else None
        parked_reason = string_attributes(message).get("failure_reason")
        shown_reason = (donation.last_error or donation.failure_reason) if donation else parked_reason
        if (self.wanted and donation_id != self.wanted) or (self.reason and self.reason not in (shown_reason or "")):
            return  # not asked for: handed back untouched
        decided = verdict(donation, self.step, parked_reason=parked_reason, force=self.force)
        if not decided.redrive:
            self.result.skipped.append(Skipped(donation_id, decided.why, decided.hint, redact(shown_reason)))
            return
        count = self._count(donation) if donation is not None else None
        shown = donation_id or message["MessageId"]
        try:
            self.pacer.wait()
            _send_back(self.sqs, self.destination.url, message, count)
        except Exception as error:  # stop; the message stays in the DLQ (handed back)
            self.result.error = f"send of {shown} failed: {error}"
            return
        # Sent, then deleted: a failed delete leaves a duplicate, which the idempotent step acknowledges.
        (self.result.moved if _delete(self.sqs, self.dlq.url, message) else self.result.not_deleted).append(shown)

    def _count(self, donation: Any) -> int:
        """Noted before the send: the step may run (and change the record) as soon as it is sent."""
        try:
            return operator_store.record_redrive(self.table, donation, self.step, self.note)
        except operator_store.RecordChanged:
            fresh = operator_store.require(self.table, donation.donation_id)
            return operator_store.record_redrive(self.table, fresh, self.step, self.note)


def _copy_with_verdicts(
    clients: Clients,
    stack: Stack,
    dlq: Queue,
    step: Step,
    *,
    donation_id: str | None,
    reason: str | None,
    force: bool,
    note: str,
    max_messages: int | None,
    rate: float | None,
) -> SafeRedrive:
    sqs, table = clients("sqs"), operator_store.donations_table(clients, stack)
    destination = stack.source_of(dlq)
    result = SafeRedrive(dlq.logical_id, destination.logical_id, "copy")
    copy = _Copy(sqs, table, step, dlq, destination, result, Pacer(rate), donation_id, reason, force, note)
    target = visible_count(sqs, dlq.url)
    with held_messages(sqs, dlq.url) as next_batch:
        looked = 0
        while looked < target and not _enough(result, max_messages):
            batch = next_batch()
            if not batch:
                break
            looked += len(batch)
            for message in batch:
                if _enough(result, max_messages) or result.error:
                    return result
                copy.message(message)
    return result


def _enough(result: SafeRedrive, max_messages: int | None) -> bool:
    return max_messages is not None and len(result.moved) >= max_messages


# --------------------------------------------------------------------------- one donation


def remove_from_dlq(clients: Clients, dlq: Queue, donation_id: str) -> int:
    """Delete the donation's messages from the DLQ (found by receiving; the rest handed back)."""
    sqs, removed = clients("sqs"), 0
    with held_messages(sqs, dlq.url) as next_batch:
        for _ in range(SEARCH_LIMIT // 10 + 1):
            batch = next_batch()
            if not batch:
                break
            for message in batch:
                if message_donation(message) == donation_id and _delete(sqs, dlq.url, message):
                    removed += 1
    return removed


def discard(clients: Clients, stack: Stack, dlq: Queue, donation_id: str, note: str) -> int:
    """Take the donation's message out of the DLQ for good, with the operator's note on the donation."""
    if not note.strip():
        raise OpsError("discard needs --note: say why, for whoever reads the donation next")
    step, table = step_of(stack, dlq), operator_store.donations_table(clients, stack)
    operator_store.record_discard(table, operator_store.require(table, donation_id), step, note)
    return remove_from_dlq(clients, dlq, donation_id)


def fix_email_and_resend(clients: Clients, stack: Stack, donation_id: str, email: str, note: str) -> int:
    """Correct the donor's address and send the receipt to it (a new message on the receipt queue)."""
    if not note.strip():
        raise OpsError("fix-email needs --note: say why, for whoever reads the donation next")
    try:
        address = deliverable_address(email)
    except ValueError as error:
        raise OpsError(f"not an address the receipt can be sent to: {error}") from None
    table = operator_store.donations_table(clients, stack)
    donation = operator_store.require(table, donation_id)
    if donation.status.value != "succeeded":
        raise OpsError(f"{donation_id} is {donation.status.value}: only a charged donation gets a receipt")
    donor_key = operator_store.identifiers(clients, stack).donor_key(address)
    operator_store.record_email_fix(table, donation, address, donor_key, note)
    dlq = next(q for q in stack.dlqs() if stack.source_of(q).logical_id == "ReceiptQueue")
    removed = remove_from_dlq(clients, dlq, donation_id)
    message = FollowUpMessage(type=Step.SEND_RECEIPT, donation_id=donation_id, correlation_id=donation.correlation_id)
    attributes = {
        "donation_id": donation_id,
        "type": Step.SEND_RECEIPT.value,
        "correlation_id": donation.correlation_id,
    }
    clients("sqs").send_message(
        QueueUrl=stack.source_of(dlq).url,
        MessageBody=message.model_dump_json(),
        MessageAttributes={k: {"DataType": "String", "StringValue": v or "-"} for k, v in attributes.items()},
    )
    return removed


__all__ = [
    "QUEUE_NAME",
    "SafeRedrive",
    "Skipped",
    "alarms_against_redrive",
    "discard",
    "fix_email_and_resend",
    "redrive_safely",
]
