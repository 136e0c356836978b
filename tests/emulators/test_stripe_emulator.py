"""The Stripe emulator driven by the real stripe SDK over HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
import stripe

from simulator.emulators.control import EmulatorControlError
from simulator.emulators.stripe import (
    REUSED_PM_MESSAGE,
    UNATTACHABLE_PM_MESSAGE,
    StripeControl,
    StripeEmulator,
)

pytestmark = pytest.mark.integration

StripeFactory = Callable[..., stripe.StripeClient]


def pi_params(pm: str = "pm_card_visa", donation_id: str = "don_1", **extra: Any) -> dict[str, Any]:
    """A confirmed card donation; allowed_payment_method_types=card means no return_url is needed."""
    params: dict[str, Any] = {
        "amount": 2500,
        "currency": "usd",
        "payment_method": pm,
        "confirm": True,
        "allowed_payment_method_types": ["card"],
        "metadata": {"donation_id": donation_id},
    }
    params.update(extra)
    return params


def create(client: stripe.StripeClient, key: str | None = None, **params: Any) -> stripe.PaymentIntent:
    options: dict[str, Any] = {"idempotency_key": key} if key else {}
    return client.v1.payment_intents.create(params=pi_params(**params), options=options)  # type: ignore[arg-type]


# -- payments ------------------------------------------------------------------------
def test_confirmed_card_payment_succeeds_with_a_charge(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    pi = create(stripe_client(), donation_id="don_ok")

    assert pi.status == "succeeded"
    assert pi.amount_received == 2500
    assert pi.latest_charge and pi.latest_charge.startswith("ch_")
    assert pi.client_secret.startswith(f"{pi.id}_secret_")
    assert pi.metadata["donation_id"] == "don_ok"
    assert pi.last_response.headers["Request-Id"].startswith("req_")
    assert stripe_emu.charges_for("don_ok") == 1
    assert stripe_emu.payment_intents_created == 1


def test_each_use_of_a_magic_id_makes_a_new_concrete_payment_method(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    client = stripe_client()
    first = create(client, pm="pm_card_mastercard", donation_id="a")
    second = create(client, pm="pm_card_mastercard", donation_id="b")

    assert first.payment_method != second.payment_method
    assert isinstance(first.payment_method, str) and first.payment_method.startswith("pm_")
    pm1 = client.v1.payment_methods.retrieve(first.payment_method)
    pm2 = client.v1.payment_methods.retrieve(str(second.payment_method))
    assert pm1.card is not None and pm2.card is not None
    assert (pm1.card.brand, pm1.card.last4) == ("mastercard", "4444")
    assert pm1.card.fingerprint == pm2.card.fingerprint  # same card number, same fingerprint


@pytest.mark.parametrize(
    ("pm", "code", "decline_code"),
    [
        ("pm_card_chargeDeclined", "card_declined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds"),
        ("pm_card_chargeDeclinedLostCard", "card_declined", "lost_card"),
        ("pm_card_chargeDeclinedStolenCard", "card_declined", "stolen_card"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card"),
        ("pm_card_chargeDeclinedIncorrectCvc", "incorrect_cvc", "incorrect_cvc"),
        ("pm_card_chargeDeclinedProcessingError", "processing_error", "processing_error"),
    ],
)
def test_declined_card_raises_card_error_and_keeps_the_intent(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory, pm: str, code: str, decline_code: str
) -> None:
    with pytest.raises(stripe.CardError) as caught:
        create(stripe_client(retries=2), pm=pm, donation_id="don_declined")

    err = caught.value
    assert (err.http_status, err.code) == (402, code)
    assert err.error is not None and err.error.decline_code == decline_code
    failed = err.error.payment_intent
    assert failed is not None and failed.status == "requires_payment_method"
    assert failed.last_payment_error is not None and failed.last_payment_error.code == code
    stored = stripe_emu.intents_for("don_declined")
    assert [p["id"] for p in stored] == [failed.id]
    assert stripe_emu.charges_for("don_declined") == 0
    assert stripe_emu.requests["POST /v1/payment_intents"] == 1  # a 402 is never retried


@pytest.mark.parametrize("pm", ["pm_card_authenticationRequired", "pm_card_threeDSecure2Required"])
def test_3ds_card_requires_action_until_authenticated(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory, pm: str
) -> None:
    client = stripe_client()
    pi = create(client, pm=pm, donation_id="don_3ds")
    assert pi.status == "requires_action"
    assert pi.next_action is not None and pi.next_action.type == "use_stripe_sdk"
    assert stripe_emu.charges_for("don_3ds") == 0

    StripeControl(stripe_emu.url).authenticate(pi.id, "succeed")

    after = client.v1.payment_intents.retrieve(pi.id)
    assert after.status == "succeeded" and after.latest_charge
    assert stripe_emu.charges_for("don_3ds") == 1


def test_failed_3ds_leaves_the_intent_awaiting_a_new_payment_method(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    client = stripe_client()
    pi = create(client, pm="pm_card_authenticationRequired", donation_id="don_3ds_fail")

    stripe_emu.authenticate(pi.id, "fail")

    after = client.v1.payment_intents.retrieve(pi.id)
    assert after.status == "requires_payment_method"
    assert after.last_payment_error is not None
    assert after.last_payment_error.code == "payment_intent_authentication_failure"
    assert [e["type"] for e in stripe_emu.events][-1] == "payment_intent.payment_failed"
    with pytest.raises(EmulatorControlError) as caught:  # nothing left to authenticate
        StripeControl(stripe_emu.url).authenticate(pi.id, "succeed")
    assert caught.value.status == 400


def test_off_session_payment_on_a_3ds_card_is_declined(stripe_client: StripeFactory) -> None:
    client = stripe_client()
    customer = client.v1.customers.create(params={"email": "ada@example.org"})
    with pytest.raises(stripe.CardError) as caught:
        create(client, pm="pm_card_authenticationRequired", off_session=True, customer=customer.id)
    assert caught.value.code == "authentication_required"


def test_unconfirmed_intent_can_be_confirmed_then_not_canceled(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    client = stripe_client()
    pi = create(client, confirm=False, donation_id="don_two_step")
    assert pi.status == "requires_confirmation"

    confirmed = client.v1.payment_intents.confirm(pi.id)
    assert confirmed.status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.cancel(pi.id)
    assert caught.value.code == "payment_intent_unexpected_state"


def test_cancel_records_reason_and_event(stripe_emu: StripeEmulator, stripe_client: StripeFactory) -> None:
    client = stripe_client()
    pi = create(client, confirm=False)

    canceled = client.v1.payment_intents.cancel(pi.id, params={"cancellation_reason": "abandoned"})

    assert (canceled.status, canceled.cancellation_reason) == ("canceled", "abandoned")
    event = stripe_emu.events[-1]
    assert event["type"] == "payment_intent.canceled"
    assert event["object"] == "event" and event["id"].startswith("evt_")
    assert event["data"]["object"]["id"] == pi.id


def test_automatic_payment_methods_need_a_return_url_unless_redirects_are_off(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    client = stripe_client()
    params = pi_params()
    del params["allowed_payment_method_types"]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.create(params=params)  # type: ignore[arg-type]
    assert caught.value.param == "return_url"
    assert stripe_emu.payment_intents_created == 0

    params["automatic_payment_methods"] = {"enabled": True, "allow_redirects": "never"}
    assert client.v1.payment_intents.create(params=params).status == "succeeded"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("override", "param", "code"),
    [
        ({"amount": -5}, "amount", "parameter_invalid_integer"),
        ({"amount": 10}, "amount", "amount_too_small"),
        ({"currency": "dollars"}, "currency", None),
        ({"setup_future_usage": "forever"}, "setup_future_usage", None),
        ({"payment_method": "pm_nope"}, "payment_method", "resource_missing"),
        ({"customer": "cus_nope"}, "customer", "resource_missing"),
        ({"colour": "red"}, "colour", "parameter_unknown"),
    ],
)
def test_invalid_parameters_are_rejected_without_creating_anything(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory, override: dict[str, Any], param: str, code: str | None
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        create(stripe_client(), **override)
    assert (caught.value.http_status, caught.value.param, caught.value.code) == (400, param, code)
    assert stripe_emu.payment_intents_created == 0


def test_unknown_payment_method_message(stripe_client: StripeFactory) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        create(stripe_client(), pm="pm_x")
    assert caught.value.user_message == "No such PaymentMethod: 'pm_x'"


def test_bad_api_key_is_an_authentication_error(stripe_client: StripeFactory) -> None:
    with pytest.raises(stripe.AuthenticationError) as caught:
        create(stripe_client(key="sk_live_nope"))
    assert caught.value.http_status == 401


def test_retrieve_unknown_intent_is_404(stripe_client: StripeFactory) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client().v1.payment_intents.retrieve("pi_missing")
    assert (caught.value.http_status, caught.value.code) == (404, "resource_missing")


def test_expand_payment_method_and_latest_charge(stripe_client: StripeFactory) -> None:
    client = stripe_client()
    pi = create(client, pm="pm_card_amex")

    full = client.v1.payment_intents.retrieve(pi.id, params={"expand": ["payment_method", "latest_charge"]})

    assert isinstance(full.payment_method, stripe.PaymentMethod)
    assert full.payment_method.card is not None and full.payment_method.card.brand == "amex"
    assert isinstance(full.latest_charge, stripe.Charge) and full.latest_charge.paid is True


# -- idempotency -----------------------------------------------------------------------
def test_same_key_replays_the_stored_result(stripe_emu: StripeEmulator, stripe_client: StripeFactory) -> None:
    client = stripe_client()
    first = create(client, key="don_1:charge", donation_id="don_1")
    replay = create(client, key="don_1:charge", donation_id="don_1")

    assert replay.id == first.id
    assert replay.last_response.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.last_response.headers
    assert stripe_emu.executions_for_key("don_1:charge") == 1
    assert stripe_emu.charges_for("don_1") == 1
    assert stripe_emu.payment_intents_created == 1


def test_declines_are_replayed_too(stripe_emu: StripeEmulator, stripe_client: StripeFactory) -> None:
    client = stripe_client()
    ids = []
    for _ in range(2):
        with pytest.raises(stripe.CardError) as caught:
            create(client, key="k-decline", pm="pm_card_chargeDeclined")
        assert caught.value.error is not None and caught.value.error.payment_intent is not None
        ids.append(caught.value.error.payment_intent.id)
    assert ids[0] == ids[1]
    assert stripe_emu.executions_for_key("k-decline") == 1


def test_same_key_with_other_params_is_an_idempotency_error(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    client = stripe_client()
    create(client, key="shared-key", amount=2500)

    with pytest.raises(stripe.IdempotencyError) as caught:
        create(client, key="shared-key", amount=9900)

    assert "Try using a key other than 'shared-key'" in str(caught.value.user_message)
    assert stripe_emu.executions_for_key("shared-key") == 1
    assert stripe_emu.payment_intents_created == 1


def test_validation_failures_are_not_stored_under_the_key(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    client = stripe_client()
    with pytest.raises(stripe.InvalidRequestError):
        create(client, key="fix-and-retry", amount=10)

    fixed = create(client, key="fix-and-retry", amount=1000)

    assert fixed.status == "succeeded"
    assert stripe_emu.executions_for_key("fix-and-retry") == 1


def test_keys_are_scoped_per_api_key(stripe_emu: StripeEmulator, stripe_client: StripeFactory) -> None:
    a = create(stripe_client(key="sk_test_account_a"), key="same")
    b = create(stripe_client(key="sk_test_account_b"), key="same")
    assert a.id != b.id
    assert stripe_emu.executions_for_key("same") == 2


def test_concurrent_requests_with_one_key_execute_once(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    results: list[str] = []
    lock = threading.Lock()

    def attempt() -> None:
        pi = create(stripe_client(), key="racing-key", donation_id="don_race")
        with lock:
            results.append(pi.id)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)

    assert len(results) == 8 and len(set(results)) == 1
    assert stripe_emu.executions_for_key("racing-key") == 1
    assert stripe_emu.charges_for("don_race") == 1


# -- faults through the SDK's own retries ------------------------------------------------
def test_lost_response_is_recovered_by_sdk_retry_with_the_same_key(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    stripe_emu.faults.add("http_error", status=500, times=1, phase="after", path_prefix="/v1/payment_intents")

    pi = create(stripe_client(retries=2), key="don_lost:charge", donation_id="don_lost")

    assert pi.status == "succeeded"
    assert pi.last_response.headers.get("Idempotent-Replayed") == "true"
    assert stripe_emu.requests["POST /v1/payment_intents"] == 2
    assert stripe_emu.executions_for_key("don_lost:charge") == 1
    assert stripe_emu.charges_for("don_lost") == 1


def test_lost_response_retried_with_a_new_key_charges_twice(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    """The double charge the emulator exists to expose: the 500 came after the charge."""
    stripe_emu.faults.add("http_error", status=502, times=1, phase="after")
    client = stripe_client(retries=0)
    with pytest.raises(stripe.APIError):
        create(client, key="attempt-1", donation_id="don_dup")

    create(client, key="attempt-2", donation_id="don_dup")

    assert stripe_emu.charges_for("don_dup") == 2


def test_before_phase_503s_execute_nothing_until_the_retry_succeeds(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    stripe_emu.faults.add("http_error", status=503, times=2, method="POST")

    pi = create(stripe_client(retries=2), key="k503", donation_id="don_503")

    assert pi.status == "succeeded"
    assert "Idempotent-Replayed" not in pi.last_response.headers
    assert stripe_emu.requests["POST /v1/payment_intents"] == 3
    assert stripe_emu.executions_for_key("k503") == 1
    assert stripe_emu.payment_intents_created == 1


def test_lock_timeout_is_retried_by_the_sdk(stripe_emu: StripeEmulator, stripe_client: StripeFactory) -> None:
    stripe_emu.faults.add("lock_timeout", times=1)

    pi = create(stripe_client(retries=1), donation_id="don_lock")

    assert pi.status == "succeeded"
    assert stripe_emu.requests["POST /v1/payment_intents"] == 2


def test_lock_timeout_shape_without_retries(stripe_client: StripeFactory, stripe_emu: StripeEmulator) -> None:
    stripe_emu.faults.add("lock_timeout", times=1)
    with pytest.raises(stripe.RateLimitError) as caught:
        create(stripe_client(retries=0))
    assert caught.value.error is not None  # RateLimitError keeps the code on .error only
    assert (caught.value.http_status, caught.value.error.code) == (429, "lock_timeout")
    assert caught.value.headers is not None and caught.value.headers["Stripe-Should-Retry"] == "true"


def test_rate_limit_is_not_retried(stripe_emu: StripeEmulator, stripe_client: StripeFactory) -> None:
    stripe_emu.faults.add("rate_limit", times=1)
    with pytest.raises(stripe.RateLimitError) as caught:
        create(stripe_client(retries=2))
    assert caught.value.error is not None and caught.value.error.code == "rate_limit"
    assert stripe_emu.requests["POST /v1/payment_intents"] == 1
    assert stripe_emu.payment_intents_created == 0


def test_connection_reset_surfaces_as_api_connection_error(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    stripe_emu.faults.add("reset", times=1)
    with pytest.raises(stripe.APIConnectionError) as caught:
        create(stripe_client(retries=0))
    assert "reset" in str(caught.value).lower() or "aborted" in str(caught.value).lower()
    assert stripe_emu.payment_intents_created == 0


def test_after_phase_timeout_charges_while_the_client_gives_up(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    stripe_emu.faults.add("timeout", times=1, phase="after", latency_ms=10_000)
    started = time.monotonic()
    with pytest.raises(stripe.APIConnectionError):
        create(stripe_client(retries=0, timeout=0.3), donation_id="don_timeout")
    assert time.monotonic() - started < 5
    assert stripe_emu.charges_for("don_timeout") == 1


# -- PaymentMethods and Customers -------------------------------------------------------
def test_card_used_without_customer_or_future_usage_cannot_be_attached(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    client = stripe_client()
    pi = create(client)
    customer = client.v1.customers.create(params={"email": "donor@example.org"})

    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_methods.attach(str(pi.payment_method), params={"customer": customer.id})

    assert caught.value.user_message == UNATTACHABLE_PM_MESSAGE
    assert stripe_emu.attach_count(str(pi.payment_method)) == 0


def test_card_used_with_setup_future_usage_can_be_attached_once(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    client = stripe_client()
    pi = create(client, setup_future_usage="off_session")
    pm_id = str(pi.payment_method)
    donor = client.v1.customers.create(params={"email": "donor@example.org", "metadata": {"donor": "7"}})
    other = client.v1.customers.create(params={"email": "other@example.org"})

    attached = client.v1.payment_methods.attach(pm_id, params={"customer": donor.id})
    again = client.v1.payment_methods.attach(pm_id, params={"customer": donor.id})

    assert attached.customer == again.customer == donor.id
    pm = client.v1.payment_methods.retrieve(pm_id)
    assert pm.customer == donor.id and pm.card is not None and pm.card.last4 == "4242"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_methods.attach(pm_id, params={"customer": other.id})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_methods.attach(pm_id, params={"customer": "cus_missing"})
    assert caught.value.code == "resource_missing"
    assert stripe_emu.attach_count(pm_id) == 2
    assert [a["already_attached"] for a in stripe_emu.attachments] == [False, True]


def test_saved_card_is_reusable_only_with_its_customer(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    client = stripe_client()
    donor = client.v1.customers.create(params={"name": "Ada"})
    first = create(client, customer=donor.id, setup_future_usage="off_session", donation_id="d1")
    pm_id = str(first.payment_method)
    assert client.v1.payment_methods.retrieve(pm_id).customer == donor.id  # attached automatically

    repeat = create(client, pm=pm_id, customer=donor.id, off_session=True, donation_id="d2")
    assert repeat.status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError):
        create(client, pm=pm_id, donation_id="d3")  # no customer given


def test_single_use_card_cannot_pay_twice(stripe_client: StripeFactory) -> None:
    client = stripe_client()
    pi = create(client, donation_id="once")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        create(client, pm=str(pi.payment_method), donation_id="twice")
    assert caught.value.user_message == REUSED_PM_MESSAGE


def test_customer_create_and_retrieve(stripe_emu: StripeEmulator, stripe_client: StripeFactory) -> None:
    client = stripe_client()
    created = client.v1.customers.create(params={"email": "a@example.org", "name": "A", "metadata": {"x": "1"}})

    fetched = client.v1.customers.retrieve(created.id)

    assert created.id.startswith("cus_")
    assert (fetched.email, fetched.name, fetched.metadata["x"]) == ("a@example.org", "A", "1")
    assert [c["id"] for c in stripe_emu.customers] == [created.id]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.create(params={"email": "not-an-email"})
    assert caught.value.param == "email"


# -- search --------------------------------------------------------------------------------
def test_search_by_donation_metadata(stripe_client: StripeFactory) -> None:
    client = stripe_client()
    wanted = create(client, donation_id="don_search")
    create(client, donation_id="don_other")

    result = client.v1.payment_intents.search(params={"query": "metadata['donation_id']:'don_search'"})

    assert result.object == "search_result"
    assert [pi.id for pi in result.data] == [wanted.id]
    assert result.has_more is False
    both = client.v1.payment_intents.search(
        params={"query": "metadata['donation_id']:'don_search' AND status:'succeeded'"}
    )
    assert [pi.id for pi in both.data] == [wanted.id]


def test_search_rejects_malformed_queries(stripe_client: StripeFactory) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client().v1.payment_intents.search(params={"query": "metadata['donation_id']:don"})
    assert caught.value.param == "query"


def test_search_lag_hides_fresh_intents() -> None:
    with StripeEmulator(search_lag_ms=60_000) as emu:
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": emu.url})
        client.v1.payment_intents.create(params=pi_params(donation_id="fresh"))  # type: ignore[arg-type]
        found = client.v1.payment_intents.search(params={"query": "metadata['donation_id']:'fresh'"})
        assert found.data == []
        assert emu.charges_for("fresh") == 1


# -- control API over HTTP --------------------------------------------------------------
def test_http_control_api_drives_faults_latency_state_and_reset(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    control = StripeControl(stripe_emu.url)
    client = stripe_client(retries=0)
    fault_id = control.add_fault("http_error", status=500, path_prefix="/v1/payment_intents")
    assert [f["id"] for f in control.faults()] == [fault_id]
    with pytest.raises(stripe.APIError):
        create(client)
    control.clear_faults()

    control.set_latency("POST /v1/payment_intents", 150)
    started = time.monotonic()
    create(client, key="ctl", donation_id="don_ctl")
    assert time.monotonic() - started >= 0.15

    state = control.state()
    assert state["requests"]["POST /v1/payment_intents"] == 2
    assert state["executions"] == {"ctl": 1}
    assert control.charges_for("don_ctl") == 1
    assert control.executions_for_key("ctl") == 1
    assert "payment_intent.succeeded" in {e["type"] for e in state["events"]}

    control.reset()
    assert control.state()["payment_intents"] == []
    assert stripe_emu.payment_intents_created == 0
    with pytest.raises(EmulatorControlError) as caught:
        control.add_fault("meteor_strike")
    assert caught.value.status == 400


def test_unrecognized_url_is_stripe_shaped_404(stripe_emu: StripeEmulator) -> None:
    resp = requests.get(f"{stripe_emu.url}/v1/nothing", headers={"Authorization": "Bearer sk_test_x"}, timeout=5)
    assert resp.status_code == 404
    assert resp.json()["error"]["type"] == "invalid_request_error"
    assert resp.headers["Request-Id"].startswith("req_")
