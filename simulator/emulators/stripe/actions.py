"""Things that happen to a Stripe account outside the API: a donor finishing 3-D Secure, refunds
and disputes, webhook endpoint settings, time passing, and (emulator-only) cards issued to donors."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from simulator.emulators.stripe import charges, disputes, payment_methods
from simulator.emulators.stripe.cards import issued_card
from simulator.emulators.stripe.clock import Clock
from simulator.emulators.stripe.confirmation import authenticated, fail_authentication
from simulator.emulators.stripe.intent_objects import new_payment_intent, payment_method_config
from simulator.emulators.stripe.objects import copy_json, new_request_id
from simulator.emulators.stripe.setup_intents import fail_authentication as fail_setup
from simulator.emulators.stripe.setup_intents import set_up
from simulator.emulators.stripe.state import Ctx, History, StripeState
from simulator.emulators.stripe.webhook_settings import DELIVERED
from simulator.emulators.stripe.webhooks import WebhookDispatcher

Json = dict[str, Any]


class StripeActions:
    _lock: threading.RLock
    account: StripeState
    webhooks: WebhookDispatcher
    clock: Clock

    def _ctx(self) -> Ctx:
        return Ctx("", new_request_id(), None, None, self.clock.timestamp())

    def authenticate(self, pi_id: str, outcome: str) -> Json:
        """The donor finishing (``succeed``) or failing (``fail``) 3-D Secure for a requires_action intent: a
        PaymentIntent, or a SetupIntent (``seti_...``: the card saved, or not)."""
        with self._lock:
            setting_up = pi_id.startswith("seti_")
            found = (self.account.setup_intents if setting_up else self.account.payment_intents).get(pi_id)
            if found is None:
                raise KeyError(f"No such {'setup_intent' if setting_up else 'payment_intent'}: '{pi_id}'")
            if found["status"] != "requires_action":
                raise ValueError(f"{pi_id} has status {found['status']}, not requires_action")
            if outcome not in ("succeed", "fail"):
                raise ValueError("outcome must be 'succeed' or 'fail'")
            succeeded, failed = (set_up, fail_setup) if setting_up else (authenticated, fail_authentication)
            (succeeded if outcome == "succeed" else failed)(self.account, self._ctx(), found)
            return copy_json(found)

    def simulate_history(self, pi_id: str, *, per_day: int, since: float, until: float) -> int:
        """A busy account's history: ``per_day`` PaymentIntents a day created evenly from ``since`` to
        ``until`` (unix seconds), each like PaymentIntent ``pi_id`` but without metadata (another
        integration's payments). Held as that rule, not as objects: the list endpoint makes the ones a
        request reaches (intent_queries.HISTORY), so 300,000 a day costs neither memory nor seeding time.
        Returns how many it stands for."""
        with self._lock:
            template = copy_json(self.account.payment_intents[pi_id])
            self.account.history = History(template, 86_400 / per_day, int(since), int(until))
            return self.account.history.count

    def leave_unconfirmed_intent(self, amount: int, currency: str, donation_id: str, attempt: str) -> Json:
        """A PaymentIntent for a donation's charge attempt, created and never confirmed: what a request that
        Stripe answered with a stored 500 may leave behind (it could still be confirmed, until canceled)."""
        with self._lock:
            wire = {"metadata": {"donation_id": donation_id, "charge_attempt": attempt}}
            config = payment_method_config({"allowed_payment_method_types": ["card"]})
            return copy_json(new_payment_intent(self.account, self._ctx(), wire, amount, currency, None, config))

    def issue_cards(self, cards: Mapping[str, str]) -> int:
        """Emulator-only: make each card number in ``cards`` a test card that behaves as the published test
        card it maps to (a ``pm_card_*`` id), with its own fingerprint (cards.issued_card). A number is one
        card: issuing it again as another card is refused (ValueError), and nothing is issued."""
        issued = {number: issued_card(number, like) for number, like in cards.items()}
        with self._lock:
            for number, card in issued.items():
                known = self.account.issued_cards.get(number)
                if known is not None and known != card:
                    raise ValueError(f"card ...{number[-4:]} was issued already, as another card")
            self.account.issued_cards.update(issued)
            return len(self.account.issued_cards)

    def update_card_automatically(self, pm_id: str, exp_month: int, exp_year: int, number: str | None = None) -> Json:
        """The card network updates a saved card in place (the card account updater): new expiry, and a new
        number if given; emits ``payment_method.automatically_updated`` (payment_methods.update_automatically)."""
        with self._lock:
            return payment_methods.update_automatically(self.account, self._ctx(), pm_id, (exp_month, exp_year), number)

    def refund(self, charge_id: str, amount: int | None = None) -> Json:
        """Refund a succeeded charge from the Dashboard, in full unless ``amount``; emits ``refund.created``
        and ``charge.refunded`` and returns the Charge."""
        with self._lock:
            return charges.refund(self.account, self._ctx(), charge_id, amount)

    def dispute(self, charge_id: str, reason: str = "fraudulent", *, inquiry: bool = False) -> Json:
        """The cardholder disputes a succeeded charge (as fraudulent unless ``reason``); emits
        ``charge.dispute.created`` and, unless an inquiry, ``charge.dispute.funds_withdrawn``; returns the Dispute."""
        with self._lock:
            return disputes.dispute(self.account, self._ctx(), charge_id, reason, inquiry=inquiry)

    def close_dispute(self, dispute_id: str, status: str) -> Json:
        """The dispute ends ``won``, ``lost`` or (an inquiry) ``warning_closed``; emits its events and returns it."""
        with self._lock:
            return disputes.close_dispute(self.account, self._ctx(), dispute_id, status)

    # -- time --------------------------------------------------------------------------------
    def advance_clock(self, seconds: float) -> Json:
        """Move emulator time forward (idempotency keys expire after 24 h, ``created``, search lag)."""
        self.clock.advance(seconds)
        return self.clock_state()

    def clock_state(self) -> Json:
        return {"now": self.clock.now(), "offset": self.clock.offset}

    # -- webhooks ------------------------------------------------------------------------------
    def configure_webhooks(self, url: str | None, secret: str | None = None, **options: Any) -> None:
        """Point webhook delivery at ``url`` (None turns it off and drops queued deliveries); ``options``:
        enabled_events, retry_schedule, timeout (WebhookDispatcher.configure). Arguments left as None keep
        their current value. Only events created afterwards are sent."""
        self.webhooks.configure(url, secret, **options)

    def set_webhook_mode(self, **modes: Any) -> Json:
        """Test switches: ``paused``, ``duplicates``, ``duplicate_rate``, ``reorder``,
        ``reorder_window``, ``drop_next`` (see ``WebhookDispatcher.set_mode``)."""
        return self.webhooks.set_mode(**modes)

    def deliver_event(self, event_id: str) -> Json:
        """(Re)send one recorded event to the endpoint now, synchronously; returns the log entry."""
        with self._lock:
            event = self.account.events_by_id.get(event_id)
            if event is None:
                raise KeyError(f"No such event: '{event_id}'")
            event = copy_json(event)
        return self.webhooks.deliver_now(event)  # network I/O outside the emulator lock

    def _webhook_settled(self, event_id: str, status: str) -> None:
        if status != DELIVERED:
            return
        with self._lock:
            event = self.account.events_by_id.get(event_id)
            if event is not None:
                event["pending_webhooks"] = 0
