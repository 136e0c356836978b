"""Charged donations written straight into the Donations table, as the charge and renewals leave them:
for tests that need a year of giving by many donors (the charge path has tests of its own)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from donations.models import Donation, DonationStatus, StepStatus
from donations.redaction import mask_email


@dataclass
class Gift:
    email: str
    name: str
    amount: int
    currency: str
    created_at: str
    refunded: int = 0
    pledge_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    def donation_id(self) -> str:
        digest = hashlib.sha256(f"{self.email}|{self.created_at}|{self.currency}|{self.amount}".encode()).hexdigest()
        return "don_" + digest[:26]


def charged_donation(gift: Gift, donor_key: str) -> Donation:
    metadata = dict(gift.metadata)
    if gift.pledge_id:
        metadata |= {"pledge_id": gift.pledge_id, "renewal_period": gift.created_at[:7]}
    return Donation(
        donation_id=gift.donation_id(),
        status=DonationStatus.SUCCEEDED,
        amount=gift.amount,
        currency=gift.currency,
        email=gift.email,
        email_masked=mask_email(gift.email),
        name=gift.name,
        payment_method="pm_card_visa",
        save_card=gift.pledge_id is not None,
        metadata=metadata,
        request_hash=hashlib.sha256(gift.email.encode()).hexdigest(),
        created_at=gift.created_at,
        updated_at=gift.created_at,
        charged_at=gift.created_at,
        payment_intent_id="pi_" + gift.donation_id()[4:],
        card_brand="visa",
        card_last4="4242",
        receipt_status=StepStatus.DONE,
        receipt_sent_at=gift.created_at,
        amount_refunded=gift.refunded,
        donor_key=donor_key,
        created_day=gift.created_at[:10],
        followups_published=True,
    )


def write_gifts(world: Any, gifts: list[Gift]) -> list[Donation]:
    """Write the gifts as charged, receipted donations keyed to their donors as the charge keys them."""
    donations = [charged_donation(gift, world.wiring.identifiers.donor_key(gift.email)) for gift in gifts]
    with world.wiring.store._table.batch_writer() as batch:
        for donation in donations:
            batch.put_item(Item=donation.model_dump(mode="json", exclude_none=True))
    return donations
