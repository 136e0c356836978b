"""Deliver SQS messages to a handler the way Lambda's event source mapping does.

Receive up to BatchSize messages (waiting up to the batching window to fill the batch), invoke
the handler with a real-shaped SQS event and a Lambda context, then delete only the records not
listed in ``batchItemFailures``. Failed records stay in flight until their visibility timeout
ends, so the queue's RedrivePolicy moves them to the DLQ after maxReceiveCount, as on AWS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulator.local.events import LambdaContext, sqs_event

log = logging.getLogger("donations.local.delivery")

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class EventSource:
    """One SQS event source mapping: which queue feeds which handler, and how."""

    name: str
    queue_url: str
    queue_arn: str
    handler: Handler
    batch_size: int = 10
    batching_window_seconds: float = 0.0
    function_timeout_seconds: float = 30.0
    report_batch_item_failures: bool = True


@dataclass
class BatchResult:
    source: str = ""
    received: int = 0
    failed_ids: list[str] = field(default_factory=list)
    handler_error: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list, repr=False)
    response: Any = field(default=None, repr=False)

    @property
    def succeeded(self) -> int:
        return self.received - len(self.failed_ids)


def deliver_batch(sqs: Any, source: EventSource, *, wait_seconds: int = 0) -> BatchResult:
    messages = _receive_batch(sqs, source, wait_seconds)
    if not messages:
        return BatchResult(source.name)
    context = LambdaContext(function_name=source.name, timeout_seconds=source.function_timeout_seconds)
    try:
        response = source.handler(sqs_event(messages, source.queue_arn), context)
    except Exception as error:
        # A raised error fails the whole batch: every message returns after its visibility timeout.
        log.exception("%s: handler raised; %d messages left for retry", source.name, len(messages))
        return BatchResult(source.name, len(messages), [m["MessageId"] for m in messages], repr(error), messages)
    failed = _failed_ids(response, messages, source)
    done = [m for m in messages if m["MessageId"] not in failed]
    for start in range(0, len(done), 10):
        chunk = done[start : start + 10]
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)]
        sqs.delete_message_batch(QueueUrl=source.queue_url, Entries=entries)
    return BatchResult(source.name, len(messages), sorted(failed), None, messages, response)


def _receive_batch(sqs: Any, source: EventSource, wait_seconds: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + source.batching_window_seconds
    wait = wait_seconds
    while len(messages) < source.batch_size:
        response = sqs.receive_message(
            QueueUrl=source.queue_url,
            MaxNumberOfMessages=min(10, source.batch_size - len(messages)),
            WaitTimeSeconds=wait,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        received = response.get("Messages", [])
        messages.extend(received)
        if time.monotonic() >= deadline or not messages:
            break
        wait = 0
        if not received:
            time.sleep(0.05)  # inside the batching window: look again shortly for more messages
    return messages


def _failed_ids(response: Any, messages: list[dict[str, Any]], source: EventSource) -> set[str]:
    if not source.report_batch_item_failures:
        return set()
    items = (response or {}).get("batchItemFailures", []) if isinstance(response, dict) else []
    known = {m["MessageId"] for m in messages}
    failed = {item.get("itemIdentifier") for item in items}
    if failed - known:
        # Lambda treats an unknown or empty identifier as a failure of the whole batch.
        return known
    return {identifier for identifier in failed if identifier}


def drain(sqs: Any, sources: list[EventSource], *, max_batches: int = 1_000) -> list[BatchResult]:
    """Deliver until no source returns a message (bounded). Messages waiting out a backoff are not waited for."""
    results: list[BatchResult] = []
    for _ in range(max_batches):
        round_results = [deliver_batch(sqs, source) for source in sources]
        results.extend(r for r in round_results if r.received)
        if not any(r.received for r in round_results):
            return results
    raise RuntimeError(f"Queues still busy after {max_batches} batches")


class Poller(threading.Thread):
    """A long-polling delivery loop for one event source, stopped by ``stop()``."""

    def __init__(
        self, sqs: Any, source: EventSource, on_batch: Callable[[EventSource, BatchResult], None] | None = None
    ):
        super().__init__(name=f"poller-{source.name}", daemon=True)
        self._sqs = sqs
        self._source = source
        self._on_batch = on_batch
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                result = deliver_batch(self._sqs, self._source, wait_seconds=1)
            except Exception:
                if self._stopping.is_set():
                    # Cut off by the stop (moto is gone): the message stays in a queue about to be forgotten.
                    log.debug("%s: delivery cut off by the stop", self._source.name)
                    return
                log.exception("%s: delivery failed; retrying", self._source.name)
                self._stopping.wait(1)
                continue
            if result.received and self._on_batch:
                self._on_batch(self._source, result)
