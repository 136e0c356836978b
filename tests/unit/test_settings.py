"""Settings fail at INIT, naming what is missing; the request's limits come from them, not from a global."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from donations.models import DonationRequest, RequestLimits
from donations.settings import (
    FUNCTION_SETTINGS,
    ChargeSettings,
    NotifierSettings,
    ReconcilerSettings,
    RenewSettings,
    ScheduleRenewalsSettings,
    SendReceiptSettings,
    SettingsError,
    TokenizeSettings,
    required_variables,
)

pytestmark = pytest.mark.unit

CHARGE_ENV = {
    "DONATIONS_TABLE": "donations-test",
    "TOKENIZE_QUEUE_URL": "https://sqs.example/tokenize",
    "RECEIPT_QUEUE_URL": "https://sqs.example/receipt",
    "STRIPE_CHARGE_SECRET_NAME": "/donations/stripe/charge-key",
    "CORS_ORIGIN": "*",
    "ALLOWED_CURRENCIES": "usd, EUR",
    "MIN_AMOUNT": "100",
    "MAX_AMOUNT": "5000000",
    "VELOCITY_TABLE": "velocity-test",
    "TURNSTILE_SECRET_NAME": "/donations/turnstile-secret-key",
    "FORM_HOSTNAMES": "donate.example.org",
    "TURNSTILE_SITEKEY": "1x00000000000000000000AA",
    "IDENTIFIER_SECRET_NAME": "/donations/identifier-secret",
    "PLEDGES_TABLE": "pledges-test",
    "PLEDGE_LINK_SECRET_NAME": "/donations/pledge-link-key",
    "MANAGE_PAGE_URL": "https://donate.example.org/manage.html",
}
BODY = {"amount": 2500, "currency": "usd", "email": "ada@example.org", "name": "Ada", "payment_method": "pm_card_visa"}


def test_a_complete_environment_gives_typed_settings():
    settings = ChargeSettings.from_env(CHARGE_ENV)

    assert settings.allowed_currencies == frozenset({"usd", "eur"})
    assert (settings.min_amount, settings.max_amount) == (100, 5_000_000)
    assert settings.request_limits == RequestLimits(frozenset({"usd", "eur"}), 100, 5_000_000)


def test_missing_variables_are_all_named_at_once():
    # Given the charge function's environment without its queues
    environment = {k: v for k, v in CHARGE_ENV.items() if not k.endswith("_QUEUE_URL")}

    # When its settings are read (at INIT), Then the error names both variables
    with pytest.raises(SettingsError) as raised:
        ChargeSettings.from_env(environment)
    assert raised.value.missing == ["RECEIPT_QUEUE_URL", "TOKENIZE_QUEUE_URL"]
    assert "ChargeSettings: missing environment variable(s) RECEIPT_QUEUE_URL, TOKENIZE_QUEUE_URL" in str(raised.value)


def test_an_empty_resource_name_or_a_bad_number_is_named_too():
    with pytest.raises(SettingsError, match=r"invalid TOKENIZE_QUEUE_URL: .*invalid MIN_AMOUNT"):
        ChargeSettings.from_env({**CHARGE_ENV, "TOKENIZE_QUEUE_URL": "", "MIN_AMOUNT": "one"})


@pytest.mark.parametrize(
    ("settings", "needs"),
    [
        (TokenizeSettings, {"DONATIONS_TABLE", "STRIPE_TOKENIZE_SECRET_NAME", "TOKENIZE_DLQ_URL", "MAX_RECEIVE_COUNT"}),
        (
            SendReceiptSettings,
            {"SENDGRID_SECRET_NAME", "RECEIPT_DLQ_URL", "RECEIPT_FROM_EMAIL", "ORG_NAME", "SUPPORT_EMAIL"},
        ),
        (ReconcilerSettings, {"TOKENIZE_QUEUE_URL", "RECEIPT_QUEUE_URL", "STRIPE_RECONCILER_SECRET_NAME"}),
    ],
)
def test_each_function_requires_what_names_its_resources(settings, needs):
    assert needs <= required_variables(settings)
    with pytest.raises(SettingsError) as raised:
        settings.from_env({})
    assert set(raised.value.missing) == required_variables(settings)


def test_a_function_needs_nothing_it_does_not_use():
    # The tokenize function sends no mail and publishes nothing; the receipt function never calls Stripe.
    assert not {"SENDGRID_SECRET_NAME", "RECEIPT_QUEUE_URL", "CORS_ORIGIN"} & required_variables(TokenizeSettings)
    assert not {name for name in required_variables(SendReceiptSettings) if name.startswith("STRIPE_")}
    assert set(FUNCTION_SETTINGS) == {
        "ChargeFunction",
        "TokenizeFunction",
        "SendReceiptFunction",
        "ReconcilerFunction",
        "StripeWebhookFunction",
        "NotifierFunction",
        "ScheduleRenewalsFunction",
        "RenewFunction",
    }
    # The schedule only queries the due index and sends to the renewal queue: no provider, no secret.
    assert not {name for name in required_variables(ScheduleRenewalsSettings) if "SECRET" in name}
    # The renew function sends no mail: it publishes the receipt for the receipt function.
    assert "SENDGRID_SECRET_NAME" not in required_variables(RenewSettings)
    # The notifier reads counts and publishes to operators: no provider key, no secret at all.
    assert not {name for name in required_variables(NotifierSettings) if "SECRET" in name}


def test_the_reconciler_windows_must_fit_together():
    environment = {
        "DONATIONS_TABLE": "t",
        "STRIPE_RECONCILER_SECRET_NAME": "s",
        "TOKENIZE_QUEUE_URL": "q1",
        "RECEIPT_QUEUE_URL": "q2",
        "RECONCILE_GRACE_SECONDS": "90000",  # longer than Stripe's 24 h idempotency window
    }
    with pytest.raises(SettingsError, match="RECONCILE_GRACE_SECONDS must not exceed"):
        ReconcilerSettings.from_env(environment)


def test_request_limits_are_passed_in_not_read_from_a_global():
    # Given two deployments' limits
    euros_only = DonationRequest.with_limits(RequestLimits(frozenset({"eur"}), min_amount=500, max_amount=10_000))
    dollars = DonationRequest.with_limits(RequestLimits(frozenset({"usd"}), min_amount=100, max_amount=5_000))

    # Then each model judges by its own
    assert dollars.model_validate(BODY).amount == 2500
    with pytest.raises(ValidationError) as refused:
        euros_only.model_validate(BODY)
    assert refused.value.errors()[0]["type"] == "currency_not_allowed"
    with pytest.raises(ValidationError) as too_much:
        dollars.model_validate({**BODY, "amount": 6_000})
    assert too_much.value.errors()[0]["type"] == "amount_out_of_range"
    assert euros_only.__name__ == dollars.__name__ == "DonationRequest"  # one name in the OpenAPI document


def test_a_model_without_limits_refuses_to_guess():
    with pytest.raises(TypeError, match="with_limits"):
        DonationRequest.model_validate(BODY)
