"""Signed webhook delivery from the Stripe emulator, verified with the real stripe SDK."""

from __future__ import annotations

import json
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe

from simulator.emulators.control import EmulatorControlError
from simulator.emulators.stripe import (
    CONTENT_TYPE,
    DEFAULT_API_VERSION,
    USER_AGENT,
    StripeControl,
    StripeEmulator,
    sign_payload,
)
from simulator.emulators.stripe.objects import declared_fields

pytestmark = pytest.mark.integration

SECRET = "whsec_test_webhooks"
TINY_SCHEDULE = (0.05, 0.1)
SUCCEEDED = "payment_intent.succeeded"


# -- a tiny webhook receiver ---------------------------------------------------------------
@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def signature(self) -> str:
        return self.headers["stripe-signature"]

    @property
    def timestamp(self) -> int:
        return int(self.signature.split(",")[0].removeprefix("t="))

    def event(self, secret: str = SECRET) -> stripe.Event:
        return stripe.Webhook.construct_event(self.body, self.signature, secret)  # type: ignore[no-any-return]

    def json(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.body)
        return body


class Receiver:
    """http.server on 127.0.0.1:0 recording every POST; answers ``statuses`` in turn (then 200),
    after ``delay`` seconds (cut short by ``close``)."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.statuses: list[int] = []
        self.delay = 0.0
        self._arrived = threading.Condition()
        self._released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver.record(Received({k.lower(): v for k, v in self.headers.items()}, body, 0.0))
                receiver._released.wait(receiver.delay)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/webhooks/stripe"

    def record(self, received: Received) -> int:
        with self._arrived:
            self.requests.append(Received(received.headers, received.body, time.monotonic()))
            self._arrived.notify_all()
            return self.statuses.pop(0) if self.statuses else 200

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> None:
        with self._arrived:
            assert self._arrived.wait_for(lambda: len(self.requests) >= n, timeout), f"{len(self.requests)} of {n}"

    def types(self) -> list[str]:
        return [r.json()["type"] for r in self.requests]

    def close(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.close()


@pytest.fixture
def emu(receiver: Receiver) -> Iterator[StripeEmulator]:
    with StripeEmulator(webhook_url=receiver.url, webhook_secret=SECRET, webhook_retry_schedule=TINY_SCHEDULE) as e:
        yield e


@pytest.fixture
def client(emu: StripeEmulator) -> Iterator[stripe.StripeClient]:
    http = stripe.RequestsClient(timeout=5)
    yield stripe.StripeClient("sk_test_webhooks", base_addresses={"api": emu.url}, http_client=http)
    http.close()  # type: ignore[no-untyped-call]


def pay(
    client: stripe.StripeClient, pm: str = "pm_card_visa", donation_id: str = "don_1", key: str | None = None
) -> stripe.PaymentIntent:
    """A confirmed card donation (allowed_payment_method_types=card: no return_url needed)."""
    params: dict[str, Any] = {
        "amount": 2500,
        "currency": "usd",
        "payment_method": pm,
        "confirm": True,
        "allowed_payment_method_types": ["card"],
        "metadata": {"donation_id": donation_id},
    }
    options: dict[str, Any] = {"idempotency_key": key} if key else {}
    return client.v1.payment_intents.create(params=params, options=options)  # type: ignore[arg-type]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def only(emu: StripeEmulator, *types: str) -> None:
    emu.configure_webhooks(emu.webhooks.url, enabled_events=types)


# -- signing ---------------------------------------------------------------------------------
def test_sign_payload_is_stripes_scheme() -> None:
    payload = b'{"id": "evt_1", "object": "event", "type": "x"}'

    header = sign_payload(payload, SECRET, timestamp=1_700_000_000)

    assert header == stripe.WebhookSignature.generate_signature_header(payload.decode(), SECRET, 1_700_000_000)
    assert stripe.WebhookSignature.verify_header(payload, header, SECRET, tolerance=None)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(payload, header, "whsec_other", tolerance=None)
    with pytest.raises(stripe.SignatureVerificationError):  # too old for the default tolerance
        stripe.Webhook.construct_event(payload, header, SECRET)


# -- events ----------------------------------------------------------------------------------
def test_succeeded_payment_is_delivered_as_a_signed_stripe_event(
    emu: StripeEmulator, receiver: Receiver, client: stripe.StripeClient
) -> None:
    pi = pay(client, donation_id="don_hook", key="idem-hook")

    log = emu.wait_for_deliveries(2, timeout=5)

    assert [(e["type"], e["attempt"], e["status"]) for e in log] == [
        ("payment_intent.created", 1, 200),
        (SUCCEEDED, 1, 200),
    ]
    assert receiver.types() == ["payment_intent.created", SUCCEEDED]
    for request in receiver.requests:
        assert request.headers["content-type"] == CONTENT_TYPE == "application/json; charset=utf-8"
        assert request.headers["user-agent"] == USER_AGENT == "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
        assert request.event().id.startswith("evt_")  # the real SDK accepts every delivery
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(request.body, request.signature, "whsec_wrong")
    event = receiver.requests[1].event()
    assert event.type == SUCCEEDED
    raw = receiver.requests[1].json()
    # Every field stripe.Event declares for the pinned version (account and context are null here).
    assert set(raw) == {
        "id", "object", "api_version", "created", "data", "livemode", "pending_webhooks", "request", "type",
        "account", "context",
    }  # fmt: skip
    assert (raw["object"], raw["livemode"], raw["pending_webhooks"]) == ("event", False, 1)
    assert raw["api_version"]  # the request's Stripe-Version
    assert raw["request"]["idempotency_key"] == "idem-hook"
    assert raw["request"]["id"] == pi.last_response.headers["Request-Id"]  # type: ignore[union-attr]
    obj = raw["data"]["object"]
    assert (obj["object"], obj["id"], obj["status"], obj["amount"]) == ("payment_intent", pi.id, "succeeded", 2500)
    assert obj["metadata"] == {"donation_id": "don_hook"} and obj["latest_charge"] == pi.latest_charge
    stored = emu.event(raw["id"])
    assert stored["pending_webhooks"] == 0  # delivered
    assert emu.webhooks.event_status(raw["id"]) == "delivered"


def test_3ds_authentication_outcomes_are_delivered(
    emu: StripeEmulator, receiver: Receiver, client: stripe.StripeClient
) -> None:
    only(emu, SUCCEEDED, "payment_intent.payment_failed")
    ok = pay(client, pm="pm_card_authenticationRequired", donation_id="don_3ds_ok")
    bad = pay(client, pm="pm_card_threeDSecure2Required", donation_id="don_3ds_bad")
    assert (ok.status, bad.status) == ("requires_action", "requires_action")

    StripeControl(emu.url).authenticate(ok.id, "succeed")  # over HTTP
    emu.authenticate(bad.id, "fail")  # in process

    emu.wait_for_deliveries(2, timeout=5)
    first, second = (r.event() for r in receiver.requests)
    assert (first.type, first.data.object["id"], first.data.object["status"]) == (SUCCEEDED, ok.id, "succeeded")
    assert first.api_version == DEFAULT_API_VERSION
    assert (second.type, second.data.object["id"]) == ("payment_intent.payment_failed", bad.id)
    error = receiver.requests[1].json()["data"]["object"]["last_payment_error"]
    assert error["code"] == "payment_intent_authentication_failure"


def test_refund_emits_charge_refunded_with_the_charge(
    emu: StripeEmulator, receiver: Receiver, client: stripe.StripeClient
) -> None:
    only(emu, "charge.refunded")
    pi = pay(client, donation_id="don_refund")

    charge = emu.refund(str(pi.latest_charge))

    assert (charge["refunded"], charge["amount_refunded"]) == (True, 2500)
    [delivered] = emu.wait_for_deliveries(1, timeout=5)
    assert (delivered["type"], delivered["status"]) == ("charge.refunded", 200)
    event = receiver.requests[0].event()
    obj = receiver.requests[0].json()["data"]["object"]
    assert event.type == "charge.refunded"
    assert (obj["object"], obj["id"], obj["payment_intent"]) == ("charge", pi.latest_charge, pi.id)
    assert (obj["amount"], obj["amount_refunded"], obj["refunded"]) == (2500, 2500, True)
    assert obj["metadata"] == {"donation_id": "don_refund"}
    [refund] = emu.refunds_for(pi.id)
    assert emu.refunds == [refund]
    assert (refund["id"][:3], refund["payment_intent"], refund["amount"]) == ("re_", pi.id, 2500)
    assert client.v1.charges.retrieve(str(pi.latest_charge)).refunded is True
    with pytest.raises(ValueError, match="already been refunded"):
        emu.refund(str(pi.latest_charge))
    with pytest.raises(EmulatorControlError) as caught:
        StripeControl(emu.url).refund("ch_missing")
    assert caught.value.status == 404


def test_the_refunds_api_refunds_in_part_replays_its_key_and_refuses_as_stripe_does(
    emu: StripeEmulator, receiver: Receiver, client: stripe.StripeClient
) -> None:
    # stripe.params.RefundCreateParams: payment_intent (or charge), amount, reason, metadata
    only(emu, "refund.created", "charge.refunded")
    pi = pay(client, donation_id="don_api_refund")
    params: stripe.params.RefundCreateParams = {"payment_intent": pi.id, "amount": 1000, "reason": "duplicate"}

    made = client.v1.refunds.create(params=params, options={"idempotency_key": "refund-key-1"})
    replayed = client.v1.refunds.create(params=params, options={"idempotency_key": "refund-key-1"})

    # One refund of 10.00; the Charge counts it, not yet refunded in full
    assert isinstance(made, stripe.Refund) and replayed.id == made.id
    assert (made.amount, made.status, made.reason, made.charge) == (1000, "succeeded", "duplicate", pi.latest_charge)
    charge = client.v1.charges.retrieve(str(pi.latest_charge))
    assert (charge.amount_refunded, charge.refunded) == (1000, False)
    # As Stripe does: refund.created with the Refund, charge.refunded with the Charge's new sum
    emu.wait_for_deliveries(2, timeout=5)
    first, second = (r.json()["data"]["object"] for r in receiver.requests)
    assert [r.event().type for r in receiver.requests] == ["refund.created", "charge.refunded"]
    assert (first["object"], first["id"]) == ("refund", made.id)
    assert (second["object"], second["amount_refunded"]) == ("charge", 1000)

    # Refused (docs.stripe.com/error-codes): more than is left; then, once refunded in full, anything
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.refunds.create(params={"charge": str(pi.latest_charge), "amount": 2000})
    assert too_much.value.code == "amount_too_large"
    client.v1.refunds.create(params={"charge": str(pi.latest_charge)})
    with pytest.raises(stripe.InvalidRequestError) as again:
        client.v1.refunds.create(params={"payment_intent": pi.id})
    assert again.value.code == "charge_already_refunded"
    assert [r["amount"] for r in emu.refunds_for(pi.id)] == [1000, 1500]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.create(params={"payment_intent": pi.id, "charge": str(pi.latest_charge)})


def test_a_disputed_charge_cannot_be_refunded_and_the_dispute_closes_won_or_lost(
    emu: StripeEmulator, receiver: Receiver, client: stripe.StripeClient
) -> None:
    only(emu, "charge.dispute.closed")
    pi = pay(client, donation_id="don_dispute_closes")
    dispute = emu.dispute(str(pi.latest_charge))

    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.refunds.create(params={"payment_intent": pi.id})
    closed = StripeControl(emu.url).close_dispute(dispute["id"], "lost")

    assert refused.value.code == "charge_disputed"
    emu.wait_for_deliveries(1, timeout=5)
    event = receiver.requests[0].event()
    assert (event.type, receiver.requests[0].json()["data"]["object"]["status"]) == ("charge.dispute.closed", "lost")
    assert closed["status"] == "lost"
    with pytest.raises(ValueError, match="already closed"):
        emu.close_dispute(dispute["id"], "won")


def test_dispute_emits_charge_dispute_created(
    emu: StripeEmulator, receiver: Receiver, client: stripe.StripeClient
) -> None:
    only(emu, "charge.dispute.created")
    pi = pay(client, donation_id="don_dispute")

    dispute = StripeControl(emu.url).dispute(str(pi.latest_charge))  # over HTTP

    emu.wait_for_deliveries(1, timeout=5)
    event = receiver.requests[0].event()
    raw = receiver.requests[0].json()
    obj = raw["data"]["object"]
    assert event.type == "charge.dispute.created"
    assert raw["request"] == {"id": None, "idempotency_key": None}  # Stripe-initiated
    assert obj == {**dispute, "balance_transactions": []}  # the withdrawal comes with funds_withdrawn
    assert (obj["object"], obj["id"][:3], obj["charge"], obj["payment_intent"]) == (
        "dispute", "dp_", pi.latest_charge, pi.id
    )  # fmt: skip
    assert (obj["amount"], obj["reason"], obj["status"]) == (2500, "fraudulent", "needs_response")
    assert emu.disputes == emu.disputes_for(pi.id) == [dispute]
    with pytest.raises(ValueError, match="charged back"):
        emu.refund(str(pi.latest_charge))
    with pytest.raises(EmulatorControlError) as caught:
        StripeControl(emu.url).dispute(str(pi.latest_charge))
    assert caught.value.status == 400


DISPUTE_EVENTS = (
    "charge.dispute.created",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.closed",
    "charge.dispute.funds_reinstated",
)


def test_the_fraudulent_dispute_card_is_charged_then_disputed_and_a_won_dispute_gets_its_funds_back(
    emu: StripeEmulator, receiver: Receiver, client: stripe.StripeClient
) -> None:
    # Given 4000000000000259: "charge succeeds, only to be disputed as fraudulent" (docs.stripe.com/testing)
    only(emu, *DISPUTE_EVENTS)
    pi = pay(client, pm="pm_card_createDispute", donation_id="don_dispute_card")
    assert pi.status == "succeeded"
    [dispute] = emu.disputes_for(pi.id)

    # When the dispute is won
    StripeControl(emu.url).close_dispute(dispute["id"], "won")

    # Then: created, funds withdrawn (amount and fee), closed, funds reinstated (amount, fee kept)
    emu.wait_for_deliveries(4, timeout=5)
    events = [request.json() for request in receiver.requests]
    assert [e["type"] for e in events] == list(DISPUTE_EVENTS)
    objects = [e["data"]["object"] for e in events]
    assert [(o["status"], len(o["balance_transactions"])) for o in objects] == [
        ("needs_response", 0),
        ("needs_response", 1),
        ("won", 1),
        ("won", 2),
    ]
    withdrawn, reinstated = objects[3]["balance_transactions"]
    assert (withdrawn["amount"], withdrawn["fee"], withdrawn["net"]) == (-2500, 1500, -4000)
    assert withdrawn["fee_details"][0]["type"] == "stripe_fee"
    assert (reinstated["amount"], reinstated["fee"], reinstated["net"]) == (2500, 0, 2500)
    for bt in (withdrawn, reinstated):
        assert tuple(bt) == declared_fields(stripe.BalanceTransaction)


def test_the_inquiry_card_opens_an_inquiry_that_moves_no_money(
    emu: StripeEmulator, receiver: Receiver, client: stripe.StripeClient
) -> None:
    # Given 4000000000001976: "charge succeeds, only to be disputed as an inquiry" (docs.stripe.com/testing)
    only(emu, *DISPUTE_EVENTS)
    pi = pay(client, pm="pm_card_createDisputeInquiry", donation_id="don_inquiry_card")
    [dispute] = emu.disputes_for(pi.id)

    # When the inquiry closes
    with pytest.raises(ValueError, match="inquiry closes"):
        emu.close_dispute(dispute["id"], "prevented")
    emu.close_dispute(dispute["id"], "warning_closed")

    # Then: created and closed, no balance transaction
    emu.wait_for_deliveries(2, timeout=5)
    events = [request.json() for request in receiver.requests]
    assert [(e["type"], e["data"]["object"]["status"]) for e in events] == [
        ("charge.dispute.created", "warning_needs_response"),
        ("charge.dispute.closed", "warning_closed"),
    ]
    assert all(e["data"]["object"]["balance_transactions"] == [] for e in events)


def test_the_refund_failure_card_refunds_then_fails_the_refund(
    emu: StripeEmulator, receiver: Receiver, client: stripe.StripeClient
) -> None:
    # Given 4000000000005126: the refund "begins as succeeded", then "transitions to failed" (docs.stripe.com/testing)
    only(emu, "charge.refunded", "refund.updated", "refund.failed")
    pi = pay(client, pm="pm_card_refundFail", donation_id="don_refund_fails")

    # When it is refunded in part through the API
    refund = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1000})

    # Then the refund succeeded, then failed: the Charge no longer counts it
    assert refund.status == "succeeded"
    emu.wait_for_deliveries(3, timeout=5)
    events = [request.json() for request in receiver.requests]
    assert [e["type"] for e in events] == ["charge.refunded", "refund.updated", "refund.failed"]
    assert events[0]["data"]["object"]["amount_refunded"] == 1000
    failed = events[2]["data"]["object"]
    assert (failed["id"], failed["status"], failed["failure_reason"]) == (
        refund.id,
        "failed",
        "expired_or_canceled_card",
    )
    charge = client.v1.charges.retrieve(str(pi.latest_charge))
    assert (charge.amount_refunded, charge.refunded) == (0, False)


# -- delivery semantics ----------------------------------------------------------------------
def test_failed_attempt_is_retried_and_re_signed_with_a_fresh_timestamp(
    emu: StripeEmulator, receiver: Receiver, client: stripe.StripeClient
) -> None:
    emu.configure_webhooks(receiver.url, enabled_events=[SUCCEEDED], retry_schedule=[1.0])  # t is in whole seconds
    receiver.statuses = [500]

    pay(client)

    log = emu.wait_for_deliveries(2, timeout=5)
    assert [(e["attempt"], e["status"]) for e in log] == [(1, 500), (2, 200)]
    first, second = receiver.requests
    assert first.body == second.body  # the same event, byte for byte
    assert second.timestamp > first.timestamp and second.signature != first.signature
    assert [log[0]["signed_at"], log[1]["signed_at"]] == [first.timestamp, second.timestamp]
    assert first.event().id == second.event().id
    assert second.at - first.at >= 1.0


def test_errors_are_retried_on_the_schedule_then_given_up(
    emu: StripeEmulator, receiver: Receiver, client: stripe.StripeClient
) -> None:
    only(emu, SUCCEEDED)
    receiver.statuses = [503, 503, 503]

    pay(client)

    log = emu.wait_for_deliveries(3, timeout=5)
    assert [(e["attempt"], e["status"]) for e in log] == [(1, 503), (2, 503), (3, 503)]
    event_id = log[0]["event_id"]
    assert emu.webhooks.event_status(event_id) == "failed"
    assert emu.event(event_id)["pending_webhooks"] == 1


def test_timeouts_and_refused_connections_are_logged_as_errors(
    emu: StripeEmulator, receiver: Receiver, client: stripe.StripeClient
) -> None:
    emu.configure_webhooks(receiver.url, enabled_events=[SUCCEEDED], retry_schedule=[0.05], timeout=0.2)
    receiver.delay = 1.0
    pay(client, donation_id="slow")
    assert [e["status"] for e in emu.wait_for_deliveries(2, timeout=5)] == ["error:timeout", "error:timeout"]

    emu.webhooks.reset()
    receiver.delay = 0.0
    emu.configure_webhooks(f"http://127.0.0.1:{closed_port()}/hook")
    pay(client, donation_id="refused")
    assert [e["status"] for e in emu.wait_for_deliveries(2, timeout=5)] == ["error:connection_refused"] * 2


def test_duplicates_mode_delivers_the_same_event_twice(
    emu: StripeEmulator, receiver: Receiver, client: stripe.StripeClient
) -> None:
    only(emu, SUCCEEDED)
    emu.set_webhook_mode(duplicates=1)

    pay(client, donation_id="dup")
    pay(client, donation_id="single")

    log = emu.wait_for_deliveries(3, timeout=5)
    ids = [r.event().id for r in receiver.requests]
    assert ids[0] == ids[1] != ids[2]
    assert receiver.requests[0].body == receiver.requests[1].body
    assert [e["duplicate"] for e in log] == [False, True, False]
    assert emu.webhooks.modes()["duplicates"] == 0  # used up


def test_reorder_mode_delivers_newest_first(
    emu: StripeEmulator, receiver: Receiver, client: stripe.StripeClient
) -> None:
    only(emu, SUCCEEDED)
    emu.set_webhook_mode(reorder=True, reorder_window=0.3)

    created = [pay(client, donation_id=f"don_{i}").id for i in range(3)]

    emu.wait_for_deliveries(3, timeout=5)
    delivered = [r.event().data.object["id"] for r in receiver.requests]
    assert delivered == list(reversed(created))


def test_pause_queues_events_until_resume(emu: StripeEmulator, receiver: Receiver, client: stripe.StripeClient) -> None:
    only(emu, SUCCEEDED)
    emu.webhooks.pause()
    created = [pay(client, donation_id=f"don_{i}").id for i in range(2)]

    with pytest.raises(TimeoutError):
        emu.wait_for_deliveries(1, timeout=0.3)
    assert receiver.requests == []
    assert emu.state()["webhooks"]["queued"] == 2

    emu.webhooks.resume()
    emu.wait_for_deliveries(2, timeout=5)
    assert [r.event().data.object["id"] for r in receiver.requests] == created


def test_drop_next_loses_events_and_deliver_event_resends_them(
    emu: StripeEmulator, receiver: Receiver, client: stripe.StripeClient
) -> None:
    only(emu, SUCCEEDED)
    emu.set_webhook_mode(drop_next=1)
    lost = pay(client, donation_id="lost")
    kept = pay(client, donation_id="kept")

    log = emu.wait_for_deliveries(2, timeout=5)
    assert [e["status"] for e in log] == ["dropped", 200]
    assert [r.event().data.object["id"] for r in receiver.requests] == [kept.id]

    entry = emu.deliver_event(log[0]["event_id"])  # synchronous, like "Resend" in the Dashboard

    assert (entry["status"], entry["manual"]) == (200, True)
    assert receiver.requests[-1].event().data.object["id"] == lost.id
    assert emu.webhooks.event_status(log[0]["event_id"]) == "delivered"
    # Events created before any endpoint existed are only sent on request, also over HTTP.
    created_event = next(e for e in emu.events if e["type"] == "payment_intent.created")
    assert StripeControl(emu.url).deliver_event(created_event["id"])["status"] == 200
    assert receiver.requests[-1].event().type == "payment_intent.created"


def test_api_call_returns_before_a_slow_receiver_answers(
    emu: StripeEmulator, receiver: Receiver, client: stripe.StripeClient
) -> None:
    only(emu, SUCCEEDED)
    receiver.delay = 2.0

    started = time.monotonic()
    pi = pay(client, donation_id="don_slow")
    elapsed = time.monotonic() - started

    assert pi.status == "succeeded"
    assert elapsed < 1.0
    assert emu.webhook_deliveries == []  # the receiver is still sleeping
    [entry] = emu.wait_for_deliveries(1, timeout=5)
    assert entry["status"] == 200
    assert time.monotonic() - started >= 2.0


def test_stop_does_not_wait_for_an_in_flight_delivery(receiver: Receiver) -> None:
    receiver.delay = 30.0
    emu = StripeEmulator(webhook_url=receiver.url, webhook_secret=SECRET).start()
    http = stripe.RequestsClient(timeout=5)
    client = stripe.StripeClient("sk_test_x", base_addresses={"api": emu.url}, http_client=http)
    pay(client)
    http.close()  # type: ignore[no-untyped-call]
    receiver.wait_for_requests(1)  # the first POST is now parked in the receiver

    started = time.monotonic()
    emu.stop()

    assert time.monotonic() - started < 2.0
    assert not emu.webhooks.running


def test_reset_clears_events_deliveries_and_modes(
    emu: StripeEmulator, receiver: Receiver, client: stripe.StripeClient
) -> None:
    pay(client)
    emu.wait_for_deliveries(2, timeout=5)
    emu.set_webhook_mode(paused=True, duplicates=2, reorder=True, drop_next=1)

    StripeControl(emu.url).reset()

    assert emu.events == [] and emu.webhook_deliveries == []
    assert emu.webhooks.modes() == {
        "paused": False, "duplicates": 0, "duplicate_rate": 0.0, "reorder": False, "reorder_window": 0.25,
        "drop_next": 0,
    }  # fmt: skip
    assert emu.webhooks.url == receiver.url  # the endpoint is configuration, not state
    pay(client)
    assert len(emu.wait_for_deliveries(2, timeout=5)) == 2


# -- control API and CLI ---------------------------------------------------------------------
def test_http_control_configures_endpoint_modes_and_waits(receiver: Receiver) -> None:
    with StripeEmulator() as emu:
        control = StripeControl(emu.url)
        config = control.configure_webhooks(receiver.url, SECRET, enabled_events=[SUCCEEDED], retry_schedule=[0.05])
        assert (config["url"], config["enabled_events"], config["retry_schedule"]) == (
            receiver.url,
            [SUCCEEDED],
            [0.05],
        )
        assert control.set_webhook_mode(paused=True)["paused"] is True
        http = stripe.RequestsClient(timeout=5)
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": emu.url}, http_client=http)
        pay(client)
        http.close()  # type: ignore[no-untyped-call]
        with pytest.raises(TimeoutError):
            control.wait_for_deliveries(1, timeout=0.2)

        control.set_webhook_mode(paused=False)

        [entry] = control.wait_for_deliveries(1, timeout=5, delivered_only=True)
        assert (entry["type"], entry["status"]) == (SUCCEEDED, 200)
        assert control.state()["webhook_deliveries"] == [entry]
        assert receiver.requests[0].event().type == SUCCEEDED
        with pytest.raises(EmulatorControlError) as caught:
            control.set_webhook_mode(duplicate_rate=2.0)
        assert caught.value.status == 400
        with pytest.raises(EmulatorControlError) as caught:
            control.configure_webhooks("ftp://nope")
        assert caught.value.status == 400


def test_cli_flags_configure_delivery(receiver: Receiver) -> None:
    cmd = [sys.executable, "-m", "simulator.emulators.stripe", "--port", "0"]
    cmd += ["--webhook-url", receiver.url, "--webhook-secret", SECRET, "--webhook-retry-schedule", "0.05,0.1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)  # noqa: S603 (fixed argv)
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(timeout=10), "emulator did not start"
        line = proc.stdout.readline()
        url = line.rsplit(" ", 1)[-1].strip()
        assert line.startswith("stripe-emulator listening on http://127.0.0.1:")
        control = StripeControl(url)
        assert control.call("GET", "webhooks")["retry_schedule"] == [0.05, 0.1]
        http = stripe.RequestsClient(timeout=5)
        pay(stripe.StripeClient("sk_test_x", base_addresses={"api": url}, http_client=http))
        http.close()  # type: ignore[no-untyped-call]
        control.wait_for_deliveries(2, timeout=5)
        assert [r.event().type for r in receiver.requests] == ["payment_intent.created", SUCCEEDED]
    finally:
        proc.terminate()
        proc.wait(timeout=5)
