"""The Stripe emulator's own routes under ``/_emulator/`` and ``StripeControl``, their client.

Besides the shared routes (faults, latency, seed, reset, state; see ``simulator.emulators.base``):
``POST webhooks`` / ``GET webhooks`` / ``POST webhooks/mode`` / ``GET webhooks/deliveries`` (long poll),
``GET clock`` / ``POST clock {"advance": seconds}``, ``GET idempotency`` (``?key=K&timeout=s`` long-polls
until a request with key K executes), and ``POST payment_intents/{id}/authenticate`` (and
``setup_intents/{id}/authenticate``), ``charges/{id}/refund`` (``{"amount": n}`` for a partial one),
``charges/{id}/dispute`` (``{"reason": r, "inquiry": true}`` optional),
``disputes/{id}/close`` (``{"status": "won" | "lost" | "warning_closed"}``), ``events/{id}/deliver``,
``payment_methods/{id}/update_card`` (``{"exp_month": m, "exp_year": y, "number": n}``, number optional: the card
network updates a saved card, ``payment_method.automatically_updated``). Emulator-only:
``POST cards {"cards": {number: "pm_card_..."}}`` issues card numbers beside Stripe's published test
cards (``StripeActions.issue_cards``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from simulator.emulators.control import EmulatorControl
from simulator.emulators.serving import Request, Response
from simulator.emulators.stripe.webhook_settings import MAX_WAIT_SECONDS

if TYPE_CHECKING:
    from simulator.emulators.stripe.server import StripeEmulator

Json = dict[str, Any]


class _NotFound(KeyError):
    """A control route named an object that does not exist (404, not 400)."""


def handle_control(emu: StripeEmulator, req: Request, sub: str) -> Response | None:
    try:
        return _route(emu, req, sub)
    except _NotFound as exc:
        return Response.json(404, {"error": str(exc.args[0])})


def _route(emu: StripeEmulator, req: Request, sub: str) -> Response | None:
    route = (req.method, sub)
    if route == ("POST", "webhooks"):
        body = _body(req)
        emu.configure_webhooks(
            body.get("url"),
            body.get("secret"),
            enabled_events=body.get("enabled_events"),
            retry_schedule=body.get("retry_schedule"),
            timeout=body.get("timeout"),
        )
        return Response.json(200, emu.webhooks.snapshot())
    if route == ("GET", "webhooks"):
        return Response.json(200, emu.webhooks.snapshot())
    if route == ("POST", "webhooks/mode"):
        return Response.json(200, emu.set_webhook_mode(**_body(req)))
    if route == ("GET", "webhooks/deliveries"):
        return _wait_deliveries(emu, req)
    if route == ("GET", "clock"):
        return Response.json(200, emu.clock_state())
    if route == ("POST", "clock"):
        return Response.json(200, emu.advance_clock(float(_body(req)["advance"])))
    if route == ("GET", "idempotency"):
        return _idempotency(emu, req)
    if route == ("POST", "cards"):
        return Response.json(200, {"issued": emu.issue_cards(dict(_body(req)["cards"]))})
    return _object_action(emu, req, sub)


def _object_action(emu: StripeEmulator, req: Request, sub: str) -> Response | None:
    match = re.fullmatch(r"(payment_intents|setup_intents|charges|disputes|events|payment_methods)/([^/]+)/(\w+)", sub)
    if match is None or req.method != "POST":
        return None
    kind, obj_id, action = match[1], unquote(match[2]), match[3]

    def authenticate() -> Json:
        return emu.authenticate(obj_id, str(_body(req).get("outcome", "")))

    actions: dict[tuple[str, str], Callable[[], Json]] = {
        ("payment_intents", "authenticate"): authenticate,
        ("setup_intents", "authenticate"): authenticate,
        ("charges", "refund"): lambda: emu.refund(obj_id, _body(req).get("amount")),
        ("charges", "dispute"): lambda: emu.dispute(
            obj_id, str(_body(req).get("reason") or "fraudulent"), inquiry=bool(_body(req).get("inquiry"))
        ),
        ("disputes", "close"): lambda: emu.close_dispute(obj_id, str(_body(req).get("status", ""))),
        ("events", "deliver"): lambda: emu.deliver_event(obj_id),
        ("payment_methods", "update_card"): lambda: _update_card(emu, obj_id, _body(req)),
    }
    action_fn = actions.get((kind, action))
    if action_fn is None:
        return None
    try:
        return Response.json(200, action_fn())
    except KeyError as exc:  # the object named in the path does not exist
        raise _NotFound(exc.args[0] if exc.args else "not found") from None


def _update_card(emu: StripeEmulator, pm_id: str, body: Json) -> Json:
    expiry = body.get("exp_month"), body.get("exp_year")
    number = body.get("number")
    if not all(isinstance(part, int) and not isinstance(part, bool) for part in expiry):
        raise ValueError("exp_month and exp_year must be integers")
    if number is not None and not isinstance(number, str):
        raise ValueError("number must be a string")
    return emu.update_card_automatically(pm_id, int(expiry[0] or 0), int(expiry[1] or 0), number)


def _wait_deliveries(emu: StripeEmulator, req: Request) -> Response:
    """Long poll: answers once ``min`` attempts are logged or after ``timeout`` seconds."""
    query = req.query_params()
    n = int(query.get("min", "0"))
    timeout = min(float(query.get("timeout", "0")), MAX_WAIT_SECONDS)
    delivered_only = query.get("delivered_only", "") in ("1", "true")
    try:
        log = emu.wait_for_deliveries(n, timeout, delivered_only=delivered_only)
    except TimeoutError:
        return Response.json(200, {"complete": False, "deliveries": emu.webhook_deliveries})
    return Response.json(200, {"complete": True, "deliveries": log})


def _idempotency(emu: StripeEmulator, req: Request) -> Response:
    query = req.query_params()
    key = query.get("key")
    found = None
    if key:
        timeout = min(float(query.get("timeout", "0")), MAX_WAIT_SECONDS)
        found = emu.idempotency.wait_in_flight(key, timeout)
    with emu._lock:
        snapshot = emu.idempotency.snapshot()
    return Response.json(200, {**snapshot, "executing": found})


def _body(req: Request) -> Json:
    try:
        body = req.json()
    except json.JSONDecodeError as exc:
        raise ValueError(f"body is not JSON: {exc}") from exc
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


class StripeControl(EmulatorControl):
    """EmulatorControl plus the Stripe-specific emulator routes and counters."""

    def authenticate(self, pi_id: str, outcome: str) -> Json:
        return dict(self.call("POST", f"payment_intents/{pi_id}/authenticate", {"outcome": outcome}))

    def intents_for(self, donation_id: str) -> list[Json]:
        intents = self.state()["payment_intents"]
        return [pi for pi in intents if pi["metadata"].get("donation_id") == donation_id]

    def charges_for(self, donation_id: str) -> int:
        return sum(1 for pi in self.intents_for(donation_id) if pi["status"] == "succeeded")

    def executions_for_key(self, idempotency_key: str) -> int:
        return int(self.state()["executions"].get(idempotency_key, 0))

    def issue_cards(self, cards: dict[str, str]) -> int:
        """Emulator-only card numbers, each behaving as a published test card (``StripeActions.issue_cards``);
        how many the emulator has issued."""
        return int(self.call("POST", "cards", {"cards": cards})["issued"])

    # -- time and idempotency ------------------------------------------------------------------
    def advance_clock(self, seconds: float) -> Json:
        """Move the emulator's time forward, e.g. past the 24 h an idempotency key lives."""
        return dict(self.call("POST", "clock", {"advance": seconds}))

    def clock(self) -> Json:
        return dict(self.call("GET", "clock"))

    def wait_for_in_flight(self, idempotency_key: str, timeout: float = 5.0) -> None:
        """Long-polls until a request with this key executes; TimeoutError otherwise."""
        waiter = EmulatorControl(self.base_url, timeout=timeout + self.timeout)
        answer = waiter.call("GET", f"idempotency?key={idempotency_key}&timeout={timeout}")
        if not answer["executing"]:
            raise TimeoutError(f"no request with idempotency key {idempotency_key!r} executing after {timeout}s")

    # -- webhooks, refunds, disputes -----------------------------------------------------------
    def configure_webhooks(self, url: str | None, secret: str | None = None, **options: Any) -> Json:
        """``options``: enabled_events, retry_schedule, timeout (see StripeEmulator.configure_webhooks)."""
        return dict(self.call("POST", "webhooks", {"url": url, "secret": secret, **options}))

    def set_webhook_mode(self, **modes: Any) -> Json:
        return dict(self.call("POST", "webhooks/mode", modes))

    def deliver_event(self, event_id: str) -> Json:
        return dict(self.call("POST", f"events/{event_id}/deliver", {}))

    def update_card(self, pm_id: str, exp_month: int, exp_year: int, number: str | None = None) -> Json:
        """The card network updates a saved card in place: Stripe sends ``payment_method.automatically_updated``."""
        body: Json = {"exp_month": exp_month, "exp_year": exp_year}
        if number is not None:
            body["number"] = number
        return dict(self.call("POST", f"payment_methods/{pm_id}/update_card", body))

    def refund(self, charge_id: str, amount: int | None = None) -> Json:
        return dict(self.call("POST", f"charges/{charge_id}/refund", {} if amount is None else {"amount": amount}))

    def dispute(self, charge_id: str, reason: str = "fraudulent", *, inquiry: bool = False) -> Json:
        return dict(self.call("POST", f"charges/{charge_id}/dispute", {"reason": reason, "inquiry": inquiry}))

    def close_dispute(self, dispute_id: str, status: str) -> Json:
        return dict(self.call("POST", f"disputes/{dispute_id}/close", {"status": status}))

    def webhook_deliveries(self) -> list[Json]:
        return list(self.state()["webhook_deliveries"])

    def wait_for_deliveries(self, n: int, timeout: float = 5.0, *, delivered_only: bool = False) -> list[Json]:
        """Long-polls the emulator (no client-side polling); TimeoutError when fewer than ``n`` arrive."""
        flag = "1" if delivered_only else "0"
        waiter = EmulatorControl(self.base_url, timeout=timeout + self.timeout)
        answer = waiter.call("GET", f"webhooks/deliveries?min={n}&timeout={timeout}&delivered_only={flag}")
        if not answer["complete"]:
            raise TimeoutError(f"fewer than {n} webhook deliveries after {timeout}s: {answer['deliveries']}")
        return list(answer["deliveries"])
