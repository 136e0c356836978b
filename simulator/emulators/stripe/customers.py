"""Customers: create, retrieve, list (docs.stripe.com/api/customers)."""

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
    params.expand(p, set())
    customer = state.customers.get(customer_id or "")
    if customer is None:
        raise errors.no_such("customer", customer_id or "", "id")
    return copy_json(customer)


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
