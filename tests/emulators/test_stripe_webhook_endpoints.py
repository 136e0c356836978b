"""The Stripe emulator's WebhookEndpoints API, driven by the real stripe SDK.

References nobody here wrote: the SDK's ``stripe.params.WebhookEndpointCreateParams`` / ``…UpdateParams``
of the pinned version (what each call accepts; ``api_version`` at creation only, ``enabled_events``
from the version's event types) and ``stripe.WebhookEndpoint.secret`` ("Only returned at creation");
Stripe's "Webhook versioning" page (an endpoint without a version receives the account's default).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stripe

from simulator.emulators.stripe import DEFAULT_API_VERSION, StripeEmulator
from tests.emulators.test_stripe_webhooks import Receiver, pay

pytestmark = pytest.mark.integration

ACCOUNT_DEFAULT = "2025-03-31.basil"
SUCCEEDED = "payment_intent.succeeded"


@pytest.fixture
def emu() -> Iterator[StripeEmulator]:
    with StripeEmulator(account_api_version=ACCOUNT_DEFAULT, webhook_retry_schedule=(0.05,)) as e:
        yield e


@pytest.fixture
def client(emu: StripeEmulator) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_endpoints", base_addresses={"api": emu.url})


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    pair = (Receiver(), Receiver())
    yield pair
    for receiver in pair:
        receiver.close()


def test_create_retrieve_list_update_delete(client: stripe.StripeClient, receivers: tuple[Receiver, Receiver]) -> None:
    first, _ = receivers
    created = client.v1.webhook_endpoints.create(
        params={"url": first.url, "enabled_events": [SUCCEEDED], "api_version": DEFAULT_API_VERSION}  # type: ignore[typeddict-item]
    )
    assert created.object == "webhook_endpoint" and created.status == "enabled"
    assert created.secret is not None and created.secret.startswith("whsec_")

    # The secret is only returned at creation
    shown = client.v1.webhook_endpoints.retrieve(created.id)
    assert (shown.url, shown.api_version, shown.enabled_events, shown.secret) == (
        first.url, DEFAULT_API_VERSION, [SUCCEEDED], None
    )  # fmt: skip
    assert [e.id for e in client.v1.webhook_endpoints.list().data] == [created.id]

    updated = client.v1.webhook_endpoints.update(created.id, params={"enabled_events": ["*"], "disabled": True})
    assert (updated.enabled_events, updated.status, updated.secret) == (["*"], "disabled", None)

    deleted = client.v1.webhook_endpoints.delete(created.id)
    assert deleted.deleted is True
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.webhook_endpoints.retrieve(created.id)
    assert missing.value.http_status == 404


@pytest.mark.parametrize(
    ("call", "param"),
    [
        ("create_without_events", "enabled_events"),  # required by WebhookEndpointCreateParams
        ("create_with_an_unknown_event", "enabled_events[0]"),  # not one of the version's event types
        ("create_with_an_unknown_version", "api_version"),  # not one of the versions the SDK lists
        ("update_the_version", "api_version"),  # a create-only parameter
    ],
)
def test_parameters_the_sdk_types_do_not_allow_are_refused(client: stripe.StripeClient, call: str, param: str) -> None:
    url = "http://127.0.0.1:9/webhooks/stripe"
    calls = {
        "create_without_events": lambda: client.v1.webhook_endpoints.create(params={"url": url}),  # type: ignore[typeddict-item]
        "create_with_an_unknown_event": lambda: client.v1.webhook_endpoints.create(
            params={"url": url, "enabled_events": ["donation.invented"]}  # type: ignore[list-item]
        ),
        "create_with_an_unknown_version": lambda: client.v1.webhook_endpoints.create(
            params={"url": url, "enabled_events": ["*"], "api_version": "2099-01-01.nope"}  # type: ignore[typeddict-item]
        ),
        "update_the_version": lambda: client.v1.webhook_endpoints.update(
            client.v1.webhook_endpoints.create(params={"url": url, "enabled_events": ["*"]}).id,
            params={"api_version": DEFAULT_API_VERSION},  # type: ignore[typeddict-unknown-key]
        ),
    }
    with pytest.raises(stripe.InvalidRequestError) as refused:
        calls[call]()
    assert refused.value.http_status == 400 and refused.value.param == param


def test_each_endpoint_gets_the_event_signed_with_its_own_secret_in_its_own_version(
    emu: StripeEmulator, client: stripe.StripeClient, receivers: tuple[Receiver, Receiver]
) -> None:
    pinned_receiver, by_hand_receiver = receivers
    pinned = client.v1.webhook_endpoints.create(
        params={"url": pinned_receiver.url, "enabled_events": [SUCCEEDED], "api_version": DEFAULT_API_VERSION}  # type: ignore[typeddict-item]
    )
    by_hand = client.v1.webhook_endpoints.create(params={"url": by_hand_receiver.url, "enabled_events": ["*"]})

    intent = pay(client)

    pinned_receiver.wait_for_requests(1)
    by_hand_receiver.wait_for_requests(1)
    assert pinned.secret and by_hand.secret and pinned.secret != by_hand.secret
    event = pinned_receiver.requests[0].event(pinned.secret)
    assert (event.type, event.api_version, event.data.object["id"]) == (SUCCEEDED, DEFAULT_API_VERSION, intent.id)
    with pytest.raises(stripe.SignatureVerificationError):
        pinned_receiver.requests[0].event(by_hand.secret)
    # The endpoint without a version receives the account's default, and every type ("*")
    assert by_hand_receiver.requests[0].event(by_hand.secret).api_version == ACCOUNT_DEFAULT
    assert emu.events[-1]["pending_webhooks"] >= 1


def test_a_disabled_or_deleted_endpoint_receives_nothing(
    emu: StripeEmulator, client: stripe.StripeClient, receivers: tuple[Receiver, Receiver]
) -> None:
    disabled_receiver, deleted_receiver = receivers
    disabled = client.v1.webhook_endpoints.create(params={"url": disabled_receiver.url, "enabled_events": ["*"]})
    deleted = client.v1.webhook_endpoints.create(params={"url": deleted_receiver.url, "enabled_events": ["*"]})
    client.v1.webhook_endpoints.update(disabled.id, params={"disabled": True})
    client.v1.webhook_endpoints.delete(deleted.id)

    pay(client)

    assert emu.events and all(e["pending_webhooks"] == 0 for e in emu.events)
    assert disabled_receiver.requests == [] and deleted_receiver.requests == []
