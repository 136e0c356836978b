"""Every Stripe call the product makes, checked against the pinned API version's generated types.

The flows below make each kind of Stripe request the functions send: the charge (succeeded,
3-D Secure, declined), saving the card, the reconciler's search, retrieve and cancel, and the
recovery after stored server errors (the PaymentIntent and Customer lists, the PaymentMethod).
Each request, as the emulator received it and before it validated anything, is then checked with
``check_params``, which knows only what stripe/params/*.py declares for 2026-10-28.endive. A
parameter the pinned version does not have fails here even if the emulator were to accept it.
"""

from datetime import UTC, datetime, timedelta

import pytest

from simulator.emulators.stripe.contract import check_params
from simulator.emulators.stripe.routes import match
from simulator.emulators.stripe.wire import parse_form
from tests.support.keys import a_key
from tests.support.world import DONATION, Crash, CrashOn

pytestmark = pytest.mark.integration

# (method, path template) of every Stripe endpoint the product calls.
PRODUCT_CALLS = {
    "POST /v1/payment_intents",  # charge
    "GET /v1/payment_intents",  # find a spent charge attempt (list)
    "GET /v1/payment_intents/search",  # reconciler: pending donations
    "GET /v1/payment_intents/{id}",  # reconciler: 3-D Secure donations
    "POST /v1/payment_intents/{id}/cancel",  # reconciler, and a spent attempt's leftover
    "POST /v1/customers",  # save the card
    "GET /v1/customers",  # tokenize after a stored error
    "POST /v1/payment_methods/{id}/attach",  # save the card
    "GET /v1/payment_methods/{id}",  # tokenize after a stored error
}


def _later(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def _make_every_kind_of_call(world) -> None:
    world.post({**DONATION, "save_card": True}, key=a_key("contract-charge"))
    world.post({**DONATION, "payment_method": "pm_card_chargeDeclined"}, key=a_key("contract-decline"))
    world.post({**DONATION, "payment_method": "pm_card_authenticationRequired"}, key=a_key("contract-3ds"))
    world.drain()  # tokenize: Customer + attach

    # A charge Stripe made while the function died (the reconciler searches for it), and a
    # 3-D Secure payment never finished (retrieved, then canceled after the action timeout).
    with world.charge_ports(store=lambda store: CrashOn(store, "mark_charged")), pytest.raises(Crash):
        world.post(DONATION, key=a_key("contract-crash"))
    world.reconcile(now=_later(world.settings.reconcile_grace_seconds + 5))
    world.reconcile(now=_later(world.settings.reconcile_action_timeout_seconds + 60))

    # Stored server errors: the charge looks for its spent attempt; tokenize for its Customer and card.
    world.stripe.faults.add("stored_error", phase="after", times=1, path_prefix="/v1/payment_intents", method="POST")
    world.post(DONATION, key=a_key("contract-stored"))
    world.post(DONATION, key=a_key("contract-stored"))
    world.stripe.faults.add("stored_error", phase="after", times=1, path_prefix="/v1/payment_methods", method="POST")
    world.post({**DONATION, "save_card": True}, key=a_key("contract-stored-card"))
    world.drain()
    world.expire_backoffs()
    world.drain()


def test_every_stripe_call_the_product_makes_is_valid_for_the_pinned_api_version(world):
    _make_every_kind_of_call(world)

    seen, problems = set(), []
    for call in world.stripe.received:
        route, _ = match(call.method, call.path)
        seen.add(route.name)
        form = call.form.decode() if isinstance(call.form, bytes) else call.form
        for violation in check_params(call.method, call.path, parse_form(form)):
            problems.append(f"{route.name}: {violation}")
    assert problems == []
    assert seen >= PRODUCT_CALLS, f"not exercised: {sorted(PRODUCT_CALLS - seen)}"
