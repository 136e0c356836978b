"""What tests and tools can read from a running Stripe emulator (in process; ``StripeControl`` over HTTP)."""

from __future__ import annotations

import threading
from typing import Any

from simulator.emulators.stripe.idempotency import IdempotencyLayer
from simulator.emulators.stripe.objects import copy_json
from simulator.emulators.stripe.state import StripeState
from simulator.emulators.stripe.webhooks import WebhookDispatcher

Json = dict[str, Any]


class StripeInspection:
    """Read-only views of the emulated account; every result is a copy."""

    _lock: threading.RLock
    account: StripeState
    idempotency: IdempotencyLayer
    webhooks: WebhookDispatcher

    @property
    def payment_intents_created(self) -> int:
        with self._lock:
            return self.account.payment_intents_created

    @property
    def payment_intents(self) -> list[Json]:
        with self._lock:
            return [copy_json(pi) for pi in self.account.payment_intents.values()]

    def payment_intent(self, pi_id: str) -> Json:
        with self._lock:
            return copy_json(self.account.payment_intents[pi_id])

    def charge(self, charge_id: str) -> Json:
        with self._lock:
            return copy_json(self.account.charges[charge_id])

    def charges_for(self, donation_id: str) -> int:
        """PaymentIntents for this donation that reached ``succeeded`` (each counted once)."""
        return sum(1 for pi in self.intents_for(donation_id) if pi["status"] == "succeeded")

    def intents_for(self, donation_id: str) -> list[Json]:
        with self._lock:
            intents = self.account.payment_intents.values()
            return [copy_json(pi) for pi in intents if pi["metadata"].get("donation_id") == donation_id]

    def executions_for_key(self, idempotency_key: str) -> int:
        """How often the API really executed (not replayed) a request carrying this key."""
        with self._lock:
            return self.idempotency.executions(idempotency_key)

    @property
    def customers(self) -> list[Json]:
        with self._lock:
            return [copy_json(c) for c in self.account.customers.values()]

    def payment_method(self, pm_id: str) -> Json:
        with self._lock:
            return copy_json(self.account.payment_methods[pm_id])

    @property
    def attachments(self) -> list[Json]:
        with self._lock:
            return [dict(a) for a in self.account.attachments]

    def attach_count(self, payment_method_id: str) -> int:
        """Successful attachments of this PaymentMethod: attach calls (no-op repeats included)
        plus the automatic one after a setup_future_usage payment with a customer."""
        with self._lock:
            return sum(1 for a in self.account.attachments if a["payment_method"] == payment_method_id)

    @property
    def events(self) -> list[Json]:
        with self._lock:
            return [copy_json(e) for e in self.account.events]

    def events_since(self, index: int) -> list[Json]:
        """The events recorded after the first ``index`` (a reader that keeps its place copies only what is new)."""
        with self._lock:
            return [copy_json(e) for e in self.account.events[index:]]

    def event(self, event_id: str) -> Json:
        with self._lock:
            return copy_json(self.account.events_by_id[event_id])

    @property
    def refunds(self) -> list[Json]:
        with self._lock:
            return [copy_json(r) for r in self.account.refunds]

    @property
    def disputes(self) -> list[Json]:
        with self._lock:
            return [copy_json(d) for d in self.account.disputes]

    def refunds_for(self, payment_intent_id: str) -> list[Json]:
        """Refunds recorded against this PaymentIntent's charges."""
        with self._lock:
            return [copy_json(r) for r in self.account.refunds if r["payment_intent"] == payment_intent_id]

    def disputes_for(self, payment_intent_id: str) -> list[Json]:
        """Disputes recorded against this PaymentIntent's charges."""
        with self._lock:
            return [copy_json(d) for d in self.account.disputes if d["payment_intent"] == payment_intent_id]

    @property
    def webhook_deliveries(self) -> list[Json]:
        """Every delivery attempt: event_id, type, attempt, status (HTTP status, "error:<kind>" or
        "dropped"), delivered_at (unix time of the attempt), signed_at, duplicate, manual."""
        return self.webhooks.deliveries

    def wait_for_deliveries(self, n: int, timeout: float = 5.0, *, delivered_only: bool = False) -> list[Json]:
        """Block until ``n`` delivery attempts (2xx only with ``delivered_only``) are logged and return
        the log; TimeoutError otherwise."""
        return self.webhooks.wait_for(n, timeout, delivered_only=delivered_only)

    def wait_for_in_flight(self, idempotency_key: str, timeout: float = 5.0) -> None:
        """Block until a request with this key executes (e.g. held by "after" latency); TimeoutError otherwise."""
        if not self.idempotency.wait_in_flight(idempotency_key, timeout):
            raise TimeoutError(f"no request with idempotency key {idempotency_key!r} executing after {timeout}s")

    def inventory(self) -> Json:
        """Every object and log (call with the lock held): the Stripe part of ``state()``."""
        s = self.account
        return {
            "payment_intents": [copy_json(pi) for pi in s.payment_intents.values()],
            "payment_intents_created": s.payment_intents_created,
            "customers": [copy_json(c) for c in s.customers.values()],
            "payment_methods": [copy_json(pm) for pm in s.payment_methods.values()],
            "charges": [copy_json(ch) for ch in s.charges.values()],
            "refunds": [copy_json(r) for r in s.refunds],
            "disputes": [copy_json(d) for d in s.disputes],
            "attachments": [dict(a) for a in s.attachments],
            "executions": self.idempotency.executions_by_key(),
            "events": [copy_json(e) for e in s.events],
            "webhooks": self.webhooks.snapshot(),
            "webhook_deliveries": self.webhooks.deliveries,
        }
