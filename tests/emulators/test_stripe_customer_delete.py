"""The Stripe emulator deletes a Customer as Stripe does, driven by the real stripe SDK.

References nobody here wrote: ``stripe.params.CustomerDeleteParams`` of the pinned version (no
parameters) and Stripe's "Delete a customer" page (docs.stripe.com/api/customers/delete): the answer
is ``{"id", "object": "customer", "deleted": true}``; an id that does not exist raises an error;
deleted customers can still be retrieved; deleting removes all card details.
"""

from __future__ import annotations

import pytest
import stripe

from simulator.emulators.stripe import StripeEmulator
from tests.emulators.conftest import StripeFactory

pytestmark = pytest.mark.integration


def test_a_deleted_customer_is_gone_but_retrievable_and_a_second_delete_is_refused(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    # Given a Customer with a card attached
    client = stripe_client()
    customer = client.v1.customers.create(params={"email": "ada@example.org", "name": "Ada"})
    method = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})

    # When it is deleted
    deleted = client.v1.customers.delete(customer.id)

    # Then Stripe's answer says so, and retrieving it still answers, marked deleted
    assert (deleted.id, deleted.object, deleted.deleted) == (customer.id, "customer", True)
    again = client.v1.customers.retrieve(customer.id)
    assert again.to_dict() == {"id": customer.id, "object": "customer", "deleted": True}
    # ... it is listed no more and its card is detached
    assert client.v1.customers.list(params={"email": "ada@example.org"}).data == []
    assert client.v1.payment_methods.retrieve(method.id).customer is None
    assert stripe_emu.customers == []
    # ... and deleting it again is refused as an unknown customer (nothing deleted twice)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.delete(customer.id)
    assert (caught.value.http_status, caught.value.code) == (404, "resource_missing")


def test_a_card_cannot_be_attached_to_a_deleted_customer(stripe_client: StripeFactory) -> None:
    client = stripe_client()
    customer = client.v1.customers.create(params={"email": "bo@example.org"})
    client.v1.customers.delete(customer.id)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    assert caught.value.code == "resource_missing"
