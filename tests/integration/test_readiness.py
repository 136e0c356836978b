"""The local stack's start-up checks fail, and say why, when a charge could not succeed."""

import pytest

from donations.payments import StripePayments, build_stripe_client
from donations.stripe_keys import STRIPE_KEY_VARIABLES
from simulator.local.process import free_port
from simulator.local.readiness import api_problems, key_problems, stripe_key_problems, stripe_problems

pytestmark = pytest.mark.integration


def test_the_charge_functions_own_client_passes_the_stripe_check(world):
    wiring = world.pipeline.handler("ChargeFunction").wiring()

    assert stripe_problems(wiring.payments) == []
    assert world.stripe.state()["payment_intents"] == []  # the probe created nothing


def test_each_functions_own_stripe_key_passes_its_check(world):
    # Given the keys the stack stored for the functions (a restricted key each, donations.stripe_keys)
    keys = {function: world.pipeline.providers.stripe_function_keys[function] for function in STRIPE_KEY_VARIABLES}

    # Then each may read what its job is about, and nothing was created
    assert stripe_key_problems(world.settings, keys) == []
    assert world.stripe.state()["payment_intents"] == []


def test_a_function_key_without_its_jobs_permission_fails_the_check(world):
    # Given a tokenize key made without the Customers permission
    world.stripe.restrict("rk_test_readiness_tokenize", {"PaymentMethods": "Write"})

    problems = stripe_key_problems(world.settings, {"tokenize": "rk_test_readiness_tokenize"})

    # Then readiness names the function and Stripe's refusal, never the key
    assert problems == ["Stripe: the tokenize key got PermissionError (403)"]


@pytest.mark.parametrize("key", ["rk_test_restricted", "sk_live_not_accepted_here"])
def test_a_key_the_provider_refuses_fails_the_stripe_check(world, key):
    payments = StripePayments(build_stripe_client(world.settings, key))

    problems = stripe_problems(payments)

    assert problems and "AuthenticationError" in problems[0] and "401" in problems[0]
    assert key not in problems[0]


def test_an_unreachable_stripe_fails_the_stripe_check(world):
    settings = world.settings.model_copy(
        update={"stripe_api_base": f"http://127.0.0.1:{free_port()}", "stripe_max_network_retries": 0}
    )

    problems = stripe_problems(StripePayments(build_stripe_client(settings, "sk_test_x")))

    assert problems and "APIConnectionError" in problems[0]


def test_a_secret_the_functions_read_differently_fails_the_key_check_without_printing_it():
    stored = {"donations/stripe/charge-key": "sk_test_stored"}

    assert key_problems(lambda name: "sk_test_stored", stored) == []
    problems = key_problems(lambda name: "sk_test_other", stored)
    assert problems == ["secret donations/stripe/charge-key: the functions read another value than the stack stored"]


def test_a_front_that_does_not_answer_fails_the_api_check():
    problems = api_problems(f"http://127.0.0.1:{free_port()}")

    assert problems and problems[0].startswith("API: ")
