"""Helpers the tests use to act on the pipeline and look at its state."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from donations.models import Donation, FollowUpMessage, Step
from donations.settings import get_settings
from donations.wiring import Wiring
from infra.local.delivery import BatchResult, deliver_batch, drain
from infra.local.pipeline import ApiAnswer, Pipeline

QUEUES = {
    "tokenize": "TokenizeQueue",
    "receipt": "ReceiptQueue",
    "tokenize_dlq": "TokenizeDLQ",
    "receipt_dlq": "ReceiptDLQ",
}
CONSUMERS = {"tokenize": "TokenizeFunction", "receipt": "SendReceiptFunction"}


class World:
    def __init__(self, pipeline: Pipeline, stripe: Any, sendgrid: Any) -> None:
        self.pipeline = pipeline
        self.stripe = stripe
        self.sendgrid = sendgrid
        self.settings = get_settings()
        self.wiring = Wiring(self.settings)
        self.sqs = pipeline.clients("sqs")
        self._in_flight: dict[str, list[str]] = {name: [] for name in CONSUMERS}
        self._visibility: dict[str, list[int]] = {name: [] for name in CONSUMERS}
        self._last_batches: dict[str, list[dict[str, Any]]] = {name: [] for name in CONSUMERS}
        for name in CONSUMERS:
            events = self.consumer(name).sqs_client.meta.events
            events.unregister("provide-client-params.sqs.ChangeMessageVisibility", unique_id="world-visibility")
            events.register(
                "provide-client-params.sqs.ChangeMessageVisibility",
                self._record_visibility,
                unique_id="world-visibility",
            )

    # -- acting ----------------------------------------------------------------------------------

    def post(self, body: dict[str, Any], key: str | None = "key", headers: dict[str, str] | None = None) -> ApiAnswer:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if key is not None:
            all_headers["Idempotency-Key"] = key
        return self.post_raw(json.dumps(body), headers=all_headers)

    def post_raw(self, raw: str, headers: dict[str, str]) -> ApiAnswer:
        return self.pipeline.call_api("POST", "/donations", body=raw, headers=headers)

    def get(self, path: str) -> ApiAnswer:
        return self.pipeline.call_api("GET", path, headers={"Accept": "application/json"})

    def consumer(self, name: str) -> Any:
        return self.pipeline.handler(CONSUMERS[name]).consumer()

    def deliver(self, name: str) -> BatchResult:
        source = next(s for s in self.pipeline.event_sources() if s.name == CONSUMERS[name])
        return self._track(deliver_batch(self.sqs, source))

    def _track(self, result: BatchResult) -> BatchResult:
        name = next(name for name, logical_id in CONSUMERS.items() if logical_id == result.source)
        if result.messages:
            self._last_batches[name] = result.messages
        self._in_flight[name] += [m["ReceiptHandle"] for m in result.messages if m["MessageId"] in result.failed_ids]
        return result

    def deliver_raw(self, name: str) -> tuple[Any, list[dict[str, Any]]]:
        result = self.deliver(name)
        return result.response, result.messages

    def drain(self) -> None:
        for result in drain(self.sqs, self.pipeline.event_sources()):
            self._track(result)

    def redeliver_last_batches(self) -> None:
        """Send the last delivered messages again, as SQS may after they were acknowledged."""
        for name, messages in self._last_batches.items():
            for message in messages:
                self._send(name, message["Body"], message.get("MessageAttributes", {}))
        self.drain()

    def expire_backoffs(self) -> None:
        """Let time pass: every message waiting out a visibility timeout becomes visible again."""
        for name, handles in self._in_flight.items():
            for handle in handles:
                with contextlib.suppress(self.sqs.exceptions.ClientError):  # already deleted or moved
                    self.sqs.change_message_visibility(
                        QueueUrl=self.queue_url(name), ReceiptHandle=handle, VisibilityTimeout=0
                    )
            handles.clear()

    def deliver_until_dead_lettered(self, name: str) -> int:
        """Deliver and let backoffs pass until the message leaves the queue; return how often it was received."""
        receives = 0
        for _ in range(self.settings.max_receive_count + 3):
            result = self.deliver(name)
            if not result.received:
                return receives
            receives += result.received
            self.expire_backoffs()
        raise AssertionError(f"{name}: still being delivered after {receives} receives")

    def send_follow_up(self, name: str, donation_id: str) -> None:
        message = FollowUpMessage(
            type=Step.TOKENIZE if name == "tokenize" else Step.SEND_RECEIPT, donation_id=donation_id
        )
        attributes = {"donation_id": {"DataType": "String", "StringValue": donation_id}}
        self._send(name, message.model_dump_json(), attributes)

    def send_raw(self, name: str, body: str) -> None:
        self._send(name, body, {})

    def duplicate_queued(self, name: str) -> None:
        for message in self.queued(name):
            self._send(name, message["Body"], message.get("MessageAttributes", {}))

    def force_save_card(self, donation_id: str) -> None:
        self.wiring.store._table.update_item(
            Key={"donation_id": donation_id},
            UpdateExpression="SET save_card = :t, card_status = :p",
            ExpressionAttributeValues={":t": True, ":p": "pending"},
        )

    def expire_receipt_claim(self, donation_id: str) -> None:
        self.wiring.store._table.update_item(
            Key={"donation_id": donation_id},
            UpdateExpression="SET receipt_claim_until = :past",
            ExpressionAttributeValues={":past": 0},
        )

    def forget_idempotency_records(self) -> None:
        self._clear_table("IdempotencyTable", "id")

    def clear_queue(self, name: str) -> None:
        """Delete every visible message (PurgeQueue is limited to once a minute, also in moto)."""
        for _ in range(1_000):
            batch = self.sqs.receive_message(QueueUrl=self.queue_url(name), MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
            self.sqs.delete_message_batch(QueueUrl=self.queue_url(name), Entries=entries)

    # -- looking ---------------------------------------------------------------------------------

    def queue_url(self, name: str) -> str:
        return self.pipeline.queue_url(QUEUES[name])

    def missing_queue_url(self) -> str:
        return self.queue_url("receipt").rsplit("/", 1)[0] + "/no-such-queue"

    def queued(self, name: str) -> list[dict[str, Any]]:
        """The messages visible in a queue, left there (made visible again after the look)."""
        seen: dict[str, dict[str, Any]] = {}
        for _ in range(20):
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url(name),
                MaxNumberOfMessages=10,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                VisibilityTimeout=30,
            )
            batch = response.get("Messages", [])
            if not batch:
                break
            for message in batch:
                seen[message["MessageId"]] = message
        for message in seen.values():
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url(name), ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        return list(seen.values())

    def visibility_changes(self, name: str) -> list[int]:
        return list(self._visibility[name])

    def record(self, donation_id: str) -> Donation:
        donation = self.wiring.store.get(donation_id)
        assert donation is not None, donation_id
        return donation

    def donation_ids(self) -> list[str]:
        items = self.wiring.store._table.scan(ProjectionExpression="donation_id")["Items"]
        return sorted(item["donation_id"] for item in items)

    def donation_count(self) -> int:
        return len(self.donation_ids())

    # -- plumbing --------------------------------------------------------------------------------

    def reset(self) -> None:
        self.stripe.reset()
        self.sendgrid.reset()
        self._clear_table("DonationsTable", "donation_id")
        self._clear_table("IdempotencyTable", "id")
        self.expire_backoffs()
        for name in QUEUES:
            self.clear_queue(name)
        for bucket in (self._in_flight, self._visibility, self._last_batches):
            for value in bucket.values():
                value.clear()

    def _clear_table(self, logical_id: str, key: str) -> None:
        client = self.pipeline.clients("dynamodb")
        table = self.pipeline.stack.tables[logical_id]
        for item in client.scan(TableName=table, ProjectionExpression="#k", ExpressionAttributeNames={"#k": key})[
            "Items"
        ]:
            client.delete_item(TableName=table, Key={key: item[key]})

    def _send(self, name: str, body: str, attributes: dict[str, Any]) -> None:
        clean = {k: {"DataType": v["DataType"], "StringValue": v["StringValue"]} for k, v in attributes.items()}
        self.sqs.send_message(QueueUrl=self.queue_url(name), MessageBody=body, MessageAttributes=clean)

    def _record_visibility(self, params: dict[str, Any], **_: Any) -> None:
        for name in CONSUMERS:
            if params.get("QueueUrl") == self.queue_url(name):
                self._visibility[name].append(int(params["VisibilityTimeout"]))
