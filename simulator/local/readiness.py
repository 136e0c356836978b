"""The run command says "Ready." only once a charge can succeed.

What was seen (issue #13): a stack started seconds after a heavy job answered 503 to all 55
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
not exist is answered 404, nothing is created); and one request goes through the front, the
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

if TYPE_CHECKING:
    from simulator.local.stack import LocalStack

READY_TIMEOUT_SECONDS = 30.0
PROBE_PAYMENT_INTENT = "pi_local_readiness_probe"
PROBE_DONATION = "don_localreadinessprobe"


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
    expected = {
        environment["STRIPE_SECRET_NAME"]: pipeline.providers.stripe_api_key,
        environment["SENDGRID_SECRET_NAME"]: pipeline.providers.sendgrid_api_key,
        environment["STRIPE_WEBHOOK_SECRET_NAME"]: pipeline.providers.stripe_webhook_secret,
        environment["IDENTIFIER_SECRET_NAME"]: pipeline.identifier_secret,
    }
    problems = key_problems(charge_wiring.api_keys.get, expected)
    if not problems:
        problems = stripe_problems(charge_wiring.payments)
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
    import stripe

    try:
        payments.retrieve(PROBE_PAYMENT_INTENT)
    except stripe.InvalidRequestError as error:
        if error.http_status == 404:
            return []
        return [f"Stripe: {error.http_status} {error.code} for a read the charge function makes"]
    except stripe.StripeError as error:
        return [f"Stripe: {type(error).__name__} ({error.http_status}) with the charge function's client"]
    return [f"Stripe: {PROBE_PAYMENT_INTENT} exists, which no probe should find"]


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
