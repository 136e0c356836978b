"""A donor's Stripe Customer deleted when the donor is erased (donations_ops.donor_data).

The operator tool holds no Stripe key, so ``donor erase`` puts one :class:`CustomerDeletion` per
Customer on the tokenize queue, and the tokenize function (whose restricted key creates Customers:
Customers Write, donations.stripe_keys) deletes it with Stripe's ``DELETE /v1/customers/{id}``, then
stamps ``customer_deleted_at`` on the donations that name it, which the erase command reads to report
the deletion done or pending.

Idempotent: Stripe answers a second delete of the same Customer "No such customer" (404
``resource_missing``; docs.stripe.com/api/customers/delete: "If the customer ID does not exist, this
call raises an error"), which counts as done. A duplicate message, or an erase run twice, deletes
nothing twice and stamps the same donations again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from donations.models import Donation

DELETE_CUSTOMER_TYPE = "delete_customer"
MAX_IDS_IN_MESSAGE = 1_000  # far below SQS's 256 KB at about 35 bytes an id


class CustomerDeletion(BaseModel):
    """The body of a deletion message on the tokenize queue: the Customer and the donations naming it.
    No address, no name. This module is pure of the functions' logger (the operator tool imports it)."""

    model_config = ConfigDict(extra="ignore")

    schema_version: Literal[1] = 1
    type: Literal["delete_customer"] = "delete_customer"
    customer_id: Annotated[str, StringConstraints(pattern=r"^cus_[A-Za-z0-9]{1,64}$")]
    donation_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=MAX_IDS_IN_MESSAGE
    )


def deletions_for(donations: Iterable[Donation], pledge_customers: Iterable[str]) -> list[CustomerDeletion]:
    """One deletion per Customer the donor's donations or pledges name, unless it was deleted already."""
    donations = list(donations)
    deleted = {d.customer_id for d in donations if d.customer_id and d.customer_deleted_at}
    naming: dict[str, list[str]] = {}
    for donation in donations:
        if donation.customer_id and donation.customer_id not in deleted:
            naming.setdefault(donation.customer_id, []).append(donation.donation_id)
    for customer in pledge_customers:
        if customer not in deleted:
            naming.setdefault(customer, [])
    return [
        CustomerDeletion(customer_id=customer, donation_ids=ids[-MAX_IDS_IN_MESSAGE:])
        for customer, ids in sorted(naming.items())
    ]
