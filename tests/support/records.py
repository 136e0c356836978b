"""Donation records as the store holds them, for tests that call the core's steps directly."""

from __future__ import annotations

from typing import Any

from donations.models import Donation, DonationStatus


def a_donation(**changes: Any) -> Donation:
    """A charged $25.00 donation by Ada Lovelace (card not saved); ``changes`` override any field."""
    fields: dict[str, Any] = {
        "donation_id": "don_" + "a" * 26,
        "status": DonationStatus.SUCCEEDED,
        "amount": 2500,
        "currency": "usd",
        "email": "ada@example.org",
        "email_masked": "a***@e***.org",
        "name": "Ada Lovelace",
        "payment_method": "pm_card_visa",
        "save_card": False,
        "request_hash": "h",
        "created_at": "2026-11-25T15:30:00Z",
        "updated_at": "2026-11-25T15:30:00Z",
    }
    return Donation(**(fields | changes))
