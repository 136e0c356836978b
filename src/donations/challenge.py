"""Cloudflare Turnstile: the CAPTCHA asked for while under attack, verified server-side with siteverify.

Cloudflare's "Server-side validation" page (developers.cloudflare.com/turnstile/get-started/
server-side-validation/): ``POST https://challenges.cloudflare.com/turnstile/v0/siteverify`` with
``secret``, ``response`` (the widget's token, at most 2048 characters, valid 300 s, redeemable once),
optional ``remoteip`` and ``idempotency_key`` (a UUID: the same token verified again with the same key
answers the same, where a plain second verification fails with ``timeout-or-duplicate``). The answer
is JSON with ``success`` and ``error-codes``; ``internal-error`` may be retried. A success also carries
``hostname`` (the site the challenge was solved on) and ``action`` (the widget's, when it set one),
which the same page says to check: a sitekey is public, so a token solved on someone else's page, or
on another of our widgets, succeeds at siteverify and is refused here.

The secret comes from Parameter Store like the provider keys (donations.secrets). The local stack
and the tests point ``TURNSTILE_VERIFY_URL`` at simulator/emulators/turnstile_emulator.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from donations import deadline
from donations.errors import ServiceUnavailable
from donations.observability import logger
from donations.ports import ChallengeVerdict

SITEVERIFY_URL = "https://challenges.cloudflare.com/turnstile/v0/siteverify"
MAX_TOKEN_CHARACTERS = 2048
# The idempotency keys of one deployment's verifications: uuid5 of the donation id in this namespace.
_IDEMPOTENCY_NAMESPACE = uuid.UUID("5d0c7a53-3c1e-4d0b-9a8e-2f1d6c7b9e41")


def idempotency_key_for(donation_id: str) -> str:
    """A resubmission of the same donation verifies its token again under the same key, and passes."""
    return str(uuid.uuid5(_IDEMPOTENCY_NAMESPACE, donation_id))


@dataclass(frozen=True)
class ExpectedWidget:
    """Where our widget lives: the form's hostnames, and the action it is rendered with (empty: none)."""

    hostnames: frozenset[str]
    action: str = ""

    def mismatch(self, answer: dict[str, Any]) -> str | None:
        """Why a successful siteverify answer is not for our form (an error code of ours), or None."""
        if str(answer.get("hostname") or "").lower() not in self.hostnames:
            return "hostname-mismatch"
        if self.action and answer.get("action") != self.action:
            return "action-mismatch"
        return None


class TurnstileVerifier:
    """The ``Challenges`` port: one siteverify call per token, bounded by the invocation's time budget."""

    def __init__(
        self,
        secret: Callable[[], str],
        verify_url: str = "",
        timeout_seconds: float = 3.0,
        *,
        expected: ExpectedWidget,
    ) -> None:
        self._secret = secret  # read (through the provider keys' cache) when a token comes, so a rotation takes
        self._url = verify_url or SITEVERIFY_URL
        self._timeout = timeout_seconds
        self._expected = expected
        self._session = requests.Session()

    def close(self) -> None:
        """Close the session's connection pools (donations.snapstart: around a snapshot and its restores)."""
        self._session.close()

    def verify(self, token: str, remote_ip: str, idempotency_key: str) -> ChallengeVerdict:
        if not token or len(token) > MAX_TOKEN_CHARACTERS:
            # Not a token Turnstile could have issued: no need to ask (and a long one is not sent on).
            return ChallengeVerdict(False, ("invalid-input-response",))
        payload = {
            "secret": self._secret(),
            "response": token,
            "remoteip": remote_ip,
            "idempotency_key": idempotency_key,
        }
        for _attempt in range(2):  # internal-error "can be retried"; the idempotency key makes that safe
            status, answer = self._post(payload)
            codes = tuple(str(code) for code in answer.get("error-codes") or [])
            if answer.get("success") is True:
                mismatch = self._expected.mismatch(answer)
                if mismatch is not None:
                    logger.warning(
                        "Challenge solved for another page or widget",
                        extra={"hostname": answer.get("hostname"), "action": answer.get("action")},
                    )
                    return ChallengeVerdict(False, (mismatch,))
                return ChallengeVerdict(True)
            if "internal-error" in codes:
                continue
            if status >= 500:
                break
            return ChallengeVerdict(False, codes)
        # Fail closed, but not for good: the donor is told to retry (503), and nothing was charged.
        raise ServiceUnavailable(_UNAVAILABLE)

    def _post(self, payload: dict[str, str]) -> tuple[int, dict[str, Any]]:
        try:
            response = self._session.post(self._url, json=payload, timeout=deadline.attempt_timeout(self._timeout))
            answer = response.json()
        except (requests.RequestException, ValueError, deadline.OutOfTime) as error:
            # Cloudflare unreachable or answering something else than JSON: the donor may retry.
            raise ServiceUnavailable(_UNAVAILABLE) from error
        if not isinstance(answer, dict):
            raise ServiceUnavailable(_UNAVAILABLE)
        return response.status_code, answer


_UNAVAILABLE = "We could not check the security challenge; please try again shortly."
