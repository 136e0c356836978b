"""Idempotency-Keys for tests: strong enough for the API (donations.identifiers), and named after what they are for."""

from __future__ import annotations

import uuid


def a_key(label: str) -> str:
    """The same strong key for the same label: ``label-<UUID derived from it>`` (a resubmission reuses it)."""
    return f"{label}-{uuid.uuid5(uuid.NAMESPACE_URL, label)}"
