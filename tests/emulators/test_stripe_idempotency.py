"""Stripe's idempotency layer, all of it: stored 500s, concurrent same-key requests, expiry after
24 h, validation errors not stored (docs.stripe.com/api/idempotent_requests), driven through the
real SDK, whose retries honour Stripe-Should-Retry and retry 409s."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import stripe

from simulator.emulators.control import EmulatorControlError
from simulator.emulators.sendgrid_emulator import SendGridEmulator
from simulator.emulators.stripe import KEY_LIFETIME_SECONDS, StripeControl, StripeEmulator

pytestmark = pytest.mark.integration

StripeFactory = Callable[..., stripe.StripeClient]
ROUTE = "POST /v1/payment_intents"


def create(client: stripe.StripeClient, key: str, donation_id: str = "don_1", **extra: Any) -> stripe.PaymentIntent:
    params = {
        "amount": 2500,
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "allowed_payment_method_types": ["card"],
        "confirm": True,
        "metadata": {"donation_id": donation_id},
        **extra,
    }
    return client.v1.payment_intents.create(params=params, options={"idempotency_key": key})  # type: ignore[arg-type]


def stored_500(client: stripe.StripeClient, key: str, donation_id: str = "don_1") -> stripe.APIError:
    with pytest.raises(stripe.APIError) as caught:
        create(client, key, donation_id)
    assert caught.value.http_status == 500
    assert caught.value.headers is not None and caught.value.headers["Stripe-Should-Retry"] == "false"
    return caught.value


# -- stored 500s ---------------------------------------------------------------------------------
def test_stored_500_before_execution_is_replayed_and_never_retried_by_the_sdk(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    stripe_emu.faults.add("stored_error", times=1, phase="before", path_prefix="/v1/payment_intents")
    client = stripe_client(retries=3)

    first = stored_500(client, "k-before")
    assert stripe_emu.requests[ROUTE] == 1  # Stripe-Should-Retry: false, so no SDK retry

    replay = stored_500(client, "k-before")  # the fault is used up: this is the saved answer
    assert replay.headers is not None and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.headers["Original-Request"] == first.headers["Request-Id"]  # type: ignore[index]
    assert replay.json_body == first.json_body
    assert stripe_emu.payment_intents_created == 0
    assert stripe_emu.executions_for_key("k-before") == 0


def test_stored_500_after_execution_hides_a_payment_that_happened(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    stripe_emu.faults.add("stored_error", times=1, phase="after", path_prefix="/v1/payment_intents")
    client = stripe_client(retries=3)

    stored_500(client, "k-after", "don_after")
    replay = stored_500(client, "k-after", "don_after")

    assert replay.headers is not None and replay.headers["Idempotent-Replayed"] == "true"
    assert stripe_emu.charges_for("don_after") == 1  # charged once, answered 500 twice
    assert "payment_intent.succeeded" in [e["type"] for e in stripe_emu.events]
    assert stripe_emu.executions_for_key("k-after") == 1
    assert stripe_emu.requests[ROUTE] == 2


def test_stored_500_of_a_key_ends_after_24_hours(stripe_emu: StripeEmulator, stripe_client: StripeFactory) -> None:
    stripe_emu.faults.add("stored_error", times=1, path_prefix="/v1/payment_intents")
    client = stripe_client(retries=1)
    stored_500(client, "k-day")

    stripe_emu.advance_clock(KEY_LIFETIME_SECONDS - 60)
    stored_500(client, "k-day")  # still saved
    stripe_emu.advance_clock(60)
    pi = create(client, "k-day")  # pruned: a new request

    assert pi.status == "succeeded" and "Idempotent-Replayed" not in pi.last_response.headers
    assert stripe_emu.payment_intents_created == 1


def test_stored_error_via_the_control_api(stripe_emu: StripeEmulator, stripe_client: StripeFactory) -> None:
    control = StripeControl(stripe_emu.url)
    control.add_fault("stored_error", status=503, times=1, phase="after", path_prefix="/v1/payment_intents")
    [fault] = control.faults()
    assert (fault["kind"], fault["status"], fault["phase"]) == ("stored_error", 503, "after")

    with pytest.raises(stripe.APIError) as caught:
        create(stripe_client(retries=2), "k-ctl", "don_ctl")

    assert caught.value.http_status == 503
    assert control.charges_for("don_ctl") == 1
    with pytest.raises(EmulatorControlError) as refused:
        control.add_fault("stored_error", status=404)  # a stored error is a 5xx
    assert refused.value.status == 400


def test_only_an_emulator_with_an_idempotency_layer_offers_stored_errors() -> None:
    with SendGridEmulator() as sendgrid, pytest.raises(ValueError, match="stored_error"):
        sendgrid.faults.add("stored_error")


def test_a_transient_500_is_not_stored(stripe_emu: StripeEmulator, stripe_client: StripeFactory) -> None:
    stripe_emu.faults.add("http_error", status=500, times=1, path_prefix="/v1/payment_intents")
    client = stripe_client(retries=0)
    with pytest.raises(stripe.APIError) as caught:
        create(client, "k-transient")
    assert caught.value.headers is not None and "Stripe-Should-Retry" not in caught.value.headers

    pi = create(client, "k-transient")

    assert pi.status == "succeeded" and "Idempotent-Replayed" not in pi.last_response.headers


# -- concurrent requests with one key ----------------------------------------------------------------
def test_a_key_executing_elsewhere_gets_409_until_it_finishes(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    # The first request's provider work takes 0.8 s ("after" latency: the charge already happened).
    stripe_emu.faults.add("latency", times=1, phase="after", latency_ms=800, path_prefix="/v1/payment_intents")
    first: list[stripe.PaymentIntent] = []
    worker = threading.Thread(target=lambda: first.append(create(stripe_client(), "k-race", "don_race")))
    worker.start()
    stripe_emu.wait_for_in_flight("k-race", timeout=5)

    with pytest.raises(stripe.APIError) as caught:
        create(stripe_client(retries=0), "k-race", "don_race")

    worker.join(timeout=10)
    err = caught.value
    assert err.http_status == 409 and err.error is not None
    assert (err.error.type, err.error.code) == ("invalid_request_error", "idempotency_key_in_use")
    assert "another in-progress request using this Idempotent Key" in str(err.user_message)
    assert [pi.status for pi in first] == ["succeeded"]
    again = create(stripe_client(), "k-race", "don_race")  # the 409 was not stored: now a replay
    assert again.id == first[0].id and again.last_response.headers["Idempotent-Replayed"] == "true"
    assert stripe_emu.executions_for_key("k-race") == 1
    assert stripe_emu.charges_for("don_race") == 1


def test_the_sdk_retries_a_409_into_the_replay(stripe_emu: StripeEmulator, stripe_client: StripeFactory) -> None:
    stripe_emu.faults.add("latency", times=1, phase="after", latency_ms=600, path_prefix="/v1/payment_intents")
    first: list[stripe.PaymentIntent] = []
    worker = threading.Thread(target=lambda: first.append(create(stripe_client(), "k-retry", "don_retry")))
    worker.start()
    StripeControl(stripe_emu.url).wait_for_in_flight("k-retry", timeout=5)  # across processes, by long poll

    # Backoff 0.25 s .. 0.5 s, then 0.5 .. 1 s, then 1 .. 2 s: the first request is done by the third try.
    second = create(stripe_client(retries=3), "k-retry", "don_retry")

    worker.join(timeout=10)
    assert second.id == first[0].id
    assert second.last_response.headers["Idempotent-Replayed"] == "true"
    assert stripe_emu.requests[ROUTE] >= 3  # first, a 409, the replay
    assert stripe_emu.payment_intents_created == 1


# -- expiry and validation ------------------------------------------------------------------------
def test_a_key_older_than_24_hours_executes_afresh(stripe_emu: StripeEmulator, stripe_client: StripeFactory) -> None:
    client = stripe_client()
    first = create(client, "k-old", "don_old")
    control = StripeControl(stripe_emu.url)

    control.advance_clock(KEY_LIFETIME_SECONDS - 1)
    assert create(client, "k-old", "don_old").id == first.id
    assert control.clock()["offset"] == KEY_LIFETIME_SECONDS - 1
    control.advance_clock(1)
    fresh = create(client, "k-old", "don_old")

    assert fresh.id != first.id
    assert stripe_emu.executions_for_key("k-old") == 2
    assert stripe_emu.charges_for("don_old") == 2  # the double charge a day-old key cannot prevent
    assert fresh.created >= first.created + KEY_LIFETIME_SECONDS


def test_refused_parameters_are_not_stored_under_the_key(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    client = stripe_client()
    with pytest.raises(stripe.InvalidRequestError):
        create(client, "k-fix", colour="red")
    with pytest.raises(stripe.InvalidRequestError):
        create(client, "k-fix", capture_method="manual")

    fixed = create(client, "k-fix")

    assert fixed.status == "succeeded" and "Idempotent-Replayed" not in fixed.last_response.headers
    assert stripe_emu.executions_for_key("k-fix") == 1


def test_reset_forgets_keys_and_the_clock(stripe_emu: StripeEmulator, stripe_client: StripeFactory) -> None:
    client = stripe_client()
    first = create(client, "k-reset")
    stripe_emu.advance_clock(60)

    stripe_emu.reset()

    assert stripe_emu.clock.offset == 0
    assert create(client, "k-reset").id != first.id
    with pytest.raises(ValueError):
        stripe_emu.advance_clock(-1)
