"""Stripe's idempotency layer (API v1), as documented.

docs.stripe.com/api/idempotent_requests and docs.stripe.com/error-low-level#idempotency:
- the status and body of the first request with a key are saved once endpoint execution began,
  whatever the outcome, 500s included, and replayed to every later request with that key;
- nothing is saved when the parameters fail validation or another request with the same key is
  executing (that one gets 409 ``idempotency_key_in_use``): such requests can be retried;
- the same key with other parameters or another endpoint is an ``idempotency_error``;
- keys can be pruned once they are at least 24 hours old; a reused pruned key is a new request.

Keys are scoped per API key (per account). GET requests ignore keys.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]
Scope = tuple[str, str]  # (API key, idempotency key)

KEY_LIFETIME_SECONDS = 24 * 60 * 60


@dataclass(frozen=True)
class Saved:
    """A saved result: what a replay answers."""

    method: str
    path: str
    params: Json
    status: int
    body: Json
    headers: dict[str, str]  # extra headers the answer carried, replayed as well
    request_id: str
    saved_at: float


@dataclass(frozen=True)
class Claim:
    """A request executing under a key; finish it with ``IdempotencyLayer.finish``."""

    scope: Scope
    generation: int


@dataclass
class IdempotencyLayer:
    """Saved results and in-flight keys. Not locked itself: the emulator serialises API state changes,
    except ``wait_in_flight`` which has its own condition variable."""

    _saved: dict[Scope, Saved] = field(default_factory=dict)
    _in_flight: set[Scope] = field(default_factory=set)
    _executions: Counter[str] = field(default_factory=Counter)
    _generation: int = 0
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def lookup(self, scope: Scope, now: float) -> Saved | None:
        """The saved result for this key, unless it is older than a key lives (then it is pruned)."""
        saved = self._saved.get(scope)
        if saved is not None and now - saved.saved_at >= KEY_LIFETIME_SECONDS:
            del self._saved[scope]
            return None
        return saved

    def in_flight(self, scope: Scope) -> bool:
        return scope in self._in_flight

    def claim(self, scope: Scope) -> Claim:
        with self._changed:
            self._in_flight.add(scope)
            self._changed.notify_all()
        return Claim(scope, self._generation)

    def finish(self, claim: Claim, saved: Saved | None, *, executed: bool) -> None:
        """Release the key; save ``saved`` under it (None: nothing to save, e.g. a validation error).
        ``executed``: the endpoint really acted (counted per key)."""
        with self._changed:
            self._in_flight.discard(claim.scope)
            if claim.generation == self._generation:  # a reset meanwhile forgot this key
                if saved is not None:
                    self._saved[claim.scope] = saved
                if executed:
                    self._executions[claim.scope[1]] += 1
            self._changed.notify_all()

    def executions(self, key: str) -> int:
        """How often the API really executed (not replayed) a request carrying this key."""
        return self._executions[key]

    def executions_by_key(self) -> dict[str, int]:
        return dict(self._executions)

    def keys_in_flight(self) -> list[str]:
        with self._changed:
            return sorted(key for _, key in self._in_flight)

    def wait_in_flight(self, key: str, timeout: float) -> bool:
        """Block until a request with ``key`` is executing (True) or ``timeout`` seconds passed."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(k == key for _, k in self._in_flight):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def reset(self) -> None:
        with self._changed:
            self._saved.clear()
            self._in_flight.clear()
            self._executions.clear()
            self._generation += 1
            self._changed.notify_all()

    def snapshot(self) -> Json:
        return {"saved": len(self._saved), "in_flight": self.keys_in_flight()}
