"""The run command says "Ready." only once a charge can succeed.

What was seen: a stack started seconds after a heavy job answered 503 to all 55
charges; the Stripe emulator counted 55 ``POST /v1/payment_intents`` and created no PaymentIntent,
while a direct request to the emulator worked; four fresh starts did not reproduce it. What the
code says about it:

- One request per charge, and none created: each got one definitive answer that the SDK does not
  retry (a 4xx other than 402/409/429; a timeout or a 5xx would have been retried, three requests
  each). The emulator counts a request before it authenticates and validates it, and the charge
  answers 503 to every such answer except a card decline or a bad ``payment_method``: an API key the
  emulator refused (401) or a request it refused (400) both look like that to the donor.
- The functions read the key from Parameter Store (Powertools Parameters, cached 5 minutes) and
  build their Stripe client on their first request. Nothing before "Ready." read that key, built
  that client or spoke to Stripe with it ("Ready." followed the start of the threads), and a key
  read wrong would have been used from the cache for five minutes.

So start-up now proves, through the functions' own code and clients, before printing "Ready.":
the provider keys the functions read are the ones the stack stored; the charge function's own
Stripe client reaches Stripe and has its key and API version accepted (a PaymentIntent that does
not exist is answered 404, nothing is created); each function's own restricted Stripe key may read
what its job is about (donations.stripe_keys); and one request goes through the front, the
gateway and the charge function to DynamoDB and back (``GET /donations/{id}``: 404). Checks that
fail are retried until a deadline; then the stack stops and says which check failed.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import stripe

from donations.settings import StripeClientSettings
from donations.stripe_keys import STRIPE_KEY_VARIABLES

if TYPE_CHECKING:
    from simulator.local.stack import LocalStack

READY_TIMEOUT_SECONDS = 30.0
PROBE_PAYMENT_INTENT = "pi_local_readiness_probe"
PROBE_DONATION = "don_localreadinessprobe"
PROBE_EMAIL = "readiness-probe@example.invalid"


class NotReady(RuntimeError):
    """A start-up check still failed at its deadline; the message says which and why."""


def wait_until_ready(stack: LocalStack, *, timeout: float = READY_TIMEOUT_SECONDS) -> None:
    """Run every check until all pass; raise NotReady with the failures left at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        problems = problems_of(stack)
        if not problems:
            return
        if time.monotonic() >= deadline:
            raise NotReady("; ".join(problems))
        time.sleep(0.5)  # polling a condition with a deadline: the next attempt of the checks


def problems_of(stack: LocalStack) -> list[str]:
    pipeline = stack.pipeline
    charge_wiring = pipeline.handler("ChargeFunction").wiring()  # the charge function's own, cached
    environment = pipeline.function_environment()
    expected = {environment[variable]: value for variable, value in pipeline.stored_secrets().items()}
    problems = key_problems(charge_wiring.api_keys.get, expected)
    if not problems:
        problems = stripe_problems(charge_wiring.payments)
    if not problems:
        keys = {function: expected[environment[variable]] for function, variable in STRIPE_KEY_VARIABLES.items()}
        settings = charge_wiring.settings
        assert isinstance(settings, StripeClientSettings)  # the charge function's settings include them
        problems = stripe_key_problems(settings, keys)
    if not problems:
        problems = api_problems(f"http://127.0.0.1:{stack.config.api_port}")
    return problems


def key_problems(read: Callable[[str], str], expected: dict[str, str]) -> list[str]:
    """Each secret as the functions read it, against what the stack stored (never printing either)."""
    problems = []
    for name, value in expected.items():
        try:
            found = read(name)
        except Exception as error:  # any failure to read is a reason not to be ready
            problems.append(f"secret {name}: cannot be read ({type(error).__name__})")
            continue
        if found != value:
            problems.append(f"secret {name}: the functions read another value than the stack stored")
    return problems


def stripe_problems(payments: Any) -> list[str]:
    """The charge function's Stripe client asks for a PaymentIntent that does not exist: only a 404
    proves that Stripe is reached and accepts the key and the API version (and nothing is created)."""
    try:
        payments.retrieve(PROBE_PAYMENT_INTENT)
    except stripe.InvalidRequestError as error:
        if error.http_status == 404:
            return []
        return [f"Stripe: {error.http_status} {error.code} for a read the charge function makes"]
    except stripe.StripeError as error:
        return [f"Stripe: {type(error).__name__} ({error.http_status}) with the charge function's client"]
    return [f"Stripe: {PROBE_PAYMENT_INTENT} exists, which no probe should find"]


def _retrieve_probe(client: stripe.StripeClient) -> None:
    """A PaymentIntent that does not exist: 404 proves PaymentIntents may be read (and creates nothing)."""
    try:
        client.v1.payment_intents.retrieve(PROBE_PAYMENT_INTENT)
    except stripe.InvalidRequestError as error:
        if error.http_status != 404:
            raise


STRIPE_KEY_PROBES: dict[str, Callable[[stripe.StripeClient], object]] = {
    "charge": _retrieve_probe,
    "tokenize": lambda client: client.v1.customers.list(params={"email": PROBE_EMAIL, "limit": 1}),
    "reconciler": _retrieve_probe,
    "renew": _retrieve_probe,
}
"""Each function's Stripe key, tried on a harmless read of the resource its job is about."""


def stripe_key_problems(settings: StripeClientSettings, keys: dict[str, str]) -> list[str]:
    """Each function's own Stripe key reaches Stripe and may read what its job needs (never printing it)."""
    from donations.payments import build_stripe_client

    problems = []
    for function, key in keys.items():
        try:
            STRIPE_KEY_PROBES[function](build_stripe_client(settings, key))
        except stripe.StripeError as error:
            problems.append(f"Stripe: the {function} key got {type(error).__name__} ({error.http_status})")
    return problems


def api_problems(api: str) -> list[str]:
    """One request through the front, the gateway and the charge function to DynamoDB and back."""
    try:
        with urllib.request.urlopen(f"{api}/donations/{PROBE_DONATION}", timeout=10) as response:  # noqa: S310
            return [f"API: GET /donations answered {response.status}, expected 404"]
    except urllib.error.HTTPError as error:
        body = error.read()
        if error.code == 404 and json.loads(body or b"{}").get("error", {}).get("code") == "not_found":
            return []
        return [f"API: GET /donations answered {error.code}, expected 404 not_found"]
    except OSError as error:
        return [f"API: {type(error).__name__}: {error}"]
