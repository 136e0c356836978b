"""Keyed identifiers (donations.identifiers): nothing of them can be computed without the secret."""

from __future__ import annotations

import uuid

import pytest

from donations.charge import DONATION_ID
from donations.errors import WeakIdempotencyKey
from donations.identifiers import (
    Identifiers,
    IdentifierSecretTooShort,
    check_idempotency_key,
    legacy_donation_id,
    legacy_donor_key,
)

pytestmark = pytest.mark.unit

KEY = str(uuid.UUID("8c4f1a52-0d9e-4b7a-9f3e-2a6b5c1d7e90"))


def keyed(secret: str) -> Identifiers:
    return Identifiers(lambda: secret)


def test_a_key_names_one_donation_that_only_the_secret_can_compute():
    ours, theirs = keyed("s" * 16 + "ecret-of-this-deployment"), keyed("another-deployment-secret-0123456789")

    # The same key always names the same donation, in the id format the API accepts
    assert ours.donation_id(KEY) == ours.donation_id(KEY)
    assert DONATION_ID.match(ours.donation_id(KEY))
    assert ours.donation_id(KEY) != ours.donation_id(str(uuid.uuid4()))
    # ... but neither the unkeyed hash of the key nor another secret computes it
    assert ours.donation_id(KEY) not in {legacy_donation_id(KEY), theirs.donation_id(KEY)}


def test_donor_and_velocity_keys_ignore_case_and_differ_from_each_other_and_from_the_unkeyed_hash():
    identifiers = keyed("a-secret-long-enough-for-the-hmac-0123")

    assert identifiers.donor_key(" Ada@Example.org ") == identifiers.donor_key("ada@example.org")
    keys = {
        identifiers.donor_key("ada@example.org"),
        identifiers.velocity_email_key("ada@example.org"),
        legacy_donor_key("ada@example.org"),
    }
    assert len(keys) == 3


def test_a_secret_too_short_to_key_anything_fails_loudly():
    with pytest.raises(IdentifierSecretTooShort):
        keyed("short").donation_id(KEY)


@pytest.mark.parametrize(
    "key",
    ["demo-1", "smoke-17", "k" * 40, "abababababababababab", "1234123412341234", "don_1:charge"],
)
def test_keys_that_are_short_or_repetitive_are_refused(key):
    with pytest.raises(WeakIdempotencyKey) as refused:
        check_idempotency_key(key)
    assert (refused.value.status, refused.value.code) == (400, "weak_idempotency_key")


# Fixed values (what crypto.randomUUID() and a 16-hex-digit token look like): test ids must be the same in
# every pytest-xdist worker.
@pytest.mark.parametrize("key", [KEY, "0d7b93f8-fc26-402b-902f-eb877fb2ebc4", "c32e9de098a7421f", "Zx8_q2LmN4-pR7vT"])
def test_uuids_and_random_keys_of_16_characters_are_accepted(key):
    check_idempotency_key(key)
