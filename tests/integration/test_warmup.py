"""POST /warmup through the local API Gateway: the form's warm-up answers 204 and changes nothing.

The warm-up is what a browser sends as a CORS simple request (POST, no body, no custom header;
Fetch standard, "CORS-safelisted method"): the function must take it as it comes, open its
connections, and leave every table, queue and Stripe object as it found them (docs/warm-up.md).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.keys import a_key
from tests.support.world import DONATION, World

pytestmark = pytest.mark.integration


def _everything(world: World) -> dict[str, Any]:
    """What anyone else could observe: every table's items, every queue's messages, Stripe's objects."""
    dynamodb = world.pipeline.clients("dynamodb")
    tables = {
        logical_id: sorted(map(str, dynamodb.scan(TableName=name, ConsistentRead=True)["Items"]))
        for logical_id, name in world.pipeline.stack.tables.items()
    }
    queues = {name: sorted((m["MessageId"], m["Body"]) for m in world.queued(name)) for name in ("tokenize", "receipt")}
    stripe = {key: value for key, value in world.stripe.state().items() if key not in ("requests", "clock")}
    return {"tables": tables, "queues": queues, "stripe": stripe}


def test_a_warm_up_answers_204_and_changes_nothing_anyone_can_see(world: World) -> None:
    # Given a stack that took one donation already
    assert world.post(DONATION, key=a_key("before-the-warm-up")).status == 201
    before = _everything(world)
    stripe_before = world.stripe.state()["requests"]

    # When a browser sends the warm-up as the form does: POST, no body, no header but its Origin
    form_origin = world.pipeline.allowed_origin  # the stack's AllowedOrigin
    answer = world.pipeline.call_api("POST", "/warmup", headers={"Origin": form_origin})

    # Then it answers 204 with no body, readable by the form's origin (CORS)
    assert (answer.status, answer.raw) == (204, "")
    assert answer.headers["Access-Control-Allow-Origin"] == form_origin
    assert "Content-Type" not in answer.headers  # nothing to parse
    # And nothing changed: no record, no counter, no message, no Stripe object
    after = _everything(world)
    for part in before:
        for key in before[part]:
            assert after[part][key] == before[part][key], (part, key)
    # And its one Stripe request was the read that opens the connection (an empty page of PaymentIntents)
    stripe_after = world.stripe.state()["requests"]
    made = {route: count - stripe_before.get(route, 0) for route, count in stripe_after.items()}
    assert {route: count for route, count in made.items() if count} == {"GET /v1/payment_intents": 1}


def test_a_warm_up_with_any_body_or_content_type_is_not_read(world: World) -> None:
    # Given what a form's POST could carry that a donation would be refused for (not JSON, not UTF-8)
    for body, content_type in ((b"\xff\xfe not json", "text/plain"), (b'{"amount": 1}', "application/json")):
        # When it comes with the warm-up
        answer = world.pipeline.call_api("POST", "/warmup", body=body, headers={"Content-Type": content_type})

        # Then the warm-up answers as always: it reads no body
        assert (answer.status, answer.raw) == (204, "")
    assert world.donation_count() == 0


def test_the_first_donation_after_a_warm_up_is_charged_as_any_other(world: World) -> None:
    # Given a warm-up
    assert world.pipeline.call_api("POST", "/warmup", headers={"Origin": world.pipeline.allowed_origin}).status == 204

    # When the donor submits
    answer = world.post(DONATION, key=a_key("after-the-warm-up"))

    # Then the donation is charged and its follow-ups queued, as without the warm-up
    assert answer.status == 201
    assert world.record(answer.body["donation_id"]).status == "succeeded"
    assert len(world.queued("receipt")) == 1
