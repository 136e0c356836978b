"""Customers: create, retrieve, list, delete (docs.stripe.com/api/customers)."""

from __future__ import annotations

import stripe

from simulator.emulators.stripe import errors, params
from simulator.emulators.stripe.events import emit
from simulator.emulators.stripe.listing import list_page
from simulator.emulators.stripe.objects import Json, copy_json, new_id, rand, shaped
from simulator.emulators.stripe.state import Ctx, StripeState


def create(state: StripeState, ctx: Ctx, p: Json, _: str | None) -> Json:
    customer = shaped(
        stripe.Customer,
        {
            "id": new_id("cus"),
            "object": "customer",
            "balance": 0,
            "created": ctx.now,
            "delinquent": False,
            "description": params.text(p, "description"),
            "email": params.email(p, "email"),
            "invoice_prefix": rand(8).upper(),
            "invoice_settings": shaped(stripe.Customer.InvoiceSettings, {}),
            "livemode": False,
            "metadata": params.metadata(p),
            "name": params.text(p, "name"),
            "phone": params.text(p, "phone"),
            "preferred_locales": [],
            "tax_exempt": "none",
        },
    )
    state.customers[customer["id"]] = customer
    emit(state, ctx, "customer.created", customer)
    return copy_json(customer)


def retrieve(state: StripeState, ctx: Ctx, p: Json, customer_id: str | None) -> Json:
    """A deleted Customer can still be retrieved: its id and ``deleted: true``
    (docs.stripe.com/api/customers/delete)."""
    params.expand(p, set())
    deleted = state.deleted_customers.get(customer_id or "")
    if deleted is not None:
        return copy_json(deleted)
    customer = state.customers.get(customer_id or "")
    if customer is None:
        raise errors.no_such("customer", customer_id or "", "id")
    return copy_json(customer)


def delete(state: StripeState, ctx: Ctx, p: Json, customer_id: str | None) -> Json:
    """Permanently delete: answers ``{"id", "object": "customer", "deleted": true}``; an id that does not
    exist, or no longer does (deleted already), is refused as "No such customer" (404)
    (docs.stripe.com/api/customers/delete: "If the customer ID does not exist, this call raises an
    error"). Its card details go: its PaymentMethods are detached ("Deleting customers removes all
    credit card details"). Listed no more; later requests naming it are refused as for any unknown id."""
    customer = state.customers.pop(customer_id or "", None)
    if customer is None:
        raise errors.no_such("customer", customer_id or "", "id")
    for method in state.payment_methods.values():
        if method.get("customer") == customer["id"]:
            method["customer"] = None
    stub = {"id": customer["id"], "object": "customer", "deleted": True}
    state.deleted_customers[customer["id"]] = stub
    emit(state, ctx, "customer.deleted", customer)
    return copy_json(stub)


def list_customers(state: StripeState, ctx: Ctx, p: Json, _: str | None) -> Json:
    """Newest first, read consistently (unlike search). ``email`` is a case-sensitive exact filter
    (docs.stripe.com/api/customers/list)."""
    params.expand(p, set())
    email = params.text(p, "email")
    customers = list(state.customers.values())
    return list_page(
        customers, p, "/v1/customers", copy_json, kind="customer", keep=lambda c: email in (None, c["email"])
    )


def customer_ref(state: StripeState, customer_id: str | None, param: str = "customer") -> str | None:
    """A customer id the request names, which must exist (400, as a bad parameter)."""
    if customer_id is not None and customer_id not in state.customers:
        raise errors.no_such("customer", customer_id, param, status=400)
    return customer_id
