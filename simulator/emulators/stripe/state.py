"""Everything the emulated Stripe account holds, and the context of one API request."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from simulator.emulators.stripe.cards import CardProfile
from simulator.emulators.stripe.clock import Clock
from simulator.emulators.stripe.endpoint_deliveries import WebhookEndpoints
from simulator.emulators.stripe.webhooks import WebhookDispatcher

Json = dict[str, Any]


@dataclass(frozen=True)
class Ctx:
    """One API request: who asked, under which ids, at what emulator time."""

    api_key: str
    request_id: str
    idempotency_key: str | None
    api_version: str | None
    now: int


@dataclass(frozen=True)
class History:
    """PaymentIntents made by others at a steady rate (StripeActions.simulate_history): the ``n``-th was
    created at ``since + n * every`` seconds, up to ``until``, and looks like ``template``."""

    template: Json
    every: float
    since: int
    until: int

    @property
    def count(self) -> int:
        return int((self.until - self.since) / self.every) + 1

    def between(self, first: int, last: int) -> list[Json]:
        """Id and created time of those created from ``first`` to ``last`` (unix seconds, inclusive)."""
        low = max(0, math.ceil((max(first, self.since) - self.since) / self.every))
        high = min(self.count - 1, math.floor((min(last, self.until) - self.since) / self.every))
        return [
            {"id": f"pi_history{n:014d}", "created": int(self.since + n * self.every)} for n in range(low, high + 1)
        ]


@dataclass
class PmUsage:
    card: CardProfile
    used_by: set[str] = field(default_factory=set)
    consumed: bool = False  # used without customer and without setup_future_usage: single-use, spent
    set_up: bool = False  # a payment with setup_future_usage succeeded: saved for off-session use


@dataclass
class StripeState:
    """The account's objects. Callers hold the emulator's lock while reading or changing them."""

    clock: Clock
    webhooks: WebhookDispatcher
    require_return_url: bool = True
    search_lag_ms: float = 0.0
    payment_intents: dict[str, Json] = field(default_factory=dict)
    searchable_from: dict[str, float] = field(default_factory=dict)  # emulator time a PI becomes searchable
    payment_methods: dict[str, Json] = field(default_factory=dict)
    setup_intents: dict[str, Json] = field(default_factory=dict)
    pm_usage: dict[str, PmUsage] = field(default_factory=dict)
    issued_cards: dict[str, CardProfile] = field(default_factory=dict)
    """Card numbers the emulator issued beside Stripe's published ones (cards.issued_card), by number."""
    customers: dict[str, Json] = field(default_factory=dict)
    deleted_customers: dict[str, Json] = field(default_factory=dict)
    """What retrieving a deleted Customer answers (docs.stripe.com/api/customers/delete), by id."""
    charges: dict[str, Json] = field(default_factory=dict)
    attachments: list[Json] = field(default_factory=list)
    events: list[Json] = field(default_factory=list)
    events_by_id: dict[str, Json] = field(default_factory=dict)
    refunds: list[Json] = field(default_factory=list)
    disputes: list[Json] = field(default_factory=list)
    payment_intents_created: int = 0
    history: History | None = None
    endpoints: WebhookEndpoints = field(default_factory=WebhookEndpoints)
    """The WebhookEndpoints API's endpoints, each with its deliveries (besides ``webhooks``)."""

    def clear(self) -> None:
        """Forget every object, webhook endpoints created through the API included (the endpoint
        configured through the control API stays)."""
        for store in (
            self.payment_intents,
            self.searchable_from,
            self.payment_methods,
            self.setup_intents,
            self.pm_usage,
            self.issued_cards,
            self.customers,
            self.deleted_customers,
            self.charges,
            self.events_by_id,
        ):
            store.clear()
        for log in (self.attachments, self.events, self.refunds, self.disputes):
            log.clear()
        self.payment_intents_created = 0
        self.history = None
        self.endpoints.clear()
