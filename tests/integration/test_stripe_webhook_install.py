"""``donations-ops stripe install-webhook`` against the Stripe emulator's WebhookEndpoints API and the
stack deployed in moto: the endpoint in our API version with the handler's events, its signing secret
where the webhook function reads it, idempotent; and the handler refusing events of another version.

References nobody here wrote: ``stripe.params.WebhookEndpointCreateParams`` (``api_version`` is a
create parameter only), ``stripe.WebhookEndpoint.secret`` ("Only returned at creation").
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from donations.payments import STRIPE_API_VERSION
from donations.webhooks import HANDLED_EVENT_TYPES
from donations_ops.cli import main
from donations_ops.stripe_webhook import stack_webhook_target
from tests.support.keys import a_key
from tests.support.world import DONATION

pytestmark = pytest.mark.integration

KEY = "sk_test_install_webhook"
OLDER_VERSION = "2025-03-31.basil"  # an account default from before the pinned version


class _Forwarder(http.server.ThreadingHTTPServer):
    """Stripe's side of the wire: what reaches this URL goes to the stack's POST /webhooks/stripe."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.answers: list[int] = []
        super().__init__(("127.0.0.1", 0), _Forward)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/webhooks/stripe"


class _Forward(http.server.BaseHTTPRequestHandler):
    server: _Forwarder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {name: self.headers[name] for name in ("Content-Type", "Stripe-Signature", "User-Agent")}
        answer = self.server.pipeline.call_api("POST", "/webhooks/stripe", body=body.decode(), headers=headers)
        self.server.answers.append(answer.status)
        self.send_response(answer.status)
        self.end_headers()
        self.wfile.write(answer.text.encode())

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def forwarder(world: Any) -> Iterator[_Forwarder]:
    server = _Forwarder(world.pipeline)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def webhook_secret(world: Any) -> Iterator[str]:
    """The webhook function's secret parameter; put back as it was afterwards (other tests sign with it)."""
    pipeline = world.pipeline
    name = pipeline.function_environment()["STRIPE_WEBHOOK_SECRET_NAME"]
    yield name
    pipeline.clients("ssm").put_parameter(
        Name=name, Value=pipeline.providers.stripe_webhook_secret, Type="SecureString", Overwrite=True
    )
    _functions_read_the_secret_again(world)


def _functions_read_the_secret_again(world: Any) -> None:
    # As the functions' 5-minute cache of the parameter running out would.
    world.pipeline.handler("StripeWebhookFunction").wiring().api_keys.forget()


def _install(world: Any, capsys: Any, url: str, *extra: str) -> tuple[int, Any]:
    capsys.readouterr()
    stack = world.pipeline.stack.stack_name
    argv = ["--stack-name", stack, "stripe", "install-webhook", "--url", url, "--stripe-api-base", world.stripe.url]
    code = main([*argv, *extra, "--json"], clients=world.pipeline.clients)
    out, err = capsys.readouterr()
    return code, json.loads(out) if code == 0 else out + err


def _stored_secret(world: Any, name: str) -> str:
    parameter = world.pipeline.clients("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]
    assert parameter["Type"] == "SecureString"
    return str(parameter["Value"])


def test_the_command_installs_the_endpoint_and_events_reach_the_handler_signed_with_its_secret(
    world, forwarder, webhook_secret, capsys, monkeypatch
):
    monkeypatch.setenv("STRIPE_API_KEY", KEY)

    # When the operator installs the webhook
    code, installed = _install(world, capsys, forwarder.url)

    # Then Stripe has one endpoint for the URL, in our API version, sending exactly the handled events
    assert code == 0 and installed["action"] == "created" and installed["secret_stored"] is True
    [endpoint] = world.stripe.account.endpoints.objects.values()
    assert (endpoint["url"], endpoint["api_version"]) == (forwarder.url, STRIPE_API_VERSION)
    assert sorted(endpoint["enabled_events"]) == sorted(HANDLED_EVENT_TYPES)
    # and its signing secret is in the parameter the webhook function reads
    secret = _stored_secret(world, webhook_secret)
    assert secret.startswith("whsec_") and secret != world.pipeline.providers.stripe_webhook_secret
    target = stack_webhook_target(world.pipeline.clients, world.pipeline.stack.stack_name, url=forwarder.url)
    assert target.secret_parameter == webhook_secret  # read from the deployed webhook function itself
    # under the stack's own KMS key, like the provider keys (only the webhook function may decrypt it)
    [described] = world.pipeline.clients("ssm").describe_parameters(
        ParameterFilters=[{"Key": "Name", "Values": [webhook_secret]}]
    )["Parameters"]
    assert target.secrets_key and described["KeyId"] == target.secrets_key
    _functions_read_the_secret_again(world)

    # And a donation's payment_intent.succeeded reaches the handler, verified with that secret: 200
    answer = world.post({**DONATION, "save_card": False}, key=a_key("install-webhook-e2e"))
    assert answer.status == 201
    deliveries = world.stripe.account.endpoints.wait_for(endpoint["id"], 1, timeout=10, delivered_only=True)
    assert [d["type"] for d in deliveries] == ["payment_intent.succeeded"]
    assert forwarder.answers == [200]


def test_running_it_again_changes_nothing_and_an_edited_endpoint_is_brought_back(
    world, forwarder, webhook_secret, capsys, monkeypatch
):
    monkeypatch.setenv("STRIPE_API_KEY", KEY)
    assert _install(world, capsys, forwarder.url)[0] == 0
    secret = _stored_secret(world, webhook_secret)

    code, again = _install(world, capsys, forwarder.url)
    assert code == 0 and again["action"] == "unchanged" and again["secret_stored"] is False

    # Someone narrows the endpoint's events in the Dashboard; the command puts them back, keeping the secret
    [endpoint_id] = world.stripe.account.endpoints.objects
    client = stripe.StripeClient(KEY, base_addresses={"api": world.stripe.url})
    client.v1.webhook_endpoints.update(endpoint_id, params={"enabled_events": ["charge.refunded"], "disabled": True})
    code, fixed = _install(world, capsys, forwarder.url)

    assert code == 0 and fixed["action"] == "updated" and fixed["endpoint_id"] == endpoint_id
    shown = client.v1.webhook_endpoints.retrieve(endpoint_id)
    assert sorted(shown.enabled_events) == sorted(HANDLED_EVENT_TYPES) and shown.status == "enabled"
    assert shown.secret is None  # Stripe shows a secret only at creation: the stored one stays
    assert _stored_secret(world, webhook_secret) == secret
    assert len(world.stripe.account.endpoints.objects) == 1


def test_an_endpoint_set_up_by_hand_in_the_account_default_version_is_refused_then_recreated(
    world, forwarder, webhook_secret, capsys, caplog, monkeypatch
):
    # Given an endpoint set up in the Dashboard: no api_version, so the account's default (an older one)
    monkeypatch.setenv("STRIPE_API_KEY", KEY)
    monkeypatch.setattr(world.stripe.account.endpoints, "account_api_version", OLDER_VERSION)
    client = stripe.StripeClient(KEY, base_addresses={"api": world.stripe.url})
    by_hand = client.v1.webhook_endpoints.create(params={"url": forwarder.url, "enabled_events": ["*"]})
    world.pipeline.clients("ssm").put_parameter(
        Name=webhook_secret, Value=by_hand.secret, Type="SecureString", Overwrite=True
    )
    _functions_read_the_secret_again(world)

    # Its events reach the handler, which refuses them: a 400 Stripe retries, counted and logged
    capsys.readouterr()
    assert world.post({**DONATION, "save_card": False}, key="by-hand-endpoint").status == 201
    world.stripe.account.endpoints.wait_for(by_hand.id, 1, timeout=10)
    assert forwarder.answers[0] == 400
    assert '"WebhookApiVersionMismatches":[1.0]' in capsys.readouterr().out
    refusals = [r for r in caplog.records if getattr(r, "event_api_version", None) == OLDER_VERSION]
    assert refusals and "install-webhook" in refusals[0].getMessage()
    assert world.webhook_event_records() == []  # nothing applied

    # When the operator runs the command, it says why it cannot fix the endpoint in place (exit 1)
    code, said = _install(world, capsys, forwarder.url)
    assert code == 1 and "--recreate" in said and by_hand.id in said

    # And with --recreate: a new endpoint in our version, its secret stored, the old one deleted
    code, recreated = _install(world, capsys, forwarder.url, "--recreate")
    assert code == 0 and recreated["action"] == "recreated" and recreated["api_version"] == STRIPE_API_VERSION
    assert list(world.stripe.account.endpoints.objects) == [recreated["endpoint_id"]]
    assert _stored_secret(world, webhook_secret) not in (by_hand.secret, "")


def test_without_a_key_the_command_is_a_usage_error(world, capsys, monkeypatch):
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)

    code, said = _install(world, capsys, "http://127.0.0.1:9/webhooks/stripe")

    assert code == 2 and "STRIPE_API_KEY" in said

    # Without --url the stack's ApiUrl output names it; moto's stack has none (no REST API): said so
    monkeypatch.setenv("STRIPE_API_KEY", KEY)
    code = main(
        ["--stack-name", world.pipeline.stack.stack_name, "stripe", "install-webhook"], clients=world.pipeline.clients
    )
    assert code == 2 and "pass --url" in capsys.readouterr().err


def test_the_handler_refuses_an_event_of_another_api_version_and_takes_the_same_event_in_ours(world, capsys):
    # Given a donation waiting for 3-D Secure, which the donor then passes
    answer = world.post({**DONATION, "payment_method": "pm_card_authenticationRequired"}, key=a_key("version-check"))
    assert answer.status == 202, answer.body
    donation_id = answer.body["donation_id"]
    intent_id = world.record(donation_id).payment_intent_id
    world.stripe.authenticate(intent_id, "succeed")
    event = world.stripe_event("payment_intent.succeeded", intent_id)
    capsys.readouterr()

    # When Stripe sends it rendered in the account's older default version (an endpoint set up by hand)
    refused = world.deliver_stripe_event({**event, "api_version": OLDER_VERSION})

    # Then it is refused with a 400 Stripe retries, counted, and the donation is untouched
    assert refused.status == 400 and refused.body["error"]["code"] == "api_version_mismatch"
    assert '"WebhookApiVersionMismatches":[1.0]' in capsys.readouterr().out
    assert world.record(donation_id).status.value == "requires_action"
    assert world.webhook_event_records() == []

    # And the same event in the pinned version completes the donation
    assert event["api_version"] == STRIPE_API_VERSION
    assert world.deliver_stripe_event(event).status == 200
    assert world.record(donation_id).status.value == "succeeded"
