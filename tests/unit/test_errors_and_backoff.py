import json
import random

import pytest
import requests
import stripe
from botocore.exceptions import ClientError
from python_http_client import exceptions as http_errors

from donations.consumer import backoff_seconds
from donations.errors import Classified, PermanentStepFailure, RetryableStepFailure, classify

pytestmark = pytest.mark.unit


def _sendgrid_error(status):
    return http_errors.HTTPError(status, "reason", b'{"errors":[]}', {})


@pytest.mark.parametrize(
    "error",
    [
        stripe.APIConnectionError("reset"),
        stripe.RateLimitError("slow down", http_status=429, code="rate_limit"),
        stripe.InvalidRequestError("locked", param=None, code="lock_timeout", http_status=429),
        stripe.APIError("boom", http_status=500),
        stripe.InvalidRequestError("x", param=None, http_status=400, headers={"Stripe-Should-Retry": "true"}),
        _sendgrid_error(429),
        _sendgrid_error(503),
        requests.Timeout(),
        TimeoutError(),
        ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException"}, "ResponseMetadata": {"HTTPStatusCode": 400}},
            "PutItem",
        ),
        RetryableStepFailure("x"),
    ],
)
def test_transient_failures_are_retryable(error):
    assert classify(error).retryable


@pytest.mark.parametrize(
    "error",
    [
        stripe.InvalidRequestError("cannot attach", param="payment_method", http_status=400),
        stripe.CardError("declined", param=None, code="card_declined", http_status=402),
        _sendgrid_error(400),
        PermanentStepFailure("send_receipt:donation_not_found"),
    ],
)
def test_failures_that_retrying_cannot_fix_are_permanent(error):
    assert not classify(error).retryable


def test_backoff_grows_exponentially_within_jitter_and_is_capped():
    rng = random.Random(7)
    for receive_count, ceiling in [(1, 10), (2, 20), (3, 40), (4, 80), (5, 160), (6, 300), (12, 300)]:
        delays = [backoff_seconds(receive_count, base=10, cap=300, rng=rng) for _ in range(50)]
        assert all(ceiling / 2 - 1 <= delay <= ceiling for delay in delays), (receive_count, delays)
        assert len(set(delays)) > 1 or ceiling <= 10  # jitter spreads retries apart


def _sendgrid_body_error(status, body):
    return http_errors.HTTPError(status, "reason", body if isinstance(body, bytes) else json.dumps(body).encode(), {})


@pytest.mark.parametrize(
    ("status", "field", "reason", "retryable", "credentials_refused"),
    [
        (401, None, "sendgrid:unauthorized", False, True),  # key invalid, deleted or revoked
        (403, None, "sendgrid:forbidden", False, True),  # "access forbidden": no Mail Send permission
        (403, "from", "sendgrid:sender_not_verified", False, False),  # Twilio error 60222
        (400, "personalizations.0.to.0.email", "sendgrid:http_400", False, False),
        (413, None, "sendgrid:http_413", False, False),
        (404, None, "sendgrid:http_404", False, False),
        (429, None, "sendgrid:http_429", True, False),
        (500, None, "sendgrid:http_500", True, False),
        (503, None, "sendgrid:http_503", True, False),
    ],
)
def test_sendgrid_errors_are_classified_by_their_documented_meaning(
    status, field, reason, retryable, credentials_refused
):
    # The message is deliberately misleading: only the status and the field SendGrid names count.
    error = _sendgrid_body_error(status, {"errors": [{"message": "anything at all", "field": field, "help": None}]})

    assert classify(error) == Classified(retryable, reason, credentials_refused=credentials_refused)


def test_sendgrid_maximum_credits_exceeded_is_an_account_problem_not_a_refused_key():
    # SendGrid's "4XX API Errors" support article: 401 "Maximum credits exceeded" when the account has
    # used its plan's credits. The key is fine: no key rotation alert, its own reason for the runbook.
    error = _sendgrid_body_error(
        401, {"errors": [{"message": "Maximum credits exceeded", "field": None, "help": None}]}
    )

    assert classify(error) == Classified(False, "sendgrid:credits_exceeded", credentials_refused=False)


def test_a_sendgrid_error_body_that_is_not_json_still_classifies():
    # A proxy in front of SendGrid may answer 413 with an HTML page.
    error = _sendgrid_body_error(413, b"<html><h1>413 Request Entity Too Large</h1></html>")

    assert classify(error) == Classified(False, "sendgrid:http_413")
