"""Signed, expiring links that let a donor manage a monthly pledge without an account.

A link carries a token: what it may do (its *purpose*), the pledge it names, when it expires and a
random nonce, signed with HMAC-SHA256 (RFC 2104) under a key read from an SSM SecureString parameter
(template parameter PledgeLinkSecretName; never an environment value). Nobody without the key can
make one, or change the pledge, purpose or expiry of one they hold. Each use is checked against the
pledge the request names, so a token for one pledge opens no other; a guessed pledge id with no
token, or a forged one, gets the same refusal as any bad token, so the answers reveal nothing about
which pledges exist.

Rotation: the parameter holds one key or several separated by whitespace or commas. The first signs;
every one verifies. Put the new key first and keep the old one after it for a link's lifetime, then
drop it: links issued in the last days keep working.

Purposes: ``manage`` (see the pledge, ask for one-time tokens); ``cancel``, ``amount``, ``skip``, ``pause`` and
``resume``, one-time tokens the manage page asks for just before the donor's change, each good for that change
only: the pledge records its nonce when it is used (donations.pledges, ``used_link_nonces``), so a replayed
token changes nothing; and
``authenticate``, for one renewal the bank wants the donor to authenticate (its donation id is the
token's subject, so an old email cannot be used on a later renewal).

The token travels in the link's fragment (``#token=...``), which browsers never send to a server
(RFC 3986 section 3.5): not to the page's host, not in a Referer; the page posts it in a JSON body,
so it is in no URL the API's access log records either.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from re import split

from donations.errors import LinkExpired, LinkRefused

SECRET_MIN_LENGTH = 32
# How long a link in an email works: long enough for a donor who reads mail weekly, short enough that an
# old forwarded mail stops working. A cancel token lives for the time it takes to confirm.
MANAGE_LINK_SECONDS = 14 * 24 * 3600
CANCEL_TOKEN_SECONDS = 15 * 60
# A renewal waiting for the donor's authentication: its link works this long, and the reconciler waits as
# long before it cancels the PaymentIntent (less than its 7-day max age, so it still does).
AUTHENTICATE_LINK_SECONDS = 5 * 24 * 3600
_VERSION = "v1"
_DOMAIN = b"pledge-link\x00"
_MAX_TOKEN_LENGTH = 512


class Purpose(StrEnum):
    MANAGE = "manage"
    CANCEL = "cancel"
    # One-time tokens for the donor's other changes on the manage page (donations.pledge_changes).
    AMOUNT = "amount"
    SKIP = "skip"
    PAUSE = "pause"
    RESUME = "resume"
    # Finish one renewal the bank wants the donor to authenticate (its donation is the token's subject).
    AUTHENTICATE = "authenticate"


@dataclass(frozen=True)
class LinkClaims:
    """What a verified token says."""

    pledge_id: str
    purpose: Purpose
    expires_at: int
    nonce: str
    subject: str = ""
    """What within the pledge the token is for: the renewal's donation id for AUTHENTICATE, else empty."""


class LinkKeyTooShort(RuntimeError):
    """A key in the parameter is shorter than SECRET_MIN_LENGTH: a deployment error, never guessed around."""


class PledgeLinks:
    """Makes and checks pledge tokens. ``keys`` returns the parameter's value (through the secrets cache);
    ``page_url`` is the manage page the links open (template parameter ManagePageUrl)."""

    def __init__(self, keys: Callable[[], str], page_url: str, *, clock: Callable[[], float] = time.time) -> None:
        self._keys = keys
        self._page_url = page_url
        self._clock = clock

    def manage_url(self, pledge_id: str) -> str:
        """The link a donor opens to manage the pledge; it works for MANAGE_LINK_SECONDS."""
        return f"{self._page_url}#token={self.token(pledge_id, Purpose.MANAGE, MANAGE_LINK_SECONDS)}"

    def authenticate_url(self, pledge_id: str, donation_id: str) -> str:
        """The link to the page that finishes one renewal on-session; it works for AUTHENTICATE_LINK_SECONDS."""
        token = self.token(pledge_id, Purpose.AUTHENTICATE, AUTHENTICATE_LINK_SECONDS, subject=donation_id)
        return f"{self._page_url}#token={token}"

    def token(self, pledge_id: str, purpose: Purpose, lifetime_seconds: int, *, subject: str = "") -> str:
        claims = {
            "p": pledge_id,
            "u": purpose.value,
            "x": int(self._clock()) + lifetime_seconds,
            "n": secrets.token_urlsafe(12),
            "s": subject,
        }
        payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        return f"{_VERSION}.{payload}.{_b64(self._mac(self._all_keys()[0], payload))}"

    def verify(self, token: str, purpose: Purpose, pledge_id: str) -> LinkClaims:
        """The token's claims if it is ours, unexpired, for ``purpose`` and for ``pledge_id``.

        Raises LinkRefused (forged, malformed, another purpose or pledge: one answer for all) or
        LinkExpired. Whether a one-time token was already used is the pledge's to say.
        """
        claims = self._signed_claims(token)
        if claims is None or claims.purpose is not purpose or not hmac.compare_digest(claims.pledge_id, pledge_id):
            raise LinkRefused("This link is not valid. Ask for a new link to manage your monthly gift.")
        if claims.expires_at <= self._clock():
            raise LinkExpired("This link has expired. Ask for a new link to manage your monthly gift.")
        return claims

    def _signed_claims(self, token: str) -> LinkClaims | None:
        parts = token.split(".") if len(token) <= _MAX_TOKEN_LENGTH else []
        if len(parts) != 3 or parts[0] != _VERSION:
            return None
        _, payload, signature = parts
        given = _unb64(signature)
        if given is None or not any(hmac.compare_digest(self._mac(key, payload), given) for key in self._all_keys()):
            return None
        raw = _unb64(payload)
        try:
            fields = json.loads(raw or b"")
            return LinkClaims(
                str(fields["p"]), Purpose(fields["u"]), int(fields["x"]), str(fields["n"]), str(fields.get("s", ""))
            )
        except (ValueError, KeyError, TypeError):
            return None  # signed by us, so never expected: refused all the same

    def _all_keys(self) -> list[bytes]:
        keys = [key.encode() for key in split(r"[\s,]+", self._keys().strip()) if key]
        if not keys or any(len(key) < SECRET_MIN_LENGTH for key in keys):
            raise LinkKeyTooShort(f"every pledge link key must be at least {SECRET_MIN_LENGTH} characters")
        return keys

    @staticmethod
    def _mac(key: bytes, payload: str) -> bytes:
        return hmac.new(key, _DOMAIN + payload.encode(), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
