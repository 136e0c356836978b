"""What the product relies on from Stripe and SendGrid, as those providers document it."""

import time

import pytest

from donations import deadline
from donations.errors import InvalidDonation, RetryableStepFailure, ServiceUnavailable
from donations.mail import ReceiptMailer, build_sendgrid_client
from donations.models import Donation, DonationStatus
from donations.payments import StripePayments, build_stripe_client
from tests.support.records import a_donation

pytestmark = pytest.mark.integration


def _donation(**fields) -> Donation:
    return a_donation(**({"status": DonationStatus.PENDING} | fields))


def test_an_amount_below_stripes_minimum_is_a_400_the_donor_can_act_on(world):
    # Stripe answers amount_too_small (docs.stripe.com/error-codes) below its per-currency minimum
    # (docs.stripe.com/currencies#minimum-and-maximum-charge-amounts); nothing is charged.
    with pytest.raises(InvalidDonation) as refused:
        world.wiring.payments.charge(_donation(amount=10))
    assert (refused.value.code, refused.value.field) == ("amount_too_small", "amount")
    assert world.stripe.payment_intents_created == 0


class _Invocation:
    """A Lambda context with this many milliseconds left (the real interface, a fixed countdown start)."""

    def __init__(self, remaining_ms: int) -> None:
        self._ends = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._ends - time.monotonic()) * 1000))


def test_a_slow_stripe_is_given_up_before_the_invocation_must_answer(world):
    # A provider timeout longer than the whole invocation, as in production (8 s vs a 10 s function):
    # without the budget, the SDK would wait 8 s per attempt and retry twice (about 25 s).
    settings = world.settings.model_copy(update={"provider_timeout_seconds": 8.0})
    payments = StripePayments(build_stripe_client(settings, "sk_test_local_emulator"))
    # Stripe holds the request without acting on it (nothing for a later test to find).
    world.stripe.faults.add("timeout", latency_ms=6_000, path_prefix="/v1/payment_intents", method="POST")

    started = time.monotonic()
    with deadline.budget(_Invocation(remaining_ms=4_000), reserve_seconds=2), pytest.raises(ServiceUnavailable):
        payments.charge(_donation())
    # 2 s of budget; at most one SDK backoff sleep (0.5 s) beyond it, which the reserve covers.
    assert time.monotonic() - started < 3.5


def test_a_slow_sendgrid_fails_the_record_in_time_for_the_consumer_to_report_it(world):
    settings = world.settings.model_copy(update={"provider_timeout_seconds": 8.0})
    mailer = ReceiptMailer(build_sendgrid_client(settings, "SG.local-emulator"), settings)
    world.sendgrid.faults.add("timeout", latency_ms=6_000, path_prefix="/v3/mail/send")

    started = time.monotonic()
    with deadline.budget(_Invocation(remaining_ms=4_000), reserve_seconds=2), pytest.raises(RetryableStepFailure):
        mailer.send(_donation(status=DonationStatus.SUCCEEDED))
    assert time.monotonic() - started < 3.0
    with (
        deadline.budget(_Invocation(remaining_ms=2_100), reserve_seconds=2),
        pytest.raises(RetryableStepFailure) as late,
    ):
        mailer.send(_donation(status=DonationStatus.SUCCEEDED))
    assert late.value.reason == "send_receipt:out_of_time"
