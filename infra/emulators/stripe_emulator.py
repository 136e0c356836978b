"""Local Stripe API emulator: PaymentIntents, Customers, PaymentMethods, idempotency, faults, webhooks.

Speaks Stripe's v1 wire protocol (form-encoded requests, JSON responses, Stripe's
error envelope) closely enough for the real ``stripe`` SDK to run against it:

    emu = StripeEmulator(webhook_url="http://127.0.0.1:8000/webhook").start()
    client = stripe.StripeClient("sk_test_x", base_addresses={"api": emu.url})

Every event (``emu.events``) is also POSTed, signed like Stripe signs, to the configured webhook
endpoint by a background thread (see ``stripe_webhooks``).

Run standalone with ``python -m infra.emulators.stripe_emulator --port 12111``.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import secrets
import string
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self
from urllib.parse import unquote

from infra.emulators.base import EmulatorControl, EmulatorServer, Request, Response, run_cli
from infra.emulators.faults import Fault
from infra.emulators.stripe_cards import AUTHENTICATION_REQUIRED, MAGIC_CARDS, CardProfile, doc_url
from infra.emulators.stripe_params import (
    FormError,
    SearchQueryError,
    clause_matches,
    parse_form,
    parse_search,
)
from infra.emulators.stripe_webhooks import (
    DEFAULT_RETRY_SCHEDULE,
    DEFAULT_SECRET,
    DEFAULT_TIMEOUT,
    DELIVERED,
    MAX_WAIT_SECONDS,
    WebhookDispatcher,
)

Json = dict[str, Any]

# Events carry the API version they were rendered with: the request's Stripe-Version, else this one
# (the version stripe-python 16.1.0 pins), standing in for the account's default version.
DEFAULT_API_VERSION = "2026-10-28.endive"
DISPUTE_EVIDENCE_DAYS = 7

_ALNUM = string.ascii_letters + string.digits
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
SUPPORTED_CURRENCIES = frozenset(
    {
        "usd", "eur", "gbp", "cad", "aud", "nzd", "chf", "sek", "nok", "dkk", "pln", "czk",
        "huf", "jpy", "sgd", "hkd", "mxn", "brl", "inr", "ils", "zar", "aed", "ron", "bgn",
    }
)  # fmt: skip
_ZERO_DECIMAL = frozenset({"jpy", "huf"})
# Stripe's minimum charge amounts (smallest currency unit) for the currencies a donation site uses most.
_MIN_AMOUNT = {"usd": 50, "eur": 50, "gbp": 30, "cad": 50, "aud": 50, "nzd": 50, "chf": 50, "jpy": 50}
_MAX_AMOUNT = 99_999_999
_CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation", "requires_action")
_CONFIRMABLE = ("requires_payment_method", "requires_confirmation")
_CANCELLATION_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer", "abandoned"})
_PI_SEARCH_FIELDS = frozenset({"amount", "currency", "customer", "status", "created"})

_PI_CONFIRM_PARAMS = frozenset(
    {
        "payment_method", "off_session", "return_url", "setup_future_usage", "receipt_email", "expand",
        "use_stripe_sdk", "error_on_requires_action", "payment_method_options", "mandate_data",
    }
)  # fmt: skip
_PI_CREATE_PARAMS = _PI_CONFIRM_PARAMS | {
    "amount", "currency", "confirm", "metadata", "customer", "description", "automatic_payment_methods",
    "payment_method_types", "statement_descriptor", "statement_descriptor_suffix", "shipping",
}  # fmt: skip
_CUSTOMER_PARAMS = frozenset({"email", "name", "description", "metadata", "phone", "expand"})

REUSED_PM_MESSAGE = (
    "The provided PaymentMethod was previously used with a PaymentIntent without Customer attachment, "
    "shared with a connected account without Customer attachment, or was detached from a Customer. "
    "It may not be used again. To use a PaymentMethod multiple times, you must attach it to a Customer first."
)
UNATTACHABLE_PM_MESSAGE = (
    "This PaymentMethod was previously used without being attached to a Customer or was detached "
    "from a Customer, and may not be used again."
)
RETURN_URL_MESSAGE = (
    "A `return_url` must be specified because this Payment Intent is configured to automatically accept "
    "the payment methods enabled in the Dashboard, some of which may require a full page redirect to "
    "succeed. If you do not want to accept redirect-based payment methods, set "
    "`automatic_payment_methods[enabled]` to `true` and `automatic_payment_methods[allow_redirects]` "
    "to `never` when creating Setup Intents and Payment Intents."
)
AUTH_FAILURE_MESSAGE = (
    "The provided PaymentMethod has failed authentication. You can provide payment_method_data or a new "
    "PaymentMethod to attempt to fulfill this PaymentIntent again."
)


def _rand(n: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def _new_id(prefix: str) -> str:
    return f"{prefix}_{_rand(24)}"


class StripeApiError(Exception):
    """A Stripe error response. ``executed`` marks errors raised after the endpoint acted
    (card declines): Stripe stores those under the idempotency key, validation errors it does not."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        extra: Json | None = None,
        executed: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error: Json = {"type": type_, "message": message}
        optional = {"code": code, "param": param, "decline_code": decline_code}
        self.error.update({k: v for k, v in optional.items() if v is not None})
        if code is not None:
            self.error["doc_url"] = doc_url(code)
        self.error.update(extra or {})
        self.executed = executed

    def body(self) -> Json:
        return {"error": self.error}


def _invalid(message: str, *, param: str | None = None, code: str | None = None, status: int = 400) -> StripeApiError:
    return StripeApiError(status, "invalid_request_error", message, code=code, param=param)


def _missing(param: str) -> StripeApiError:
    return _invalid(f"Missing required param: {param}.", param=param, code="parameter_missing")


def _no_such(kind: str, obj_id: str, param: str, status: int = 404) -> StripeApiError:
    return _invalid(f"No such {kind}: '{obj_id}'", param=param, code="resource_missing", status=status)


# -- parameter coercion ------------------------------------------------------------
def _reject_unknown(params: Json, allowed: frozenset[str]) -> None:
    for name in params:
        if name not in allowed:
            raise _invalid(f"Received unknown parameter: {name}", param=name, code="parameter_unknown")


def _str_param(params: Json, name: str) -> str | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise _invalid(f"Invalid string: {raw!r}", param=name, code="parameter_invalid_string")
    return raw


def _int_param(params: Json, name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not isinstance(raw, str) or not re.fullmatch(r"-?\d+", raw):
        raise _invalid(f"Invalid integer: {raw}", param=name, code="parameter_invalid_integer")
    return int(raw)


def _bool_param(params: Json, name: str) -> bool:
    raw = params.get(name)
    if raw is None:
        return False
    if raw not in ("true", "false"):
        raise _invalid(f"Invalid boolean: {raw}", param=name, code="parameter_invalid_boolean")
    return bool(raw == "true")


def _expand_param(params: Json) -> list[str]:
    raw = params.get("expand", [])
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise _invalid("Invalid array", param="expand", code="parameter_invalid_array")
    return list(raw)


def _metadata_param(params: Json) -> Json:
    raw = params.get("metadata", {})
    if raw == "":  # metadata="" clears all keys
        return {}
    if not isinstance(raw, dict):
        raise _invalid("Invalid object", param="metadata", code="parameter_invalid_object")
    if len(raw) > 50:
        raise _invalid("You can specify up to 50 keys in metadata.", param="metadata")
    for key, value in raw.items():
        if len(key) > 40 or not isinstance(value, str) or len(value) > 500:
            raise _invalid(
                f"Invalid metadata[{key}]: keys must be at most 40 characters and values strings of at "
                "most 500 characters.",
                param=f"metadata[{key}]",
            )
    return {k: v for k, v in raw.items() if v != ""}


def _amount_param(params: Json, currency: str) -> int:
    amount = _int_param(params, "amount")
    if amount is None:
        raise _missing("amount")
    if amount < 1:
        raise _invalid(
            "This value must be greater than or equal to 1.", param="amount", code="parameter_invalid_integer"
        )
    if amount > _MAX_AMOUNT:
        raise _invalid(f"Amount must be no more than {_MAX_AMOUNT}", param="amount", code="amount_too_large")
    minimum = _MIN_AMOUNT.get(currency)
    if minimum is not None and amount < minimum:
        shown = str(minimum) if currency in _ZERO_DECIMAL else f"{minimum / 100:.2f}"
        raise _invalid(f"Amount must be at least {shown} {currency}", param="amount", code="amount_too_small")
    return amount


def _currency_param(params: Json) -> str:
    raw = _str_param(params, "currency")
    if raw is None:
        raise _missing("currency")
    currency = raw.lower()
    if currency not in SUPPORTED_CURRENCIES:
        supported = ", ".join(sorted(SUPPORTED_CURRENCIES))
        raise _invalid(
            f"Invalid currency: {currency}. Stripe currently supports these currencies: {supported}",
            param="currency",
        )
    return currency


def _email_param(params: Json, name: str) -> str | None:
    email = _str_param(params, name)
    if email is not None and not _EMAIL_RE.fullmatch(email):
        raise _invalid(f"Invalid email address: {email}", param=name, code="email_invalid")
    return email


def _sfu_param(params: Json) -> str | None:
    sfu = _str_param(params, "setup_future_usage")
    if sfu not in (None, "on_session", "off_session"):
        raise _invalid(
            f"Invalid setup_future_usage: must be one of on_session or off_session (got {sfu})",
            param="setup_future_usage",
        )
    return sfu


def _automatic_pm_param(params: Json) -> Json | None:
    """Default is on (current API versions) unless payment_method_types is given."""
    apm = params.get("automatic_payment_methods")
    types = params.get("payment_method_types")
    if apm is not None and types is not None:
        raise _invalid(
            "You may only specify one of these parameters: automatic_payment_methods, payment_method_types.",
            param="automatic_payment_methods",
        )
    if types is not None:
        return None
    if apm is None:
        return {"allow_redirects": "always", "enabled": True}
    if not isinstance(apm, dict):
        raise _invalid("Invalid object", param="automatic_payment_methods", code="parameter_invalid_object")
    enabled = _bool_param(apm, "enabled")
    redirects = apm.get("allow_redirects", "always")
    if redirects not in ("always", "never"):
        raise _invalid("Invalid allow_redirects", param="automatic_payment_methods[allow_redirects]")
    return {"allow_redirects": redirects, "enabled": enabled} if enabled else None


def _pm_types_param(params: Json) -> list[str]:
    raw = params.get("payment_method_types", ["card"])
    if not isinstance(raw, list) or not raw or not all(isinstance(x, str) for x in raw):
        raise _invalid("Invalid array", param="payment_method_types", code="parameter_invalid_array")
    return list(raw)


# -- internal state ----------------------------------------------------------------
@dataclass
class _Ctx:
    api_key: str
    request_id: str
    idempotency_key: str | None
    api_version: str | None


@dataclass
class _PmState:
    card: CardProfile
    used_by: set[str] = field(default_factory=set)
    consumed: bool = False  # used without customer and without setup_future_usage: single-use, spent


@dataclass
class _IdemRecord:
    method: str
    path: str
    params: Json
    status: int
    body: Json
    request_id: str


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    name: str
    handler: str


def _route(method: str, template: str, handler: str) -> _Route:
    regex = "^" + re.escape(template).replace(re.escape("{id}"), r"(?P<id>[^/]+)") + "$"
    return _Route(method, re.compile(regex), f"{method} {template}", handler)


_ROUTES: tuple[_Route, ...] = (
    _route("POST", "/v1/payment_intents", "_create_pi"),
    _route("GET", "/v1/payment_intents/search", "_search_pi"),
    _route("GET", "/v1/payment_intents/{id}", "_get_pi"),
    _route("POST", "/v1/payment_intents/{id}/confirm", "_confirm_pi"),
    _route("POST", "/v1/payment_intents/{id}/cancel", "_cancel_pi"),
    _route("POST", "/v1/customers", "_create_customer"),
    _route("GET", "/v1/customers/{id}", "_get_customer"),
    _route("POST", "/v1/payment_methods/{id}/attach", "_attach_pm"),
    _route("GET", "/v1/payment_methods/{id}", "_get_pm"),
    _route("GET", "/v1/charges/{id}", "_get_charge"),
)

Handler = Callable[[_Ctx, Json, str | None], Json]


class StripeEmulator(EmulatorServer):
    """Stripe v1 subset for the donation pipeline; see the module docstring."""

    name: ClassVar[str] = "stripe-emulator"

    def __init__(
        self,
        port: int = 0,
        *,
        api_keys: set[str] | None = None,
        require_return_url: bool = True,
        search_lag_ms: float = 0,
        webhook_url: str | None = None,
        webhook_secret: str = DEFAULT_SECRET,
        webhook_retry_schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE,
        webhook_timeout: float = DEFAULT_TIMEOUT,
        webhook_events: Sequence[str] = ("*",),
    ) -> None:
        """``api_keys``: accepted secret keys (None: any ``sk_test_`` key).
        ``require_return_url``: reject confirm without return_url while automatic payment methods
        allow redirects, as Stripe does. ``search_lag_ms``: new PaymentIntents stay invisible to
        search this long, like Stripe's eventually consistent search index.
        ``webhook_url``: endpoint every new event is POSTed to, signed with ``webhook_secret``;
        failed attempts are retried after each delay of ``webhook_retry_schedule`` (seconds), then
        given up. ``webhook_timeout`` bounds one attempt. ``webhook_events``: event types the
        endpoint is subscribed to (``*``: all), like a Stripe endpoint's enabled_events."""
        super().__init__(port)
        self.api_keys = api_keys
        self.require_return_url = require_return_url
        self.search_lag_ms = search_lag_ms
        self.webhooks = WebhookDispatcher(
            url=webhook_url,
            secret=webhook_secret,
            retry_schedule=webhook_retry_schedule,
            timeout=webhook_timeout,
            enabled_events=webhook_events,
            on_settled=self._webhook_settled,
            name=f"{self.name}-webhooks",
        )
        self._reset_state()

    def _reset_state(self) -> None:
        with self._lock:
            self._pis: dict[str, Json] = {}
            self._pi_born: dict[str, float] = {}  # monotonic creation time, for search lag
            self._pms: dict[str, Json] = {}
            self._pm_state: dict[str, _PmState] = {}
            self._customers: dict[str, Json] = {}
            self._charges: dict[str, Json] = {}
            self._attachments: list[Json] = []
            self._events: list[Json] = []
            self._events_by_id: dict[str, Json] = {}
            self._refunds: list[Json] = []
            self._disputes: list[Json] = []
            self._idem: dict[tuple[str, str], _IdemRecord] = {}
            self._executions: Counter[str] = Counter()
            self._pi_created = 0
            self.webhooks.reset()

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> Self:
        super().start()
        self.webhooks.start()
        return self

    def stop(self) -> None:
        self.webhooks.stop()  # first, so no delivery outlives the emulator
        super().stop()

    def seed(self, n: int) -> None:
        super().seed(n)
        self.webhooks.seed(n)

    # -- public Python API -------------------------------------------------------------
    @property
    def payment_intents_created(self) -> int:
        with self._lock:
            return self._pi_created

    @property
    def payment_intents(self) -> list[Json]:
        with self._lock:
            return [_copy(pi) for pi in self._pis.values()]

    def payment_intent(self, pi_id: str) -> Json:
        with self._lock:
            return _copy(self._pis[pi_id])

    def charges_for(self, donation_id: str) -> int:
        """PaymentIntents for this donation that reached ``succeeded`` (each counted once)."""
        return sum(1 for pi in self.intents_for(donation_id) if pi["status"] == "succeeded")

    def intents_for(self, donation_id: str) -> list[Json]:
        with self._lock:
            return [_copy(pi) for pi in self._pis.values() if pi["metadata"].get("donation_id") == donation_id]

    def executions_for_key(self, idempotency_key: str) -> int:
        """How often the API really executed (not replayed) a request carrying this key."""
        with self._lock:
            return self._executions[idempotency_key]

    @property
    def customers(self) -> list[Json]:
        with self._lock:
            return [_copy(c) for c in self._customers.values()]

    def payment_method(self, pm_id: str) -> Json:
        with self._lock:
            return _copy(self._pms[pm_id])

    @property
    def attachments(self) -> list[Json]:
        with self._lock:
            return [dict(a) for a in self._attachments]

    def attach_count(self, payment_method_id: str) -> int:
        """Successful attachments of this PaymentMethod: attach calls (no-op repeats included)
        plus the automatic one after a setup_future_usage payment with a customer."""
        with self._lock:
            return sum(1 for a in self._attachments if a["payment_method"] == payment_method_id)

    @property
    def events(self) -> list[Json]:
        with self._lock:
            return [_copy(e) for e in self._events]

    def authenticate(self, pi_id: str, outcome: str) -> Json:
        """The donor finishing (``succeed``) or failing (``fail``) 3-D Secure for a requires_action intent."""
        with self._lock:
            pi = self._pis.get(pi_id)
            if pi is None:
                raise KeyError(f"No such payment_intent: '{pi_id}'")
            if pi["status"] != "requires_action":
                raise ValueError(f"PaymentIntent {pi_id} has status {pi['status']}, not requires_action")
            ctx = _Ctx("", _new_request_id(), None, None)
            if outcome == "succeed":
                self._succeed(ctx, pi)
            elif outcome == "fail":
                self._fail_authentication(ctx, pi)
            else:
                raise ValueError("outcome must be 'succeed' or 'fail'")
            return _copy(pi)

    def event(self, event_id: str) -> Json:
        with self._lock:
            return _copy(self._events_by_id[event_id])

    # -- refunds and disputes (emulator-only triggers) -------------------------------------
    def refund(self, charge_id: str) -> Json:
        """Refund a succeeded charge in full; emits ``charge.refunded`` and returns the Charge."""
        with self._lock:
            charge = self._charge_for_adjustment(charge_id)
            if charge["refunded"]:
                raise ValueError(f"Charge {charge_id} has already been refunded.")
            if charge["disputed"]:
                raise ValueError(f"Charge {charge_id} has been charged back; cannot issue a refund.")
            refund: Json = {
                "id": _new_id("re"),
                "object": "refund",
                "amount": charge["amount"] - charge["amount_refunded"],
                "charge": charge_id,
                "created": int(time.time()),
                "currency": charge["currency"],
                "metadata": {},
                "payment_intent": charge["payment_intent"],
                "reason": None,
                "status": "succeeded",
            }
            self._refunds.append(refund)
            charge.update(amount_refunded=charge["amount"], refunded=True)
            ctx = _Ctx("", _new_request_id(), None, None)
            self._emit(ctx, "charge.refunded", charge)
            return _copy(charge)

    def dispute(self, charge_id: str) -> Json:
        """The cardholder disputes a succeeded charge as fraudulent; emits ``charge.dispute.created``
        and returns the Dispute."""
        with self._lock:
            charge = self._charge_for_adjustment(charge_id)
            if charge["disputed"]:
                raise ValueError(f"Charge {charge_id} is already disputed.")
            if charge["refunded"]:
                raise ValueError(f"Charge {charge_id} has been refunded.")
            now = int(time.time())
            dispute: Json = {
                "id": _new_id("dp"),
                "object": "dispute",
                "amount": charge["amount"],
                "balance_transactions": [],
                "charge": charge_id,
                "created": now,
                "currency": charge["currency"],
                "evidence_details": {
                    "due_by": now + DISPUTE_EVIDENCE_DAYS * 86_400,
                    "has_evidence": False,
                    "past_due": False,
                    "submission_count": 0,
                },
                "is_charge_refundable": False,
                "livemode": False,
                "metadata": {},
                "payment_intent": charge["payment_intent"],
                "reason": "fraudulent",
                "status": "needs_response",
            }
            self._disputes.append(dispute)
            charge["disputed"] = True
            self._emit(_Ctx("", "", None, None), "charge.dispute.created", dispute, automatic=True)
            return _copy(dispute)

    @property
    def refunds(self) -> list[Json]:
        with self._lock:
            return [_copy(r) for r in self._refunds]

    @property
    def disputes(self) -> list[Json]:
        with self._lock:
            return [_copy(d) for d in self._disputes]

    def refunds_for(self, payment_intent_id: str) -> list[Json]:
        """Refunds recorded against this PaymentIntent's charges."""
        with self._lock:
            return [_copy(r) for r in self._refunds if r["payment_intent"] == payment_intent_id]

    def disputes_for(self, payment_intent_id: str) -> list[Json]:
        """Disputes recorded against this PaymentIntent's charges."""
        with self._lock:
            return [_copy(d) for d in self._disputes if d["payment_intent"] == payment_intent_id]

    def _charge_for_adjustment(self, charge_id: str) -> Json:
        charge = self._charges.get(charge_id)
        if charge is None:
            raise KeyError(f"No such charge: '{charge_id}'")
        if charge["status"] != "succeeded":
            raise ValueError(f"Charge {charge_id} has status {charge['status']}, not succeeded")
        return charge

    # -- webhooks --------------------------------------------------------------------------
    def configure_webhooks(
        self,
        url: str | None,
        secret: str | None = None,
        *,
        enabled_events: Sequence[str] | None = None,
        retry_schedule: Sequence[float] | None = None,
        timeout: float | None = None,
    ) -> None:
        """Point webhook delivery at ``url`` (None turns it off and drops queued deliveries).
        Arguments left as None keep their current value. Only events created afterwards are sent."""
        self.webhooks.configure(
            url, secret, enabled_events=enabled_events, retry_schedule=retry_schedule, timeout=timeout
        )

    def set_webhook_mode(self, **modes: Any) -> Json:
        """Test switches: ``paused``, ``duplicates``, ``duplicate_rate``, ``reorder``,
        ``reorder_window``, ``drop_next`` (see ``WebhookDispatcher.set_mode``)."""
        return self.webhooks.set_mode(**modes)

    def deliver_event(self, event_id: str) -> Json:
        """(Re)send one recorded event to the endpoint now, synchronously; returns the log entry."""
        with self._lock:
            event = self._events_by_id.get(event_id)
            if event is None:
                raise KeyError(f"No such event: '{event_id}'")
            event = _copy(event)
        return self.webhooks.deliver_now(event)  # network I/O outside the emulator lock

    @property
    def webhook_deliveries(self) -> list[Json]:
        """Every delivery attempt: event_id, type, attempt, status (HTTP status, "error:<kind>" or
        "dropped"), delivered_at (unix time of the attempt), signed_at, duplicate, manual."""
        return self.webhooks.deliveries

    def wait_for_deliveries(self, n: int, timeout: float = 5.0, *, delivered_only: bool = False) -> list[Json]:
        """Block until ``n`` delivery attempts (2xx only with ``delivered_only``) are logged and return
        the log; TimeoutError otherwise."""
        return self.webhooks.wait_for(n, timeout, delivered_only=delivered_only)

    def _webhook_settled(self, event_id: str, status: str) -> None:
        if status != DELIVERED:
            return
        with self._lock:
            event = self._events_by_id.get(event_id)
            if event is not None:
                event["pending_webhooks"] = 0

    def snapshot(self) -> Json:
        with self._lock:
            return {
                "payment_intents": [_copy(pi) for pi in self._pis.values()],
                "payment_intents_created": self._pi_created,
                "customers": [_copy(c) for c in self._customers.values()],
                "payment_methods": [_copy(pm) for pm in self._pms.values()],
                "charges": [_copy(ch) for ch in self._charges.values()],
                "refunds": [_copy(r) for r in self._refunds],
                "disputes": [_copy(d) for d in self._disputes],
                "attachments": [dict(a) for a in self._attachments],
                "executions": dict(self._executions),
                "events": [_copy(e) for e in self._events],
                "webhooks": self.webhooks.snapshot(),
                "webhook_deliveries": self.webhooks.deliveries,
            }

    # -- HTTP entry points ---------------------------------------------------------------
    def route_name(self, req: Request) -> str:
        route, _ = _match(req)
        return route.name if route else f"{req.method} {req.path}"

    def handle_control(self, req: Request, sub: str) -> Response | None:
        try:
            return self._stripe_control(req, sub)
        except KeyError as exc:  # unknown object; a missing body field is a 400 in the base class
            if isinstance(exc, _NotFound):
                return Response.json(404, {"error": str(exc.args[0])})
            raise

    def _stripe_control(self, req: Request, sub: str) -> Response | None:
        route = (req.method, sub)
        if route == ("POST", "webhooks"):
            body = _control_body(req)
            self.configure_webhooks(
                body.get("url"),
                body.get("secret"),
                enabled_events=body.get("enabled_events"),
                retry_schedule=body.get("retry_schedule"),
                timeout=body.get("timeout"),
            )
            return Response.json(200, self.webhooks.snapshot())
        if route == ("GET", "webhooks"):
            return Response.json(200, self.webhooks.snapshot())
        if route == ("POST", "webhooks/mode"):
            return Response.json(200, self.set_webhook_mode(**_control_body(req)))
        if route == ("GET", "webhooks/deliveries"):
            return self._wait_deliveries_route(req)
        match = re.fullmatch(r"(payment_intents|charges|events)/([^/]+)/(\w+)", sub)
        if match is None or req.method != "POST":
            return None
        kind, obj_id, action = match[1], unquote(match[2]), match[3]
        if (kind, action) == ("payment_intents", "authenticate"):
            outcome = str(_control_body(req).get("outcome", ""))
            return Response.json(200, _not_found_as_404(lambda: self.authenticate(obj_id, outcome)))
        if (kind, action) == ("charges", "refund"):
            return Response.json(200, _not_found_as_404(lambda: self.refund(obj_id)))
        if (kind, action) == ("charges", "dispute"):
            return Response.json(200, _not_found_as_404(lambda: self.dispute(obj_id)))
        if (kind, action) == ("events", "deliver"):
            return Response.json(200, _not_found_as_404(lambda: self.deliver_event(obj_id)))
        return None

    def _wait_deliveries_route(self, req: Request) -> Response:
        """Long poll: answers once ``min`` attempts are logged or after ``timeout`` seconds."""
        query = req.query_params()
        n = int(query.get("min", "0"))
        timeout = min(float(query.get("timeout", "0")), MAX_WAIT_SECONDS)
        delivered_only = query.get("delivered_only", "") in ("1", "true")
        try:
            log = self.wait_for_deliveries(n, timeout, delivered_only=delivered_only)
        except TimeoutError:
            return Response.json(200, {"complete": False, "deliveries": self.webhook_deliveries})
        return Response.json(200, {"complete": True, "deliveries": log})

    def fault_response(self, fault: Fault, req: Request) -> Response:
        headers = {"Request-Id": _new_request_id()}
        if fault.kind == "rate_limit":
            err = _invalid(
                "Too many requests hit the API too quickly. We recommend an exponential backoff of your requests.",
                code="rate_limit",
                status=429,
            )
        elif fault.kind == "lock_timeout":
            err = _invalid(
                "This object cannot be accessed right now because another API request or Stripe process is "
                "currently accessing it. If you see this error intermittently, retry the request. If you see "
                "this error frequently and are making multiple concurrent requests to a single object, make "
                "your requests serially or at a lower rate.",
                code="lock_timeout",
                status=429,
            )
            headers["Stripe-Should-Retry"] = "true"
        else:
            err = _api_error(fault.status or 500)
        return Response.json(err.status, err.body(), headers)

    def internal_error(self) -> Response:
        err = _api_error(500)
        return Response.json(500, err.body(), {"Request-Id": _new_request_id()})

    def handle_api(self, req: Request) -> Response:
        request_id = _new_request_id()
        headers = {"Request-Id": request_id}
        if req.header("stripe-version"):
            headers["Stripe-Version"] = str(req.header("stripe-version"))
        try:
            api_key = self._authenticate(req)
            route, obj_id = _match(req)
            if route is None:
                raise _invalid(
                    f"Unrecognized request URL ({req.method}: {req.path}). Please see https://stripe.com/docs "
                    "or we can help at https://support.stripe.com/.",
                    status=404,
                )
            params = _request_params(req)
        except StripeApiError as err:
            return Response.json(err.status, err.body(), headers)
        ctx = _Ctx(api_key, request_id, req.header("idempotency-key"), req.header("stripe-version"))
        handler: Handler = getattr(self, route.handler)
        with self._lock:  # one API call at a time: state transitions stay atomic
            if req.method == "POST" and ctx.idempotency_key:
                headers["Idempotency-Key"] = ctx.idempotency_key
                return self._idempotent(ctx, req, params, obj_id, handler, headers)
            return _run(handler, ctx, params, obj_id, headers)[0]

    def _authenticate(self, req: Request) -> str:
        key = _api_key_from(req.header("authorization"))
        if key is None:
            raise _invalid(
                "You did not provide an API key. You need to provide your API key in the Authorization "
                "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
                "https://stripe.com/docs/api#authentication for details, or we can help at "
                "https://support.stripe.com/.",
                status=401,
            )
        valid = key in self.api_keys if self.api_keys is not None else key.startswith("sk_test_")
        if not valid:
            raise _invalid(f"Invalid API Key provided: {_mask(key)}", status=401)
        return key

    # -- idempotency -------------------------------------------------------------------
    def _idempotent(
        self, ctx: _Ctx, req: Request, params: Json, obj_id: str | None, handler: Handler, headers: dict[str, str]
    ) -> Response:
        assert ctx.idempotency_key is not None
        scope = (ctx.api_key, ctx.idempotency_key)
        record = self._idem.get(scope)
        if record is not None:
            return self._replay(record, req, params, ctx.idempotency_key, headers)
        resp, executed = _run(handler, ctx, params, obj_id, headers)
        if executed:  # Stripe saves results only once the endpoint began executing
            body = _json_body(resp)
            self._idem[scope] = _IdemRecord(req.method, req.path, params, resp.status, body, ctx.request_id)
            self._executions[ctx.idempotency_key] += 1
        return resp

    def _replay(self, record: _IdemRecord, req: Request, params: Json, key: str, headers: dict[str, str]) -> Response:
        if (record.method, record.path) != (req.method, req.path):
            message = (
                "Keys for idempotent requests can only be used for the same endpoint they were first used "
                f"for ('{record.method} {record.path}' vs '{req.method} {req.path}'). Try using a key other "
                f"than '{key}' if you meant to execute a different request."
            )
            return _error_response(StripeApiError(400, "idempotency_error", message), headers)
        if record.params != params:
            message = (
                "Keys for idempotent requests can only be used with the same parameters they were first "
                f"used with. Try using a key other than '{key}' if you meant to execute a different request."
            )
            return _error_response(StripeApiError(400, "idempotency_error", message), headers)
        replay_headers = {**headers, "Idempotent-Replayed": "true", "Original-Request": record.request_id}
        return Response.json(record.status, record.body, replay_headers)

    # -- PaymentIntents ----------------------------------------------------------------
    def _create_pi(self, ctx: _Ctx, params: Json, _: str | None) -> Json:
        # Bridge until the emulator takes its contract from the SDK's types (issue #12, in progress).
        if "allowed_payment_method_types" in params:
            params["payment_method_types"] = params.pop("allowed_payment_method_types")
        _reject_unknown(params, _PI_CREATE_PARAMS)
        currency = _currency_param(params)
        amount = _amount_param(params, currency)
        metadata = _metadata_param(params)
        customer = self._customer_ref(_str_param(params, "customer"))
        sfu = _sfu_param(params)
        apm = _automatic_pm_param(params)
        types = _pm_types_param(params) if apm is None else ["card"]
        confirm, off_session = _bool_param(params, "confirm"), _bool_param(params, "off_session")
        expand = self._check_expand(_expand_param(params), {"payment_method", "customer", "latest_charge"})
        pm_ref = _str_param(params, "payment_method")
        if pm_ref is not None:
            self._check_pm_usable(pm_ref, customer, None)
        if confirm:
            self._check_confirmable(pm_ref, apm, _str_param(params, "return_url"), off_session)
        pi = self._new_pi(ctx, amount, currency, metadata, customer, sfu, apm, types, params)
        if pm_ref is not None:
            pi["payment_method"] = self._materialize_pm(pm_ref)
            pi["status"] = "requires_confirmation"
        if confirm:
            self._confirm(ctx, pi, off_session, _bool_param(params, "error_on_requires_action"))
        return self._render_pi(pi, expand)

    def _new_pi(
        self,
        ctx: _Ctx,
        amount: int,
        currency: str,
        metadata: Json,
        customer: str | None,
        sfu: str | None,
        apm: Json | None,
        types: list[str],
        params: Json,
    ) -> Json:
        pi_id = _new_id("pi")
        pi: Json = {
            "id": pi_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "automatic_payment_methods": apm,
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": "automatic_async",
            "client_secret": f"{pi_id}_secret_{_rand(25)}",
            "confirmation_method": "automatic",
            "created": int(time.time()),
            "currency": currency,
            "customer": customer,
            "description": _str_param(params, "description"),
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": metadata,
            "next_action": None,
            "payment_method": None,
            "payment_method_options": {},
            "payment_method_types": types,
            "receipt_email": _email_param(params, "receipt_email"),
            "setup_future_usage": sfu,
            "statement_descriptor": _str_param(params, "statement_descriptor"),
            "status": "requires_payment_method",
        }
        self._pis[pi_id] = pi
        self._pi_born[pi_id] = time.monotonic()
        self._pi_created += 1
        self._emit(ctx, "payment_intent.created", pi)
        return pi

    def _get_pi(self, ctx: _Ctx, params: Json, pi_id: str | None) -> Json:
        expand = self._check_expand(_expand_param(params), {"payment_method", "customer", "latest_charge"})
        return self._render_pi(self._pi_or_404(pi_id), expand)

    def _confirm_pi(self, ctx: _Ctx, params: Json, pi_id: str | None) -> Json:
        _reject_unknown(params, _PI_CONFIRM_PARAMS)
        pi = self._pi_or_404(pi_id)
        if pi["status"] not in _CONFIRMABLE:
            raise self._unexpected_state(pi, "confirm", _CONFIRMABLE)
        expand = self._check_expand(_expand_param(params), {"payment_method", "customer", "latest_charge"})
        off_session = _bool_param(params, "off_session")
        pm_ref = _str_param(params, "payment_method")
        if pm_ref is not None:
            self._check_pm_usable(pm_ref, pi["customer"], pi["id"])
        sfu = _sfu_param(params) if "setup_future_usage" in params else pi["setup_future_usage"]
        current = pm_ref or pi["payment_method"]
        return_url = _str_param(params, "return_url")
        self._check_confirmable(current, pi["automatic_payment_methods"], return_url, off_session)
        if pm_ref is not None:
            pi["payment_method"] = self._materialize_pm(pm_ref)
        pi["setup_future_usage"] = sfu
        pi["receipt_email"] = _email_param(params, "receipt_email") or pi["receipt_email"]
        self._confirm(ctx, pi, off_session, _bool_param(params, "error_on_requires_action"))
        return self._render_pi(pi, expand)

    def _cancel_pi(self, ctx: _Ctx, params: Json, pi_id: str | None) -> Json:
        _reject_unknown(params, frozenset({"cancellation_reason", "expand"}))
        pi = self._pi_or_404(pi_id)
        reason = _str_param(params, "cancellation_reason")
        if reason is not None and reason not in _CANCELLATION_REASONS:
            raise _invalid(f"Invalid cancellation_reason: {reason}", param="cancellation_reason")
        if pi["status"] not in _CANCELABLE:
            raise self._unexpected_state(pi, "cancel", _CANCELABLE)
        pi.update(status="canceled", cancellation_reason=reason, canceled_at=int(time.time()), next_action=None)
        self._emit(ctx, "payment_intent.canceled", pi)
        return self._render_pi(pi, _expand_param(params))

    def _search_pi(self, ctx: _Ctx, params: Json, _: str | None) -> Json:
        _reject_unknown(params, frozenset({"query", "limit", "page", "expand"}))
        query = _str_param(params, "query")
        if query is None:
            raise _missing("query")
        try:
            clauses, joiner = parse_search(query)
        except SearchQueryError as exc:
            raise _invalid(str(exc), param="query") from None
        for clause in clauses:
            if not clause.field.startswith("metadata.") and clause.field not in _PI_SEARCH_FIELDS:
                raise _invalid(
                    f"Field `{clause.field}` is an unsupported search field for resource `payment_intents`.",
                    param="query",
                )
        limit = _int_param(params, "limit") or 10
        if not 1 <= limit <= 100:
            raise _invalid("This value must be between 1 and 100.", param="limit")
        combine = all if joiner == "AND" else any
        hits = [pi for pi in self._searchable() if combine(clause_matches(c, _field(pi, c.field)) for c in clauses)]
        return self._search_page(hits, limit, _str_param(params, "page"), _expand_param(params))

    def _searchable(self) -> list[Json]:
        cutoff = time.monotonic() - self.search_lag_ms / 1000
        visible = [pi for pi in self._pis.values() if self._pi_born[pi["id"]] <= cutoff]
        return sorted(visible, key=lambda pi: pi["created"], reverse=True)  # newest first, stable

    def _search_page(self, hits: list[Json], limit: int, page: str | None, expand: list[str]) -> Json:
        start = int(page) if page and page.isdigit() else 0
        data = hits[start : start + limit]
        more = start + limit < len(hits)
        item_expand = [e.removeprefix("data.") for e in expand]
        return {
            "object": "search_result",
            "data": [self._render_pi(pi, item_expand) for pi in data],
            "has_more": more,
            "next_page": str(start + limit) if more else None,
            "url": "/v1/payment_intents/search",
        }

    # -- confirmation outcomes -----------------------------------------------------------
    def _check_confirmable(
        self, pm_ref: str | None, apm: Json | None, return_url: str | None, off_session: bool
    ) -> None:
        if pm_ref is None:
            raise _invalid(
                "You cannot confirm this PaymentIntent because it's missing a payment method. You can either "
                "update the PaymentIntent with a payment method and then confirm it again, or confirm it "
                "again directly with a payment method.",
                param="payment_method",
            )
        redirects = apm is not None and apm.get("allow_redirects") != "never"
        if self.require_return_url and redirects and return_url is None and not off_session:
            raise _invalid(RETURN_URL_MESSAGE, param="return_url")

    def _confirm(self, ctx: _Ctx, pi: Json, off_session: bool, error_on_requires_action: bool) -> None:
        pm_id = pi["payment_method"]
        state = self._pm_state[pm_id]
        state.used_by.add(pi["id"])
        if pi["customer"] is None and pi["setup_future_usage"] is None:
            state.consumed = True
        card = state.card
        if card.outcome == "authenticate" and (off_session or error_on_requires_action):
            self._decline(ctx, pi, AUTHENTICATION_REQUIRED)
        elif card.outcome == "decline":
            self._decline(ctx, pi, card)
        elif card.outcome == "authenticate":
            self._require_action(ctx, pi)
        else:
            self._succeed(ctx, pi)

    def _succeed(self, ctx: _Ctx, pi: Json) -> None:
        pm_id = pi["payment_method"]
        charge = self._new_charge(pi, pm_id, None)
        pi.update(
            status="succeeded",
            amount_received=pi["amount"],
            latest_charge=charge["id"],
            last_payment_error=None,
            next_action=None,
        )
        pm = self._pms[pm_id]
        if pi["setup_future_usage"] and pi["customer"] and pm["customer"] is None:
            # Stripe attaches the card to the customer once a setup_future_usage payment succeeds.
            self._attach(ctx, pm, pi["customer"], source="setup_future_usage")
        self._emit(ctx, "payment_intent.succeeded", pi)

    def _decline(self, ctx: _Ctx, pi: Json, card: CardProfile) -> None:
        assert card.code is not None and card.message is not None
        pm_id = pi["payment_method"]
        charge = self._new_charge(pi, pm_id, card)
        error = StripeApiError(
            402,
            "card_error",
            card.message,
            code=card.code,
            decline_code=card.decline_code,
            param=card.param,
            executed=True,
        )
        error.error.update(charge=charge["id"], payment_method=_copy(self._pms[pm_id]))
        pi.update(
            status="requires_payment_method",
            last_payment_error=_copy(error.error),
            latest_charge=charge["id"],
            payment_method=None,  # Stripe detaches the failed method from the intent
            next_action=None,
        )
        self._emit(ctx, "payment_intent.payment_failed", pi)
        error.error["payment_intent"] = self._render_pi(pi, [])
        raise error

    def _require_action(self, ctx: _Ctx, pi: Json) -> None:
        source = _new_id("src")
        pi.update(
            status="requires_action",
            next_action={
                "type": "use_stripe_sdk",
                "use_stripe_sdk": {
                    "type": "three_d_secure_redirect",
                    "source": source,
                    "stripe_js": f"https://hooks.stripe.com/redirect/authenticate/{source}"
                    f"?client_secret={pi['client_secret']}",
                },
            },
        )
        self._emit(ctx, "payment_intent.requires_action", pi)

    def _fail_authentication(self, ctx: _Ctx, pi: Json) -> None:
        pi.update(
            status="requires_payment_method",
            last_payment_error={
                "type": "invalid_request_error",
                "code": "payment_intent_authentication_failure",
                "doc_url": doc_url("payment_intent_authentication_failure"),
                "message": AUTH_FAILURE_MESSAGE,
                "payment_method": _copy(self._pms[pi["payment_method"]]),
            },
            payment_method=None,
            next_action=None,
        )
        self._emit(ctx, "payment_intent.payment_failed", pi)

    def _new_charge(self, pi: Json, pm_id: str, failure: CardProfile | None) -> Json:
        pm = self._pms[pm_id]
        ok = failure is None
        charge: Json = {
            "id": _new_id("ch"),
            "object": "charge",
            "amount": pi["amount"],
            "amount_captured": pi["amount"] if ok else 0,
            "amount_refunded": 0,
            "captured": ok,
            "created": int(time.time()),
            "currency": pi["currency"],
            "customer": pi["customer"],
            "description": pi["description"],
            "disputed": False,
            "failure_code": failure.code if failure is not None else None,
            "failure_message": failure.message if failure is not None else None,
            "livemode": False,
            "metadata": dict(pi["metadata"]),
            "outcome": _charge_outcome(failure),
            "paid": ok,
            "payment_intent": pi["id"],
            "payment_method": pm_id,
            "payment_method_details": {"type": "card", "card": _copy(pm["card"])},
            "receipt_email": pi["receipt_email"],
            "refunded": False,
            "status": "succeeded" if ok else "failed",
        }
        self._charges[charge["id"]] = charge
        return charge

    # -- PaymentMethods ------------------------------------------------------------------
    def _check_pm_usable(self, pm_ref: str, customer: str | None, pi_id: str | None) -> None:
        if pm_ref in MAGIC_CARDS:
            return
        pm = self._pms.get(pm_ref)
        if pm is None:
            raise _no_such("PaymentMethod", pm_ref, "payment_method", status=400)
        owner = pm["customer"]
        if owner is not None and customer != owner:
            raise _invalid(
                f"The provided PaymentMethod is attached to Customer '{owner}'. To use it, pass that "
                "Customer's ID as `customer`.",
                param="payment_method",
            )
        if owner is None and self._pm_state[pm_ref].used_by - {pi_id}:
            raise _invalid(REUSED_PM_MESSAGE, param="payment_method")

    def _materialize_pm(self, pm_ref: str) -> str:
        """Each use of a magic ``pm_card_*`` id makes a fresh concrete PaymentMethod, as Stripe does."""
        card = MAGIC_CARDS.get(pm_ref)
        if card is None:
            return pm_ref
        pm_id = _new_id("pm")
        year = time.gmtime().tm_year + 1
        self._pms[pm_id] = {
            "id": pm_id,
            "object": "payment_method",
            "allow_redisplay": "unspecified",
            "billing_details": {"address": None, "email": None, "name": None, "phone": None},
            "card": {
                "brand": card.brand,
                "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
                "country": card.country,
                "display_brand": card.brand,
                "exp_month": 12,
                "exp_year": year,
                "fingerprint": card.fingerprint,
                "funding": card.funding,
                "last4": card.last4,
                "networks": {"available": [card.brand], "preferred": None},
                "wallet": None,
            },
            "created": int(time.time()),
            "customer": None,
            "livemode": False,
            "metadata": {},
            "type": "card",
        }
        self._pm_state[pm_id] = _PmState(card)
        return pm_id

    def _get_pm(self, ctx: _Ctx, params: Json, pm_ref: str | None) -> Json:
        assert pm_ref is not None
        if pm_ref not in MAGIC_CARDS and pm_ref not in self._pms:
            raise _no_such("PaymentMethod", pm_ref, "payment_method")
        return self._render_pm(self._pms[self._materialize_pm(pm_ref)], _expand_param(params))

    def _attach_pm(self, ctx: _Ctx, params: Json, pm_ref: str | None) -> Json:
        assert pm_ref is not None
        _reject_unknown(params, frozenset({"customer", "expand"}))
        customer_id = _str_param(params, "customer")
        if customer_id is None:
            raise _missing("customer")
        customer = self._customer_ref(customer_id)
        assert customer is not None
        if pm_ref not in MAGIC_CARDS and pm_ref not in self._pms:
            raise _no_such("PaymentMethod", pm_ref, "payment_method")
        pm = self._pms.get(pm_ref)
        if pm is not None and pm["customer"] not in (None, customer):
            raise _invalid("The payment method you provided has already been attached to a customer.")
        if pm is not None and pm["customer"] is None and self._pm_state[pm_ref].consumed:
            raise _invalid(UNATTACHABLE_PM_MESSAGE)
        pm = pm or self._pms[self._materialize_pm(pm_ref)]
        self._attach(ctx, pm, customer, source="api")
        return self._render_pm(pm, _expand_param(params))

    def _attach(self, ctx: _Ctx, pm: Json, customer: str, *, source: str) -> None:
        already = pm["customer"] == customer
        pm["customer"] = customer
        self._attachments.append(
            {
                "payment_method": pm["id"],
                "customer": customer,
                "source": source,
                "already_attached": already,
                "created": int(time.time()),
            }
        )
        if not already:
            self._emit(ctx, "payment_method.attached", pm)

    # -- Customers and charges -----------------------------------------------------------
    def _create_customer(self, ctx: _Ctx, params: Json, _: str | None) -> Json:
        _reject_unknown(params, _CUSTOMER_PARAMS)
        customer: Json = {
            "id": _new_id("cus"),
            "object": "customer",
            "address": None,
            "balance": 0,
            "created": int(time.time()),
            "currency": None,
            "default_source": None,
            "delinquent": False,
            "description": _str_param(params, "description"),
            "email": _email_param(params, "email"),
            "invoice_prefix": _rand(8).upper(),
            "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None},
            "livemode": False,
            "metadata": _metadata_param(params),
            "name": _str_param(params, "name"),
            "phone": _str_param(params, "phone"),
            "preferred_locales": [],
            "shipping": None,
            "tax_exempt": "none",
        }
        self._customers[customer["id"]] = customer
        self._emit(ctx, "customer.created", customer)
        return _copy(customer)

    def _get_customer(self, ctx: _Ctx, params: Json, cus_id: str | None) -> Json:
        customer = self._customers.get(cus_id or "")
        if customer is None:
            raise _no_such("customer", cus_id or "", "id")
        return _copy(customer)

    def _get_charge(self, ctx: _Ctx, params: Json, ch_id: str | None) -> Json:
        charge = self._charges.get(ch_id or "")
        if charge is None:
            raise _no_such("charge", ch_id or "", "id")
        return _copy(charge)

    # -- helpers -------------------------------------------------------------------------
    def _customer_ref(self, cus_id: str | None) -> str | None:
        if cus_id is not None and cus_id not in self._customers:
            raise _no_such("customer", cus_id, "customer", status=400)
        return cus_id

    def _pi_or_404(self, pi_id: str | None) -> Json:
        pi = self._pis.get(pi_id or "")
        if pi is None:
            raise _no_such("payment_intent", pi_id or "", "intent")
        return pi

    def _unexpected_state(self, pi: Json, action: str, allowed: tuple[str, ...]) -> StripeApiError:
        err = _invalid(
            f"You cannot {action} this PaymentIntent because it has a status of {pi['status']}. Only a "
            f"PaymentIntent with one of the following statuses may be {action}ed: {', '.join(allowed)}.",
            code="payment_intent_unexpected_state",
        )
        err.error["payment_intent"] = self._render_pi(pi, [])
        return err

    def _check_expand(self, expand: list[str], allowed: set[str]) -> list[str]:
        for name in expand:
            if name not in allowed:
                raise _invalid(f"This property cannot be expanded ({name}).", param="expand")
        return expand

    def _render_pi(self, pi: Json, expand: list[str]) -> Json:
        out = _copy(pi)
        if "payment_method" in expand and out["payment_method"]:
            out["payment_method"] = _copy(self._pms[out["payment_method"]])
        if "customer" in expand and out["customer"]:
            out["customer"] = _copy(self._customers[out["customer"]])
        if "latest_charge" in expand and out["latest_charge"]:
            out["latest_charge"] = _copy(self._charges[out["latest_charge"]])
        return out

    def _render_pm(self, pm: Json, expand: list[str]) -> Json:
        out = _copy(pm)
        if "customer" in expand and out["customer"]:
            out["customer"] = _copy(self._customers[out["customer"]])
        return out

    def _emit(self, ctx: _Ctx, type_: str, obj: Json, *, automatic: bool = False) -> None:
        """Record a Stripe event and queue it for webhook delivery (never blocks on the network).
        ``automatic``: caused by Stripe itself (e.g. a dispute), so ``request`` holds nulls."""
        request: Json = {"id": None, "idempotency_key": None}
        if not automatic:
            request = {"id": ctx.request_id, "idempotency_key": ctx.idempotency_key}
        event: Json = {
            "id": _new_id("evt"),
            "object": "event",
            "api_version": ctx.api_version or DEFAULT_API_VERSION,
            "created": int(time.time()),
            "data": {"object": _copy(obj)},
            "livemode": False,
            "pending_webhooks": 1 if self.webhooks.accepts(type_) else 0,
            "request": request,
            "type": type_,
        }
        self._events.append(event)
        self._events_by_id[event["id"]] = event
        if event["pending_webhooks"]:
            self.webhooks.submit(_copy(event))


# -- module helpers ----------------------------------------------------------------
def _copy(obj: Json) -> Json:
    """Deep copy of a JSON object, so callers never share state with the emulator."""
    return {k: _deep(v) for k, v in obj.items()}


def _deep(value: Any) -> Any:
    # Cheaper than copy.deepcopy for plain JSON data.
    if isinstance(value, dict):
        return {k: _deep(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep(v) for v in value]
    return value


def _new_request_id() -> str:
    return f"req_{_rand(14)}"


def _mask(key: str) -> str:
    return key[:8] + "*" * max(0, len(key) - 12) + key[-4:] if len(key) > 12 else key[:4] + "****"


def _api_key_from(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":  # curl -u sk_test_x:
        try:
            return base64.b64decode(value).decode().split(":", 1)[0] or None
        except ValueError:
            return None
    return None


def _api_error(status: int) -> StripeApiError:
    return StripeApiError(
        status,
        "api_error",
        "Sorry, something went wrong. We've already been notified of the problem, but if you need any "
        "help, you can reach us at support.stripe.com/contact.",
    )


def _match(req: Request) -> tuple[_Route | None, str | None]:
    for route in _ROUTES:
        if route.method != req.method:
            continue
        found = route.pattern.match(req.path)
        if found is not None:
            groups = found.groupdict()
            return route, unquote(groups["id"]) if "id" in groups else None
    return None, None


def _request_params(req: Request) -> Json:
    raw = req.body.decode("utf-8", errors="replace") if req.method == "POST" else req.query
    try:
        params = parse_form(raw)
    except FormError as exc:
        raise _invalid(str(exc)) from None
    # Bridge until the emulator takes its contract from the SDK's types (issue #12, in progress).
    if "allowed_payment_method_types" in params:
        params["payment_method_types"] = params.pop("allowed_payment_method_types")
    return params


def _run(
    handler: Handler, ctx: _Ctx, params: Json, obj_id: str | None, headers: dict[str, str]
) -> tuple[Response, bool]:
    """Run one endpoint; returns the response and whether it executed (vs failed validation)."""
    try:
        return Response.json(200, handler(ctx, params, obj_id), headers), True
    except StripeApiError as err:
        return _error_response(err, headers), err.executed


def _error_response(err: StripeApiError, headers: dict[str, str]) -> Response:
    return Response.json(err.status, err.body(), headers)


class _NotFound(KeyError):
    """An emulator-only control route named an object that does not exist (404, not 400)."""


def _not_found_as_404(action: Callable[[], Json]) -> Json:
    try:
        return action()
    except KeyError as exc:
        raise _NotFound(exc.args[0] if exc.args else "not found") from None


def _control_body(req: Request) -> Json:
    try:
        body = req.json()
    except json.JSONDecodeError as exc:
        raise ValueError(f"body is not JSON: {exc}") from exc
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


def _json_body(resp: Response) -> Json:
    body: Json = json.loads(resp.body)
    return body


def _field(pi: Json, name: str) -> Any:
    if name.startswith("metadata."):
        return pi["metadata"].get(name.removeprefix("metadata."))
    return pi.get(name)


def _charge_outcome(failure: CardProfile | None) -> Json:
    if failure is None:
        return {
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "seller_message": "Payment complete.",
            "type": "authorized",
        }
    return {
        "network_status": "declined_by_network",
        "reason": failure.decline_code,
        "risk_level": "normal",
        "seller_message": "The bank did not return any further details with this decline.",
        "type": "issuer_declined",
    }


# -- cross-process client ------------------------------------------------------------
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

    # -- webhooks, refunds, disputes -----------------------------------------------------
    def configure_webhooks(self, url: str | None, secret: str | None = None, **options: Any) -> Json:
        """``options``: enabled_events, retry_schedule, timeout (see StripeEmulator.configure_webhooks)."""
        return dict(self.call("POST", "webhooks", {"url": url, "secret": secret, **options}))

    def set_webhook_mode(self, **modes: Any) -> Json:
        return dict(self.call("POST", "webhooks/mode", modes))

    def deliver_event(self, event_id: str) -> Json:
        return dict(self.call("POST", f"events/{event_id}/deliver", {}))

    def refund(self, charge_id: str) -> Json:
        return dict(self.call("POST", f"charges/{charge_id}/refund", {}))

    def dispute(self, charge_id: str) -> Json:
        return dict(self.call("POST", f"charges/{charge_id}/dispute", {}))

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


def _delays(raw: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated seconds, got {raw!r}") from None


def main(argv: list[str] | None = None) -> int:
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--api-key", action="append", dest="api_keys", help="accepted key (repeatable)")
        parser.add_argument("--search-lag-ms", type=float, default=0)
        parser.add_argument("--no-require-return-url", action="store_true", help="accept confirm without return_url")
        parser.add_argument("--webhook-url", default=None, help="POST every event, signed, to this URL")
        parser.add_argument("--webhook-secret", default=DEFAULT_SECRET, help="signing secret (whsec_...)")
        parser.add_argument(
            "--webhook-retry-schedule",
            type=_delays,
            default=DEFAULT_RETRY_SCHEDULE,
            help="comma-separated retry delays in seconds (default: 1,2,4,8,16)",
        )

    def build(args: argparse.Namespace) -> EmulatorServer:
        return StripeEmulator(
            args.port,
            api_keys=set(args.api_keys) if args.api_keys else None,
            require_return_url=not args.no_require_return_url,
            search_lag_ms=args.search_lag_ms,
            webhook_url=args.webhook_url,
            webhook_secret=args.webhook_secret,
            webhook_retry_schedule=args.webhook_retry_schedule,
        )

    return run_cli(build, prog="stripe-emulator", default_port=12111, argv=argv, add_arguments=add_arguments)


if __name__ == "__main__":
    sys.exit(main())
