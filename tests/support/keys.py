"""Idempotency-Keys for tests: strong enough for the API (donations.identifiers), named after what they are for."""

from __future__ import annotations

import uuid

from donations.identifiers import Identifiers
from simulator.local.pipeline import Pipeline

# Keyed as the test pipeline keys them (its default secret), so unit and integration tests agree.
IDENTIFIERS = Identifiers(lambda: Pipeline.identifier_secret)


def a_key(label: str) -> str:
    """The same strong key for the same label: ``label-<UUID derived from it>`` (a resubmission reuses it)."""
    return f"{label}-{uuid.uuid5(uuid.NAMESPACE_URL, label)}"


def donation_id_for(label: str) -> str:
    """The id of the donation posted with ``a_key(label)``."""
    return IDENTIFIERS.donation_id(a_key(label))
