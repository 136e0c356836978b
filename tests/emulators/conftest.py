"""Fixtures for the provider emulator tests: one fresh emulator per test, real SDK clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import stripe
from sendgrid import SendGridAPIClient

from simulator.emulators.sendgrid_emulator import SendGridEmulator
from simulator.emulators.stripe import StripeEmulator
from simulator.emulators.turnstile_emulator import TurnstileEmulator

StripeFactory = Callable[..., stripe.StripeClient]


@pytest.fixture
def stripe_emu() -> Iterator[StripeEmulator]:
    with StripeEmulator() as emu:
        yield emu


@pytest.fixture
def sendgrid_emu() -> Iterator[SendGridEmulator]:
    with SendGridEmulator() as emu:
        yield emu


@pytest.fixture
def turnstile_emu() -> Iterator[TurnstileEmulator]:
    with TurnstileEmulator() as emu:
        yield emu


@pytest.fixture
def stripe_client(stripe_emu: StripeEmulator) -> Iterator[StripeFactory]:
    """Build real StripeClients pointed at the emulator, with bounded HTTP timeouts."""
    http_clients: list[stripe.RequestsClient] = []

    def make(retries: int = 0, key: str = "sk_test_emulator", timeout: float = 5.0) -> stripe.StripeClient:
        http = stripe.RequestsClient(timeout=timeout)
        http_clients.append(http)
        return stripe.StripeClient(
            key, base_addresses={"api": stripe_emu.url}, max_network_retries=retries, http_client=http
        )

    yield make
    for http in http_clients:
        http.close()


@pytest.fixture
def sendgrid_client(sendgrid_emu: SendGridEmulator) -> Callable[..., SendGridAPIClient]:
    def make(key: str = "SG.test", timeout: float = 5.0) -> SendGridAPIClient:
        client = SendGridAPIClient(api_key=key, host=sendgrid_emu.url)
        client.client.timeout = timeout  # python_http_client passes it on to urllib
        return client

    return make
