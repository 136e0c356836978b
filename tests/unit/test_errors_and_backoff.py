import random

import pytest
import requests
import stripe
from botocore.exceptions import ClientError
from python_http_client import exceptions as http_errors

from donations.consumer import backoff_seconds
from donations.errors import PermanentStepFailure, RetryableStepFailure, classify
from donations.settings import Settings

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
    settings = Settings(backoff_base_seconds=10, backoff_cap_seconds=300)
    rng = random.Random(7)
    for receive_count, ceiling in [(1, 10), (2, 20), (3, 40), (4, 80), (5, 160), (6, 300), (12, 300)]:
        delays = [backoff_seconds(receive_count, settings, rng) for _ in range(50)]
        assert all(ceiling / 2 - 1 <= delay <= ceiling for delay in delays), (receive_count, delays)
        assert len(set(delays)) > 1 or ceiling <= 10  # jitter spreads retries apart
