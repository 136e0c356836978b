"""Move DLQ messages back to their source queue: SQS's message move task where it exists, else a safe copy.

The copy never loses a message: each one is sent to the destination first and deleted from the
DLQ only after the send succeeded. A crash between the two leaves the message in both queues;
the consumers are idempotent, so a duplicate costs one extra no-op delivery.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from donations_ops.aws import Clients
from donations_ops.queues import Message, receive, release
from donations_ops.stack_resources import OpsError, Queue, Stack

COPY_VISIBILITY_SECONDS = 30
"""How long a message being copied stays hidden in the DLQ; batches are sized to finish well within it."""
MOVE_TASK_MAX_RATE = 500
"""StartMessageMoveTask's MaxNumberOfMessagesPerSecond: an integer from 1 to 500."""
REPLAY_SEARCH_LIMIT = 1000
_EMPTY_RECEIVES = 2
_TASK_DONE = ("COMPLETED", "FAILED", "CANCELLED")
_NOT_IMPLEMENTED_CODES = {
    "NotImplemented", "NotImplementedError", "InternalFailure", "InternalError", "500", "501",
    # SQS's own refusal (botocore's sqs model lists it for StartMessageMoveTask); the local stack's moto answers it.
    "UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation",
}  # fmt: skip

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class MessageNotFound(Exception):
    """The message id is not among the DLQ's visible messages."""


@dataclass
class RedriveResult:
    dlq: str
    destination: str
    method: str
    """"move-task", "copy" or "dry-run"."""
    moved: int = 0
    message_ids: list[str] = field(default_factory=list)
    """Moved by the copy (the move task does not say which)."""
    not_deleted: list[str] = field(default_factory=list)
    """Sent to the destination but still in the DLQ (delete failed): they will be delivered twice."""
    would_move: int | None = None
    fallback_reason: str | None = None
    task_handle: str | None = None
    task_status: str | None = None
    note: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.not_deleted and self.task_status not in ("FAILED", "CANCELLED")


class Pacer:
    """At most ``rate`` calls per second: N calls take at least (N - 1) / rate seconds."""

    def __init__(self, rate: float | None, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> None:
        if rate is not None and rate <= 0:
            raise OpsError("--rate must be greater than 0")
        self._interval = 1.0 / rate if rate else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    def wait(self) -> None:
        if not self._interval:
            return
        now = self._clock()
        if self._next is not None and now < self._next:
            self._sleep(self._next - now)
            now = self._next
        self._next = now + self._interval


# --------------------------------------------------------------------------- the whole DLQ


def redrive(
    clients: Clients,
    stack: Stack,
    dlq: Queue,
    *,
    max_messages: int | None = None,
    rate: float | None = None,
    dry_run: bool = False,
    method: str = "auto",
    wait_seconds: float = 60.0,
    sleep: Sleep = time.sleep,
) -> RedriveResult:
    """Move the DLQ's messages back to the queue they failed in.

    ``method``: "auto" (move task, else copy), "move-task" or "copy". The move task cannot stop
    after N messages or move fewer than 1 message per second, so ``max_messages`` and such rates
    use the copy.
    """
    sqs = clients("sqs")
    destination = stack.source_of(dlq)
    result = RedriveResult(dlq.logical_id, destination.logical_id, method)
    if dry_run:
        visible = visible_count(sqs, dlq.url)
        result.method = "dry-run"
        result.would_move = visible if max_messages is None else min(visible, max_messages)
        return result
    if method in ("auto", "move-task"):
        reason = move_task_unusable(max_messages, rate)
        if reason is None:
            try:
                result.task_handle = start_move_task(sqs, dlq, destination, rate)
            except (NotImplementedError, ClientError) as error:
                reason = not_implemented(error)
                if reason is None or method == "move-task":
                    raise
                reason = f"StartMessageMoveTask not available: {reason}"
            else:
                return _await_move_task(sqs, dlq, result, wait_seconds, sleep)
        elif method == "move-task":
            raise OpsError(f"--method move-task: {reason}")
        result.fallback_reason = reason
    copied = copy_messages(
        sqs, dlq_url=dlq.url, destination_url=destination.url, max_messages=max_messages, rate=rate, sleep=sleep
    )
    return dataclasses.replace(
        copied, dlq=dlq.logical_id, destination=destination.logical_id, fallback_reason=result.fallback_reason
    )


def visible_count(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"].get("ApproximateNumberOfMessages", 0))


def move_task_unusable(max_messages: int | None, rate: float | None) -> str | None:
    if max_messages is not None:
        return "--max given (a move task moves everything)"
    if rate is not None and (rate != int(rate) or not 1 <= rate <= MOVE_TASK_MAX_RATE):
        return f"--rate {rate:g} (a move task takes a whole number from 1 to {MOVE_TASK_MAX_RATE})"
    return None


def not_implemented(error: BaseException) -> str | None:
    """Why the endpoint cannot run move tasks (moto), or None for a real error (permissions, bad ARN...)."""
    if isinstance(error, NotImplementedError):  # moto in-process
        return str(error) or "not implemented"
    if isinstance(error, ClientError):  # moto server: an HTML 500 page
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _NOT_IMPLEMENTED_CODES or status in (500, 501):
            return f"{code.removeprefix('AWS.SimpleQueueService.') or status} from the endpoint"
    return None


def start_move_task(sqs: Any, dlq: Queue, destination: Queue, rate: float | None) -> str:
    """Start SQS's own redrive (StartMessageMoveTask); return the task handle."""
    arguments: dict[str, Any] = {"SourceArn": dlq.arn, "DestinationArn": destination.arn}
    if rate is not None:
        arguments["MaxNumberOfMessagesPerSecond"] = int(rate)
    return str(sqs.start_message_move_task(**arguments)["TaskHandle"])


def _await_move_task(sqs: Any, dlq: Queue, result: RedriveResult, wait_seconds: float, sleep: Sleep) -> RedriveResult:
    result.method = "move-task"
    try:
        task = wait_for_move_task(sqs, dlq.arn, str(result.task_handle), wait_seconds=wait_seconds, sleep=sleep)
    except (NotImplementedError, ClientError) as error:
        # The task runs anyway; only its progress is unknown (e.g. no sqs:ListMessageMoveTasks permission).
        result.task_status, result.note = "UNKNOWN", f"cannot poll the task: {error}"
        return result
    result.task_status = task.get("Status", "RUNNING")
    result.moved = int(task.get("ApproximateNumberOfMessagesMoved", 0))
    if task.get("FailureReason"):
        result.error = str(task["FailureReason"])
    return result


def wait_for_move_task(
    sqs: Any,
    dlq_arn: str,
    task_handle: str,
    *,
    wait_seconds: float,
    poll_seconds: float = 2.0,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> dict[str, Any]:
    """Poll ListMessageMoveTasks until the task ends or ``wait_seconds`` pass; return its last description."""
    deadline = clock() + wait_seconds
    while True:
        task = _find_task(sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=10), task_handle)
        if task.get("Status") in _TASK_DONE or clock() >= deadline:
            return task
        sleep(min(poll_seconds, max(0.0, deadline - clock())))


def _find_task(response: dict[str, Any], task_handle: str) -> dict[str, Any]:
    results: list[dict[str, Any]] = response.get("Results", [])
    # Only a running task carries its handle; a finished one is the most recent (first) result.
    return next((t for t in results if t.get("TaskHandle") == task_handle), results[0] if results else {})


# --------------------------------------------------------------------------- the copy


def copy_messages(
    sqs: Any,
    *,
    dlq_url: str,
    destination_url: str,
    max_messages: int | None = None,
    rate: float | None = None,
    visibility_timeout: int = COPY_VISIBILITY_SECONDS,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> RedriveResult:
    """Receive → send (same body and attributes) → delete, at most ``rate`` sends per second.

    Stops after ``max_messages``, else after as many as were visible when it started (messages
    that fail again and come back while it runs wait for the next redrive instead of looping).
    On a failed send it stops and makes the unsent messages visible again: nothing is deleted
    that was not sent.
    """
    pacer = Pacer(rate, clock=clock, sleep=sleep)
    result = RedriveResult(dlq_url, destination_url, "copy")
    target = max_messages if max_messages is not None else visible_count(sqs, dlq_url)
    batch_size = _batch_size(rate, visibility_timeout)
    empty = 0
    while result.moved + len(result.not_deleted) < target and empty < _EMPTY_RECEIVES:
        wanted = min(batch_size, target - result.moved - len(result.not_deleted))
        batch = receive(sqs, dlq_url, wanted, visibility_timeout)
        empty = 0 if batch else empty + 1
        if not _copy_batch(sqs, batch, dlq_url, destination_url, pacer, result):
            break
    return result


def _batch_size(rate: float | None, visibility_timeout: int) -> int:
    # A batch must be sent within half the visibility timeout, or its receipt handles expire first.
    return 10 if not rate else max(1, min(10, math.floor(rate * visibility_timeout / 2)))


def _copy_batch(
    sqs: Any, batch: list[Message], dlq_url: str, destination_url: str, pacer: Pacer, result: RedriveResult
) -> bool:
    """Copy one received batch; False after a failed send (the rest of the batch is handed back)."""
    for index, message in enumerate(batch):
        try:
            pacer.wait()
            send_copy(sqs, destination_url, message)
        except ClientError as error:
            result.error = f"send of {message['MessageId']} failed: {error}"
            release(sqs, dlq_url, [m["ReceiptHandle"] for m in batch[index:]])
            return False
        except BaseException:  # interrupted (Ctrl-C): hand back what was not sent, then stop
            release(sqs, dlq_url, [m["ReceiptHandle"] for m in batch[index:]])
            raise
        _delete_after_send(sqs, dlq_url, message, result)
    return True


def send_copy(sqs: Any, queue_url: str, message: Message) -> str:
    """Send the message's body and message attributes to another queue; return the new message id."""
    attributes = {name: _attribute(value) for name, value in (message.get("MessageAttributes") or {}).items()}
    arguments: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": message["Body"]}
    if attributes:
        arguments["MessageAttributes"] = attributes
    return str(sqs.send_message(**arguments)["MessageId"])


def _attribute(value: dict[str, Any]) -> dict[str, Any]:
    # Received attributes also carry empty list fields SendMessage refuses; keep the type and the value.
    kept: dict[str, Any] = {"DataType": value["DataType"]}
    kept.update({key: value[key] for key in ("StringValue", "BinaryValue") if key in value})
    return kept


def _delete_after_send(sqs: Any, dlq_url: str, message: Message, result: RedriveResult) -> None:
    try:
        sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
    except ClientError:
        # Sent but still in the DLQ (handle expired?): a duplicate later, which consumers tolerate.
        result.not_deleted.append(message["MessageId"])
        return
    result.moved += 1
    result.message_ids.append(message["MessageId"])


# --------------------------------------------------------------------------- one message


@dataclass(frozen=True)
class ReplayResult:
    message_id: str
    new_message_id: str
    dlq: str
    destination: str
    deleted: bool
    """False: sent, but the DLQ copy could not be deleted (it will be delivered twice)."""


def replay(
    sqs: Any,
    *,
    dlq_url: str,
    destination_url: str,
    message_id: str,
    search_limit: int = REPLAY_SEARCH_LIMIT,
    visibility_timeout: int = COPY_VISIBILITY_SECONDS,
) -> ReplayResult:
    """Move one message (by SQS message id) from the DLQ to the destination: send, then delete.

    The messages looked at on the way are handed back at once. Raises MessageNotFound when the id
    is not among the first ``search_limit`` visible messages.
    """
    held: list[Message] = []
    try:
        found = _find_message(sqs, dlq_url, message_id, held, search_limit, visibility_timeout)
        if found is None:
            raise MessageNotFound(
                f"message {message_id} is not in the DLQ ({len(held)} visible messages looked at; "
                "a message being received by someone else is invisible for a while)"
            )
        new_id = send_copy(sqs, destination_url, found)  # if this raises, `finally` hands the message back
        held.remove(found)
        try:
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=found["ReceiptHandle"])
            deleted = True
        except ClientError:
            deleted = False
        return ReplayResult(message_id, new_id, dlq_url, destination_url, deleted)
    finally:
        release(sqs, dlq_url, [m["ReceiptHandle"] for m in held])


def _find_message(
    sqs: Any, dlq_url: str, message_id: str, held: list[Message], limit: int, visibility_timeout: int
) -> Message | None:
    empty = 0
    for _ in range(limit // 10 + 1 + _EMPTY_RECEIVES):
        if len(held) >= limit or empty >= _EMPTY_RECEIVES:
            return None
        batch = receive(sqs, dlq_url, 10, visibility_timeout)
        empty = 0 if batch else empty + 1
        held.extend(batch)
        found = next((m for m in batch if m["MessageId"] == message_id), None)
        if found is not None:
            return found
    return None
