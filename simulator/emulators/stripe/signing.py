"""How Stripe signs and encodes a webhook delivery.

``sign_payload`` builds a ``Stripe-Signature`` header value exactly as Stripe does
(docs.stripe.com/webhooks#verify-manually): ``t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
"<t>.<raw body>")>``, so the real SDK's ``stripe.Webhook.construct_event(payload, header, secret)``
accepts it. Tests that need a bad signature sign with another secret or timestamp themselves.
"""

from __future__ import annotations

import hmac
import json
import time
from hashlib import sha256
from typing import Any

DEFAULT_SECRET = "whsec_local_emulator"  # noqa: S105 (a well-known local test secret)
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
CONTENT_TYPE = "application/json; charset=utf-8"


def sign_payload(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header value for ``payload`` (the exact bytes sent) under ``secret``."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    digest = hmac.new(secret.encode("utf-8"), f"{t}.".encode() + payload, sha256).hexdigest()
    return f"t={t},v1={digest}"


def encode_event(event: dict[str, Any]) -> bytes:
    """The webhook body for an event; Stripe sends pretty-printed JSON."""
    return json.dumps(event, indent=2).encode("utf-8")
