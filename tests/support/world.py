"""Helpers the tests use to act on the pipeline and look at its state."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from donations.models import Donation, FollowUpMessage, Step
from donations.settings import (
    ChargeSettings,
    ReconcilerSettings,
    RenewSettings,
    SendReceiptSettings,
    StripeWebhookSettings,
    TokenizeSettings,
)
from donations.wiring import Wiring
from simulator.emulators.stripe import encode_event, sign_payload
from simulator.local.delivery import BatchResult, EventSource, deliver_batch, drain
from simulator.local.events import scheduled_event
from simulator.local.pipeline import ApiAnswer, Pipeline
from tests.support.keys import a_key

# A valid donation body; tests change one field at a time with {**DONATION, "field": value}.
DONATION = {
    "amount": 2500,
    "currency": "usd",
    "email": "ada@example.org",
    "name": "Ada Lovelace",
    "payment_method": "pm_card_visa",
    "save_card": True,
    "metadata": {"campaign": "spring"},
}

# The card-testing limits are out of reach for the suite's other tests, which make many donations (and
# declines) from one address and a few emails; the checks still run on every donation.
# tests/integration/test_card_testing.py puts the template's limits back (World.template_card_testing),
# and tests/attack runs a local stack with them.
CARD_TESTING_OUT_OF_REACH = {
    name: "1000000"
    for name in (
        "CARD_TESTING_IP_ATTEMPTS_PER_HOUR",
        "CARD_TESTING_IP_DECLINES_PER_HOUR",
        "CARD_TESTING_EMAIL_ATTEMPTS_PER_DAY",
        "CARD_TESTING_EMAIL_DECLINES_PER_DAY",
        "CARD_TESTING_CARD_DECLINES_PER_DAY",
        "CARD_TESTING_BREAKER_DECLINES",
    )
}

QUEUES = {
    "tokenize": "TokenizeQueue",
    "receipt": "ReceiptQueue",
    "tokenize_dlq": "TokenizeDLQ",
    "receipt_dlq": "ReceiptDLQ",
    "renewal": "RenewalQueue",
    "renewal_dlq": "RenewalDLQ",
}
CONSUMERS = {"tokenize": "TokenizeFunction", "receipt": "SendReceiptFunction", "renewal": "RenewFunction"}


class AllFunctionSettings(
    ChargeSettings, TokenizeSettings, SendReceiptSettings, ReconcilerSettings, StripeWebhookSettings, RenewSettings
):
    """Every function's settings at once: the tests' process holds all their variables (the pipeline
    merges the functions' environments into it), and the world uses every adapter."""


class World:
    def __init__(self, pipeline: Pipeline, stripe: Any, sendgrid: Any, turnstile: Any = None) -> None:
        self.pipeline = pipeline
        self.stripe = stripe
        self.sendgrid = sendgrid
        self.turnstile = turnstile
        self.settings = AllFunctionSettings.from_env()
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

    def post(
        self, body: dict[str, Any], key: str | None = a_key("a-donation"), headers: dict[str, str] | None = None
    ) -> ApiAnswer:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if key is not None:
            all_headers["Idempotency-Key"] = key
        return self.post_raw(json.dumps(body), headers=all_headers)

    def post_raw(self, raw: str, headers: dict[str, str]) -> ApiAnswer:
        return self.pipeline.call_api("POST", "/donations", body=raw, headers=headers)

    def get(self, path: str) -> ApiAnswer:
        return self.pipeline.call_api("GET", path, headers={"Accept": "application/json"})

    # -- Stripe webhooks ---------------------------------------------------------------------------

    def stripe_event(self, event_type: str, about: str) -> dict[str, Any]:
        """The emulator's latest event of this type about an object (its id, PaymentIntent or Charge)."""
        for event in reversed(self.stripe.events):
            found = event["data"]["object"]
            if event["type"] == event_type and about in (found["id"], found.get("payment_intent"), found.get("charge")):
                return dict(event)
        raise AssertionError(f"no {event_type} event about {about}")

    def deliver_stripe_event(
        self,
        event: dict[str, Any],
        *,
        secret: str | None = None,
        timestamp: int | None = None,
        signed: bool = True,
        body: bytes | None = None,
    ) -> ApiAnswer:
        """POST an event to the webhook route as Stripe does: the body signed, with a fresh timestamp
        unless one is given (so a second call is a redelivery Stripe signed again)."""
        payload = encode_event(event) if body is None else body
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Stripe/1.0"}
        if signed:
            secret = secret or self.pipeline.providers.stripe_webhook_secret
            headers["Stripe-Signature"] = sign_payload(encode_event(event), secret, timestamp)
        return self.pipeline.call_api("POST", "/webhooks/stripe", body=payload.decode(), headers=headers)

    def webhook_event_records(self) -> list[str]:
        """Keys of the webhook's idempotency records (one per applied Stripe event)."""
        client = self.pipeline.clients("dynamodb")
        items = client.scan(TableName=self.pipeline.stack.tables["IdempotencyTable"])["Items"]
        return sorted(item["id"]["S"] for item in items if item["id"]["S"].startswith("stripe-webhook-event#"))

    def consumer(self, name: str) -> Any:
        return self.pipeline.handler(CONSUMERS[name]).consumer()

    def event_sources(self) -> list[EventSource]:
        """The template's event sources, delivered at once: a test hands over what is queued from its own
        thread, so the template's batching window (wait up to 1 s for a fuller batch) would only sleep, a
        second per delivery of fewer than ten messages. Lambda may deliver a batch before its window ends,
        and the local stack's pollers keep the window (simulator.local.delivery.Poller)."""
        return [dataclasses.replace(s, batching_window_seconds=0) for s in self.pipeline.event_sources()]

    def deliver(self, name: str) -> BatchResult:
        source = next(s for s in self.event_sources() if s.name == CONSUMERS[name])
        return self.track(deliver_batch(self.sqs, source))

    def track(self, result: BatchResult) -> BatchResult:
        name = next(name for name, logical_id in CONSUMERS.items() if logical_id == result.source)
        if result.messages:
            self._last_batches[name] = result.messages
        self._in_flight[name] += [m["ReceiptHandle"] for m in result.messages if m["MessageId"] in result.failed_ids]
        return result

    def deliver_raw(self, name: str) -> tuple[Any, list[dict[str, Any]]]:
        result = self.deliver(name)
        return result.response, result.messages

    def drain(self) -> None:
        for result in drain(self.sqs, self.event_sources()):
            self.track(result)

    def redeliver_last_batches(self) -> None:
        """Send the last delivered messages again, as SQS may after they were acknowledged."""
        for name, messages in self._last_batches.items():
            for message in messages:
                self.send(name, message["Body"], message.get("MessageAttributes", {}))
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

    def retrying(self, name: str) -> bool:
        """Messages of this queue failed and wait out a backoff (``expire_backoffs`` lets it pass)."""
        return bool(self._in_flight[name])

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
        self.send(name, message.model_dump_json(), attributes)

    def send_raw(self, name: str, body: str) -> None:
        self.send(name, body, {})

    def duplicate_queued(self, name: str) -> None:
        for message in self.queued(name):
            self.send(name, message["Body"], message.get("MessageAttributes", {}))

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

    def age_charge_attempt(self, donation_id: str, seconds: float) -> None:
        """Let time pass since the donation's current charge attempt started."""
        started = datetime.now(UTC) - timedelta(seconds=seconds)
        self.wiring.store._table.update_item(
            Key={"donation_id": donation_id},
            UpdateExpression="SET charge_attempt_started_at = :t",
            ExpressionAttributeValues={":t": started.isoformat(timespec="milliseconds").replace("+00:00", "Z")},
        )

    def expire_in_progress_requests(self) -> None:
        """Let time pass for requests whose invocation died: their charging leases run out."""
        client = self.pipeline.clients("dynamodb")
        table = self.pipeline.stack.tables["DonationsTable"]
        items = client.scan(
            TableName=table,
            FilterExpression="attribute_exists(charging_until)",
            ProjectionExpression="donation_id",
        )["Items"]
        for item in items:
            client.update_item(
                TableName=table,
                Key={"donation_id": item["donation_id"]},
                UpdateExpression="SET charging_until = :past",
                ExpressionAttributeValues={":past": {"N": "0"}},
            )

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
        """How many donations moto holds. Its DescribeTable ItemCount is live (DynamoDB's is refreshed about
        every six hours), and cheap: a scan deep-copies every item, which made the property tests, counting
        before and after each request, quadratic in the table's size."""
        table = self.pipeline.stack.tables["DonationsTable"]
        return int(self.pipeline.clients("dynamodb").describe_table(TableName=table)["Table"]["ItemCount"])

    # -- plumbing --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def template_card_testing(self, **changes: float) -> Iterator[Any]:
        """Run with the card-testing limits template.yaml gives the charge function (the suite's
        environment puts them out of reach, tests/conftest.py), changed by ``changes`` (VelocityLimits
        and ModeSettings fields); yields the charge function's Screening. Put back on leaving."""
        from donations.attack_mode import ModeSettings
        from donations.velocity import VelocityLimits

        screening = self.pipeline.handler("ChargeFunction").wiring().screening
        template = self.pipeline.stack.functions["ChargeFunction"].environment  # as moto resolved template.yaml

        def value(name: str) -> int:
            return int(changes.get(name, template[f"CARD_TESTING_{name.upper()}"]))

        def rate(name: str) -> float:
            return float(changes.get(name, template[f"CARD_TESTING_{name.upper()}"]))

        saved = (screening.velocity.limits, screening.attack_mode.settings, screening.card_declines_per_day)
        screening.velocity.limits = VelocityLimits(
            **{name: value(name) for name in VelocityLimits.__dataclass_fields__}
        )
        screening.attack_mode.settings = ModeSettings(
            breaker_declines=value("breaker_declines"),
            breaker_decline_rate=rate("breaker_decline_rate"),
            window_seconds=value("breaker_window_seconds"),
            quiet_seconds=value("quiet_seconds"),
            pressure_per_minute=value("pressure_per_minute"),
        )
        screening.card_declines_per_day = value("card_declines_per_day")
        try:
            yield screening
        finally:
            screening.velocity.limits, screening.attack_mode.settings, screening.card_declines_per_day = saved

    @contextlib.contextmanager
    def function_timeout(self, logical_id: str, seconds: float) -> Iterator[None]:
        """Run with a function's Timeout set to ``seconds``, as if template.yaml said so: a provider
        made slow then outlives it in seconds rather than the template's 10-20. On leaving, waits
        for an abandoned invocation to return, so it cannot act during the next test."""
        environment = self.pipeline.environments[logical_id]
        saved = environment.timeout_seconds
        environment.timeout_seconds = seconds
        try:
            yield
        finally:
            environment.wait_until_idle(timeout=60)
            environment.timeout_seconds = saved

    @contextlib.contextmanager
    def provider_timeout(self, logical_id: str, seconds: float) -> Iterator[None]:
        """Run with a function's provider timeout at ``seconds`` (the suite's is 1 s, to fail fast on the faults
        it injects), for tests that send many mails at once and are not about timeouts: under load, the
        in-process SendGrid emulator can answer a send it accepted after more than 1 s, and a send that timed
        out after SendGrid accepted it is sent again, the limit docs/promises.md states (SendGrid's Mail Send
        has no idempotency key). Deployed, it is 8 s (donations.settings)."""
        wiring = self.pipeline.handler(logical_id).wiring()  # the function's, made once at its first use
        saved = wiring.settings
        wiring.settings = saved.model_copy(update={"provider_timeout_seconds": seconds})
        try:
            yield
        finally:
            wiring.settings = saved

    def reset(self) -> None:
        for environment in self.pipeline.environments.values():
            assert environment.wait_until_idle(timeout=60), f"{environment.name} still busy"
        self.stripe.reset()
        self.sendgrid.reset()
        if self.turnstile is not None:
            self.turnstile.reset()
        self._clear_table("DonationsTable", "donation_id")
        self._clear_table("IdempotencyTable", "id")
        # Card testing: every test starts with no counts and no attack mode (nor a cached one).
        self._clear_table("VelocityTable", "pk")
        self._clear_table("PledgesTable", "pledge_id")
        self._clear_table("StatementsTable", "donor_key", "year")
        charge = self.pipeline.handler("ChargeFunction").wiring()
        charge.screening.attack_mode.forget()
        self.expire_backoffs()
        for name in QUEUES:
            self.clear_queue(name)
        for bucket in (self._in_flight, self._visibility, self._last_batches):
            for value in bucket.values():
                value.clear()

    def _clear_table(self, logical_id: str, *key: str) -> None:
        client = self.pipeline.clients("dynamodb")
        table = self.pipeline.stack.tables[logical_id]
        names = {f"#k{i}": name for i, name in enumerate(key)}
        pages = client.get_paginator("scan").paginate(
            TableName=table, ProjectionExpression=", ".join(names), ExpressionAttributeNames=names
        )
        for page in pages:
            for start in range(0, len(page["Items"]), 25):  # BatchWriteItem takes at most 25 requests
                deletes = [
                    {"DeleteRequest": {"Key": {n: i[n] for n in key}}} for i in page["Items"][start : start + 25]
                ]
                client.batch_write_item(RequestItems={table: deletes})

    def send(self, name: str, body: str, attributes: dict[str, Any]) -> None:
        clean = {k: {"DataType": v["DataType"], "StringValue": v["StringValue"]} for k, v in attributes.items()}
        self.sqs.send_message(QueueUrl=self.queue_url(name), MessageBody=body, MessageAttributes=clean)

    def _record_visibility(self, params: dict[str, Any], **_: Any) -> None:
        for name in CONSUMERS:
            if params.get("QueueUrl") == self.queue_url(name):
                self._visibility[name].append(int(params["VisibilityTimeout"]))

    # -- crash recovery --------------------------------------------------------------------------

    @contextlib.contextmanager
    def charge_ports(self, **wrappers: Callable[[Any], Any]) -> Iterator[None]:
        """Wrap the ports the charge handler passes to ``submit_donation`` (store, payments, publisher).

        ``world.charge_ports(store=lambda store: CrashOn(store, "mark_charged"))`` makes the next
        submissions die at that call, like a killed function; everything else stays real.
        """
        module = self.pipeline.handler("ChargeFunction")
        original = module.submit_donation

        def submit(*args: Any, **ports: Any) -> Any:
            wrapped = {name: wrappers[name](port) if name in wrappers else port for name, port in ports.items()}
            return original(*args, **wrapped)

        module.submit_donation = submit
        try:
            yield
        finally:
            module.submit_donation = original

    def reconcile(self, now: datetime | None = None) -> dict[str, int]:
        """One reconciler run, invoked as its schedule does; ``now`` is the run's scheduled time."""
        stack = self.pipeline.stack
        rule = stack.physical_ids.get("ReconcilerFunctionReconcileSchedule", "reconcile-schedule")
        arn = f"arn:aws:events:{stack.region}:{stack.stack_id.split(':')[4]}:rule/{rule}"
        result: dict[str, int] = self.pipeline.invoke(
            "ReconcilerFunction", scheduled_event(arn, at=now, region=stack.region)
        )
        return result

    def stripe_requests(self) -> int:
        return sum(self.stripe.state()["requests"].values())


class Crash(BaseException):
    """The process died here (killed, out of memory, timed out): no except-block of ours runs."""


class CrashOn:
    """A port that behaves like the real one, except that calling one of ``methods`` raises ``error``
    (default :class:`Crash`). Name the clean-up calls too (a ``finally`` releasing a claim) when
    simulating a killed process, which runs none of them."""

    def __init__(self, port: Any, *methods: str, error: BaseException | None = None) -> None:
        self._port = port
        self._methods = frozenset(methods)
        self._error = error
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._port, name)
        if name not in self._methods:
            return attribute

        def crash(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            raise self._error or Crash(f"crashed in {name}")

        return crash


class SlowOn:
    """A port that behaves like the real one, except that ``method`` first takes ``seconds``: work the
    product cannot bound itself (unlike its provider calls, which donations.deadline bounds)."""

    def __init__(self, port: Any, method: str, seconds: float) -> None:
        self._port = port
        self._method = method
        self._seconds = seconds

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._port, name)
        if name != self._method:
            return attribute

        def slow(*args: Any, **kwargs: Any) -> Any:
            time.sleep(self._seconds)  # the simulated work itself, not a wait for something else
            return attribute(*args, **kwargs)

        return slow
