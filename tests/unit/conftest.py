"""The unit tier: the core's decisions against in-memory fakes (tests/support/fakes.py); no AWS, no
provider, no network (tests/conftest.py blocks sockets for every test marked ``unit``)."""

from __future__ import annotations

import pytest

from donations.models import DonationRequest, RequestLimits
from tests.support.fakes import FakeMailer, FakePayments, FakePublisher, FakeStore

# The template's defaults (AllowedCurrencies, MinAmount, MaxAmount).
LIMITS = RequestLimits(frozenset({"usd", "eur", "gbp", "cad", "aud"}), min_amount=100, max_amount=5_000_000)
Request = DonationRequest.with_limits(LIMITS)
BODY = {
    "amount": 2500,
    "currency": "usd",
    "email": "ada@example.org",
    "name": "Ada Lovelace",
    "payment_method": "pm_card_visa",
    "save_card": True,
}


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def payments() -> FakePayments:
    return FakePayments()


@pytest.fixture
def mailer() -> FakeMailer:
    return FakeMailer()


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()
