"""Identifiers nobody can derive without this deployment's secret: donation ids, donor keys, velocity keys.

A donation's id names its record to anyone who has it (``GET /donations/{id}``), and is derived
from the client's Idempotency-Key so that a retry finds the same donation. Derived with an unkeyed
hash, anyone who can guess a form's keys can read a donation or squat a donor's key; derived with
a keyed HMAC (RFC 2104, HMAC-SHA256) it cannot be computed without the secret, which is read from an
SSM SecureString parameter like the provider keys (donations.secrets). The same secret peppers the
donor key (the index that finds a donor's donations) and the card-testing counters' email keys, so
neither can be reversed from a list of known addresses; each use has its own domain label, so
values of one kind never match another's.

A random id with a separate key index was the alternative: it needs a second item written with each
donation (a transaction: twice the write cost and a round trip more). The HMAC keeps one
conditional put per donation; its price is that the secret can never change while donations it
named may still be retried (docs/security-application.md says how to rotate it).

Idempotency-Keys must be unguessable too: :func:`check_idempotency_key` refuses keys that are
certainly weak. Randomness cannot be measured from one key; clients send a UUID (version 4: 122
random bits), as the donation form does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable

from donations.errors import WeakIdempotencyKey

IDEMPOTENCY_KEY_MIN_LENGTH = 16
# Fewer distinct characters than this is a pattern, not randomness ("aaaa…", "1212…"). Sixteen random
# hexadecimal digits (the narrowest honest alphabet) show fewer than 5 distinct ones once in 2.4 million
# keys; a UUID's 32 digits once in 10**16.
IDEMPOTENCY_KEY_MIN_DISTINCT = 5
SECRET_MIN_LENGTH = 32

_DONATION_ID = b"donation-id"
_DONOR_KEY = b"donor-key"
_VELOCITY_EMAIL = b"velocity-email"


class IdentifierSecretTooShort(RuntimeError):
    """The parameter holds fewer than SECRET_MIN_LENGTH characters: a deployment error, never guessed around."""


def check_idempotency_key(idempotency_key: str) -> None:
    """Raise WeakIdempotencyKey unless the key is long and varied enough to be a random one."""
    if len(idempotency_key) < IDEMPOTENCY_KEY_MIN_LENGTH or len(set(idempotency_key)) < IDEMPOTENCY_KEY_MIN_DISTINCT:
        raise WeakIdempotencyKey(
            f"The Idempotency-Key must be random and at least {IDEMPOTENCY_KEY_MIN_LENGTH} characters long: "
            "send a new UUID (crypto.randomUUID()) for each donation.",
            field="Idempotency-Key",
        )


class Identifiers:
    """The keyed identifiers; ``secret`` returns the parameter's value (read through the secrets cache)."""

    def __init__(self, secret: Callable[[], str]) -> None:
        self._secret = secret

    def donation_id(self, idempotency_key: str) -> str:
        """The same key always names the same donation, so a retry after a 503 reuses it (and with it
        Stripe's idempotency key): a charge whose answer was lost is replayed, not repeated."""
        return _as_donation_id(self._mac(_DONATION_ID, idempotency_key))

    def donor_key(self, email: str) -> str:
        """The donor index's key for an address (the address itself is never a key)."""
        return self._mac(_DONOR_KEY, _normal_email(email)).hex()[:32]

    def velocity_email_key(self, email: str) -> str:
        """The card-testing counters' key for an address."""
        return self._mac(_VELOCITY_EMAIL, _normal_email(email)).hex()[:32]

    def _mac(self, domain: bytes, value: str) -> bytes:
        secret = self._secret().encode()
        if len(secret) < SECRET_MIN_LENGTH:
            raise IdentifierSecretTooShort(f"the identifier secret must be at least {SECRET_MIN_LENGTH} characters")
        return hmac.new(secret, domain + b"\x00" + value.encode(), hashlib.sha256).digest()


# -- before the keyed identifiers ------------------------------------------------------------------
# Records written before them carry these; they are still found (donations.charge, donations_ops).


def legacy_donation_id(idempotency_key: str) -> str:
    """The id an Idempotency-Key named before ids were keyed: an unkeyed sha256."""
    return _as_donation_id(hashlib.sha256(idempotency_key.encode()).digest())


def legacy_donor_key(email: str) -> str:
    """The donor key records written before donor keys were keyed carry: an unkeyed sha256."""
    return hashlib.sha256(_normal_email(email).encode()).hexdigest()[:32]


def _as_donation_id(digest: bytes) -> str:
    return "don_" + base64.b32encode(digest).decode().rstrip("=").lower()[:26]


def _normal_email(email: str) -> str:
    return email.strip().lower()
