"""No secret, client secret, donor email or name in a trace or a log line.

The functions run with the real Powertools Tracer and the X-Ray SDK configured as on Lambda
(``LambdaContext``: a facade segment from ``_X_AMZN_TRACE_ID``, subsegments streamed one by one),
botocore and requests patched as the Tracer patches them, and an emitter that keeps every entity
it would send to the daemon. Stripe's API reference (PaymentIntent object, ``client_secret``):
it "should not be stored, logged, or exposed to anyone other than the customer".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aws_xray_sdk
import pytest
from aws_xray_sdk.core import patch, xray_recorder
from aws_xray_sdk.core.emitters.udp_emitter import UDPEmitter
from aws_xray_sdk.core.lambda_launcher import LambdaContext

from tests.support.keys import a_key
from tests.support.world import DONATION

pytestmark = pytest.mark.integration

# Who donates here appears nowhere else in the suite: any trace of them comes from this test.
DONOR = {
    **DONATION,
    "email": "grace.trace-witness@example.org",
    "name": "Grace Tracewitness",
    "payment_method": "pm_card_authenticationRequired",
}
TRACE_HEADER = "Root=1-67a1b2c3-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1"


class KeepingEmitter(UDPEmitter):
    """Keeps what would go to the X-Ray daemon, serialised as it would be sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    def send_entity(self, entity: Any) -> None:
        self.sent.append(entity.serialize())


@pytest.fixture
def traces(monkeypatch) -> Iterator[KeepingEmitter]:
    emitter = KeepingEmitter()
    previous = (xray_recorder.context, xray_recorder.emitter)
    monkeypatch.setenv("_X_AMZN_TRACE_ID", TRACE_HEADER)
    aws_xray_sdk.global_sdk_config.set_sdk_enabled(True)
    xray_recorder.configure(context=LambdaContext(), emitter=emitter, streaming_threshold=0)
    patch(("botocore", "requests"))  # what the Tracer patches on Lambda (donations.observability)
    yield emitter
    aws_xray_sdk.global_sdk_config.set_sdk_enabled(False)
    xray_recorder.configure(context=previous[0], emitter=previous[1])


def test_a_3d_secure_donation_its_webhook_and_receipt_leave_no_secret_in_traces_or_logs(world, traces, captured_logs):
    # Given API functions that read their secrets afresh (the reads traced too), and a donation that
    # needs 3-D Secure, traced as on Lambda
    for logical_id in ("ChargeFunction", "StripeWebhookFunction"):
        world.pipeline.handler(logical_id).wiring().api_keys.forget()
    answer = world.post(DONOR, key=a_key("trace-3ds"))
    assert answer.status == 202
    client_secret = answer.body["client_secret"]
    donation_id = answer.body["donation_id"]
    intent_id = world.record(donation_id).payment_intent_id
    # When the donor authenticates, Stripe's webhook arrives and the follow-ups (card, receipt) run
    world.stripe.authenticate(intent_id, "succeed")
    assert world.deliver_stripe_event(world.stripe_event("payment_intent.succeeded", intent_id)).status == 200
    world.drain()
    assert len(world.sendgrid.outbox_for(donation_id)) == 1

    # Then every function was traced (the check below reads real segments) ...
    sent = "\n".join(traces.sent)
    for traced in ("create_donation", "receive_stripe_event", "record_handler", "## lambda_handler", "dynamodb", "ssm"):
        assert traced in sent, f"{traced} not traced"
    # ... and neither the traces nor the logs hold a secret or who the donor is
    providers = world.pipeline.providers
    secrets = {
        "client secret": client_secret,
        "Stripe key": providers.stripe_api_key,
        "webhook signing secret": providers.stripe_webhook_secret,
        "SendGrid key": providers.sendgrid_api_key,
        "Turnstile secret": providers.turnstile_secret,
        "identifier secret": world.pipeline.identifier_secret,
        "donor email": DONOR["email"],
        "donor name": DONOR["name"],
    }
    logs = captured_logs()
    for what, value in secrets.items():
        assert value not in sent, f"the {what} is in a trace"
        assert json.dumps(value)[1:-1] not in sent, f"the {what} is in a trace"
        assert value not in logs, f"the {what} is in the logs"
