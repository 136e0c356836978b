"""SnapStart's hooks with the real clients and handlers: registered at INIT, no connection crosses a restore.

The function's own clients (donations.wiring's boto3 clients, the Stripe client with its requests
session) call a loopback HTTP/1.1 server that keeps connections alive and counts them, opened and
closed. The hooks run as Lambda's runtime runs them (tests/support/snapstart_runtime.py).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from donations.payments import build_stripe_client
from donations.settings import ChargeSettings
from donations.warmup import warm_up
from donations.wiring import Wiring
from tests.support.init_probe import after_init
from tests.support.records import a_donation
from tests.support.snapstart_runtime import restore, take_snapshot

pytestmark = pytest.mark.integration


class _Counting(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _KeepAlive)
        self.changed = threading.Condition()
        self.opened = 0
        self.closed = 0

    def count(self, opened: int = 0, closed: int = 0) -> None:
        with self.changed:
            self.opened += opened
            self.closed += closed
            self.changed.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)


# The fields of a PaymentIntent (stripe/_payment_intent.py) the charge reads from a succeeded one.
_INTENT_TAIL = b'"payment_method": "pm_card_visa", "latest_charge": null, "client_secret": null}'


class _KeepAlive(BaseHTTPRequestHandler):
    """One instance per connection; HTTP/1.1, so the connection stays open until the client closes it."""

    protocol_version = "HTTP/1.1"
    server: _Counting

    def setup(self) -> None:
        super().setup()
        self.server.count(opened=1)

    def finish(self) -> None:
        super().finish()
        self.server.count(closed=1)

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        # DynamoDB's GetItem of a missing item answers {} ("If there is no matching item, GetItem does not
        # return any data"), as SQS's GetQueueAttributes may; the Stripe SDK makes an object of whatever
        # JSON object comes back; SSM's GetParameter answers the parameter (the Stripe key).
        if self.path.startswith("/v1/"):
            body = b'{"id": "pi_snapstart", "object": "payment_intent", "status": "succeeded", ' + _INTENT_TAIL
        elif self.headers.get("X-Amz-Target") == "AmazonSSM.GetParameter":
            body = b'{"Parameter": {"Name": "/donations/stripe-api-key", "Type": "SecureString", "Value": "sk_test_x"}}'
        else:
            body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Counting]:
    counting = _Counting()
    thread = threading.Thread(target=counting.serve_forever, daemon=True)
    thread.start()
    yield counting
    counting.shutdown()
    counting.server_close()


def _charge_settings(server: _Counting, monkeypatch: pytest.MonkeyPatch) -> ChargeSettings:
    """The charge function's settings, every client pointed at the counting server."""
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    return ChargeSettings.from_env(
        {
            "DONATIONS_TABLE": "donations-snapstart",
            "TOKENIZE_QUEUE_URL": f"{url}/123456789012/tokenize",
            "RECEIPT_QUEUE_URL": f"{url}/123456789012/receipt",
            "STRIPE_CHARGE_SECRET_NAME": "/donations/stripe/charge-key",
            "VELOCITY_TABLE": "velocity-snapstart",  # card testing's settings (the charge function requires them)
            "TURNSTILE_SITEKEY": "1x00000000000000000000AA",
            "FORM_HOSTNAMES": "donate.example.org",  # where the form is served: Turnstile tokens must come from there
            "TURNSTILE_SECRET_NAME": "/donations/turnstile-secret-key",
            "IDENTIFIER_SECRET_NAME": "/donations/identifier-secret",
            "PLEDGES_TABLE": "pledges-snapstart",  # the manage links' routes (the charge function serves them)
            "PLEDGE_LINK_SECRET_NAME": "/donations/pledge-link-key",
            "MANAGE_PAGE_URL": "https://donate.example.org/manage",
            "STRIPE_API_BASE": url,
            "STRIPE_MAX_NETWORK_RETRIES": "0",
            "CORS_ORIGIN": "*",
            "ALLOWED_CURRENCIES": "usd",
            "MIN_AMOUNT": "100",
            "MAX_AMOUNT": "5000000",
        }
    )


def test_no_connection_crosses_a_snapshot_or_a_restore(server: _Counting, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the charge function's clients, pointed at the counting server
    settings = _charge_settings(server, monkeypatch)
    wiring = Wiring(settings)
    stripe_client = build_stripe_client(settings, "sk_test_snapstart")

    def call_both() -> None:
        wiring.dynamodb.get_item(TableName="donations-snapstart", Key={"donation_id": {"S": "don_1"}})
        # From a worker thread, as work handed to a pool would be: the hooks run on the runtime's thread.
        worker = threading.Thread(target=stripe_client.v1.payment_intents.retrieve, args=("pi_snapstart",))
        worker.start()
        worker.join(timeout=10)

    # When they made their calls (as a handler might during INIT), the snapshot is taken
    call_both()
    assert server.wait_for(lambda: server.opened == 2)
    assert server.closed == 0  # kept alive for the next call
    take_snapshot()

    # Then both connections are closed, and the calls after a restore open new ones
    assert server.wait_for(lambda: server.closed == 2), (server.opened, server.closed)
    restore()
    call_both()
    assert server.wait_for(lambda: server.opened == 4)

    # And the restore hook closes whatever is open when it runs, not only what the snapshot held
    restore()
    assert server.wait_for(lambda: server.closed == 4), (server.opened, server.closed)


def test_after_a_warm_up_the_first_charge_reuses_the_connection(
    server: _Counting, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the charge function's wiring, every client pointed at the counting server
    wiring = Wiring(_charge_settings(server, monkeypatch))

    # When the warm-up runs (POST /warmup), each client opens its connections: Parameter Store (the key),
    # Stripe, the Donations table, SQS, and the velocity table (one to three: its reads overlap or not)
    warmed = warm_up(wiring.connection_openers())
    velocity = {f"DynamoDB velocity {n}" for n in (1, 2, 3)}
    assert set(warmed) == {"Stripe", "DynamoDB donations", "SQS"} | velocity
    assert server.wait_for(lambda: server.opened >= 5), server.opened
    opened = server.opened

    # Then the donation's charge, through the function's own client, opens no connection: it reuses
    # the one the warm-up opened (no new TCP and TLS handshake on the donor's path)
    outcome = wiring.payments.charge(a_donation(status="pending"))
    assert outcome.payment_intent_id == "pi_snapstart"
    assert (server.opened, server.closed) == (opened, 0)
    # And so do the DynamoDB and SQS calls that follow it
    wiring.store.get("don_" + "b" * 26)
    wiring.publisher.publish(a_donation(), "correlation")
    assert (server.opened, server.closed) == (opened, 0)


CHECK_HOOKS = """
import json, snapshot_restore_py
import {module}
print(json.dumps([f"{{func.__module__}}.{{func.__name__}}" for func, _, _ in
                  snapshot_restore_py.get_before_snapshot() + snapshot_restore_py.get_after_restore()]))
"""


@pytest.mark.parametrize("logical_id", ["ChargeFunction", "StripeWebhookFunction"])
def test_the_snapstart_functions_register_the_hooks_at_init(pipeline, logical_id: str) -> None:
    # Lambda runs only the hooks registered by modules the handler imports, during INIT.
    spec = pipeline.stack.functions[logical_id]
    environment = {**os.environ, **pipeline.function_environment(), **spec.environment}

    registered = after_init(spec, CHECK_HOOKS, environment)

    assert registered == ["donations.snapstart.before_snapshot", "donations.snapstart.after_restore"]
