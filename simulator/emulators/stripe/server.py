"""The Stripe emulator's HTTP server: lifecycle, faults, and Stripe's idempotency around execution.

    emu = StripeEmulator(webhook_url="http://127.0.0.1:8000/webhook").start()
    client = stripe.StripeClient("sk_test_x", base_addresses={"api": emu.url})

Execution of one API call, in order: fault "before" (nothing happens) -> validation (``calls``;
never saved) -> idempotency (replay a saved result, 409 while the key executes elsewhere, or claim
the key) -> the endpoint (under the emulator's lock: state changes are atomic) -> "after" latency
(the key stays claimed: the provider is still working) -> the result saved under the key -> a lost
answer ("after" faults) or the answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

from simulator.emulators.base import EmulatorServer
from simulator.emulators.faults import ALL_KINDS, Fault
from simulator.emulators.serving import EmulatorRequestHandler, Request, Response
from simulator.emulators.stripe import errors, restricted, routes
from simulator.emulators.stripe.actions import StripeActions
from simulator.emulators.stripe.calls import ApiCall, prepare
from simulator.emulators.stripe.clock import Clock
from simulator.emulators.stripe.control import handle_control
from simulator.emulators.stripe.endpoint_deliveries import WebhookEndpoints
from simulator.emulators.stripe.idempotency import Claim, IdempotencyLayer, Saved
from simulator.emulators.stripe.inspection import StripeInspection
from simulator.emulators.stripe.objects import Json, new_request_id
from simulator.emulators.stripe.signing import DEFAULT_SECRET
from simulator.emulators.stripe.state import StripeState
from simulator.emulators.stripe.stripe_js import stand_in
from simulator.emulators.stripe.version import DEFAULT_API_VERSION
from simulator.emulators.stripe.webhook_settings import DEFAULT_RETRY_SCHEDULE, DEFAULT_TIMEOUT
from simulator.emulators.stripe.webhooks import WebhookDispatcher

log = logging.getLogger(__name__)

STORED_ERROR = "stored_error"
LOCK_TIMEOUT_MESSAGE = (
    "This object cannot be accessed right now because another API request or Stripe process is currently "
    "accessing it. If you see this error intermittently, retry the request. If you see this error frequently "
    "and are making multiple concurrent requests to a single object, make your requests serially or at a "
    "lower rate."
)
RATE_LIMIT_MESSAGE = "Too many requests hit the API too quickly. We recommend an exponential backoff of your requests."


@dataclass(frozen=True)
class ReceivedCall:
    method: str
    path: str
    form: bytes | str  # the POST body, or the query string of a GET


@dataclass(frozen=True)
class _Result:
    response: Response
    saved: Saved | None  # what the idempotency layer keeps under the key (None: nothing)
    executed: bool  # the endpoint acted


class StripeEmulator(StripeActions, StripeInspection, EmulatorServer):
    """Stripe v1 subset for the donation pipeline; see the package docstring."""

    name: ClassVar[str] = "stripe-emulator"
    supported_faults: ClassVar[frozenset[str]] = ALL_KINDS

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
        clock: Clock | None = None,
        account_api_version: str = DEFAULT_API_VERSION,
    ) -> None:
        """``api_keys``: accepted secret keys (None: any ``sk_test_`` key); restricted keys are added with
        :meth:`restrict`.
        ``require_return_url``: reject confirm without return_url while automatic payment methods
        allow redirects, as Stripe does. ``search_lag_ms``: new PaymentIntents stay invisible to
        search this long, like Stripe's eventually consistent search index.
        ``webhook_url``: endpoint every new event is POSTed to, signed with ``webhook_secret``;
        failed attempts are retried after each delay of ``webhook_retry_schedule`` (seconds), then
        given up. ``webhook_timeout`` bounds one attempt. ``webhook_events``: event types the
        endpoint is subscribed to (``*``: all), like a Stripe endpoint's enabled_events.
        ``clock``: emulator time (``advance_clock`` moves it), e.g. to expire idempotency keys.
        ``account_api_version``: the account's default API version, which an endpoint created through the
        WebhookEndpoints API without ``api_version`` receives its events in (as one set up by hand would)."""
        super().__init__(port)
        self.api_keys = api_keys
        self.restricted_keys: dict[str, dict[str, str]] = {}
        self.clock = clock or Clock()
        self.webhooks = WebhookDispatcher(
            url=webhook_url,
            secret=webhook_secret,
            retry_schedule=webhook_retry_schedule,
            timeout=webhook_timeout,
            enabled_events=webhook_events,
            on_settled=self._webhook_settled,
            name=f"{self.name}-webhooks",
        )
        self.account = StripeState(self.clock, self.webhooks, require_return_url, search_lag_ms)
        self.account.endpoints = WebhookEndpoints(
            account_api_version=account_api_version, retry_schedule=webhook_retry_schedule, timeout=webhook_timeout
        )
        self.idempotency = IdempotencyLayer()
        self._received: list[ReceivedCall] = []

    @property
    def require_return_url(self) -> bool:
        return self.account.require_return_url

    @require_return_url.setter
    def require_return_url(self, value: bool) -> None:
        self.account.require_return_url = value

    @property
    def search_lag_ms(self) -> float:
        return self.account.search_lag_ms

    @search_lag_ms.setter
    def search_lag_ms(self, value: float) -> None:
        self.account.search_lag_ms = value

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Self:
        super().start()
        self.webhooks.start()
        with self._lock:
            self.account.endpoints.start()
        return self

    def stop(self) -> None:
        self.webhooks.stop()  # first, so no delivery outlives the emulator
        with self._lock:
            self.account.endpoints.stop()
        super().stop()

    def restrict(self, key: str, permissions: Mapping[str, str]) -> None:
        """Accept ``key`` (``rk_test_...``) as a restricted key with these permissions (resource -> Read or
        Write; every other resource: None), as a key created in Stripe's dashboard (emulators.stripe.restricted)."""
        if not restricted.is_restricted(key):
            raise ValueError(f"a restricted key starts with rk_test_: {key[:8]}...")
        self.restricted_keys[key] = dict(permissions)

    def seed(self, n: int) -> None:
        super().seed(n)
        self.webhooks.seed(n)

    def _reset_state(self) -> None:
        with self._lock:
            self._received = []
            self.account.clear()
            self.idempotency.reset()
            self.webhooks.reset()
            self.clock.reset()

    # -- HTTP ------------------------------------------------------------------------------
    def route_name(self, req: Request) -> str:
        matched = routes.match(req.method, req.path)
        return matched[0].name if matched else f"{req.method} {req.path}"

    def handle_control(self, req: Request, sub: str) -> Response | None:
        return handle_control(self, req, sub)

    @property
    def received(self) -> list[ReceivedCall]:
        """Every API request as it arrived (before validation or faults), for tests to check on their own."""
        with self._lock:
            return list(self._received)

    def respond(
        self, conn: EmulatorRequestHandler, req: Request, fired: Sequence[Fault], terminal: Fault | None
    ) -> None:
        script = stand_in(req)
        if script is not None:  # the Stripe.js stand-in: not an API call
            conn.send(script)
            return
        with self._lock:
            self._received.append(ReceivedCall(req.method, req.path, req.body if req.method == "POST" else req.query))
        stored = terminal if terminal is not None and terminal.kind == STORED_ERROR else None
        lost = terminal if stored is None else None
        if lost is not None and lost.phase == "before":
            self._apply_fault(conn, lost, req)
            return
        after_ms = sum(
            self.faults.delay_ms(f.latency_ms, f.jitter_ms)
            for f in fired
            if f.phase == "after" and f.kind != "timeout" and f.latency_ms
        )
        try:
            call = prepare(req, self.api_keys, self.clock, self.restricted_keys)
        except Exception:
            log.exception("%s failed to prepare %s %s", self.name, req.method, req.path)
            call = self.internal_error()
        if isinstance(call, Response):
            self._pause(after_ms)
            answer = call
        else:
            answer = self._execute_call(call, stored, after_ms)
        if lost is not None:  # the provider acted (and saved its result); the answer is lost
            self._apply_fault(conn, lost, req)
            return
        conn.send(answer)

    def _execute_call(self, call: ApiCall, stored: Fault | None, after_ms: float) -> Response:
        scope = call.scope
        with self._lock:  # one API call at a time: state transitions stay atomic
            early = self._replay_or_refuse(call) if scope is not None else None
            if early is None:
                claim = self.idempotency.claim(scope) if scope is not None else None
                result = self._run(call, stored)
                if after_ms <= 0:
                    self._finish(claim, result)
        if early is not None:
            self._pause(after_ms)
            return early
        if after_ms > 0:
            try:
                self._pause(after_ms)  # the key stays claimed: a same-key request now gets 409
            finally:
                with self._lock:
                    self._finish(claim, result)
        return result.response

    def _replay_or_refuse(self, call: ApiCall) -> Response | None:
        """A saved result's replay, 409 while the key executes, idempotency_error on misuse, or None."""
        scope = call.scope
        assert scope is not None
        saved = self.idempotency.lookup(scope, self.clock.now())
        if saved is None:
            return call.error(errors.key_in_use(scope[1])) if self.idempotency.in_flight(scope) else None
        if (saved.method, saved.path) != (call.method, call.path):
            return call.error(errors.key_reused_elsewhere(scope[1], f"{saved.method} {saved.path}", call.route.name))
        if saved.params != call.params:
            return call.error(errors.key_reused_with_other_params(scope[1]))
        headers = {**call.headers, **saved.headers, "Idempotent-Replayed": "true", "Original-Request": saved.request_id}
        return Response.json(saved.status, saved.body, headers)

    def _run(self, call: ApiCall, stored: Fault | None) -> _Result:
        """Execute the endpoint (or fail it with a stored error). Call with the lock held."""
        if stored is not None and stored.phase == "before":
            return self._stored_failure(call, stored, executed=False)
        try:
            body = call.route.handler(self.account, call.ctx, call.params, call.obj_id)
            response, executed = Response.json(200, body, call.headers), True
        except errors.StripeApiError as err:
            response, executed = call.error(err), err.executed
        except Exception:
            log.exception("%s failed on %s %s", self.name, call.method, call.path)
            return _Result(self.internal_error(), None, executed=False)
        if stored is not None and executed:  # the operation happened, then the 500 was saved
            return self._stored_failure(call, stored, executed=True)
        return _Result(response, self._saved(call, response) if executed else None, executed)

    def _stored_failure(self, call: ApiCall, fault: Fault, *, executed: bool) -> _Result:
        # The SDK honours Stripe-Should-Retry: false and does not retry (stripe/_http_client.py
        # _should_retry); a replay would only answer the same 500.
        extra = {"Stripe-Should-Retry": "false"}
        response = call.error(errors.api_error(fault.status or 500), extra)
        return _Result(response, self._saved(call, response, extra), executed)

    def _saved(self, call: ApiCall, response: Response, headers: dict[str, str] | None = None) -> Saved | None:
        if call.scope is None:
            return None
        return Saved(
            call.method,
            call.path,
            call.params,
            response.status,
            json.loads(response.body),
            dict(headers or {}),
            call.ctx.request_id,
            self.clock.now(),
        )

    def _finish(self, claim: Claim | None, result: _Result) -> None:
        if claim is not None:
            self.idempotency.finish(claim, result.saved, executed=result.executed)

    def fault_response(self, fault: Fault, req: Request) -> Response:
        headers = {"Request-Id": new_request_id()}
        if fault.kind == "rate_limit":
            err = errors.invalid(RATE_LIMIT_MESSAGE, code="rate_limit", status=429)
        elif fault.kind == "lock_timeout":
            err = errors.invalid(LOCK_TIMEOUT_MESSAGE, code="lock_timeout", status=429)
            headers["Stripe-Should-Retry"] = "true"
        else:
            err = errors.api_error(fault.status or 500)
        return Response.json(err.status, err.body(), headers)

    def internal_error(self) -> Response:
        return Response.json(500, errors.api_error(500).body(), {"Request-Id": new_request_id()})

    def snapshot(self) -> Json:
        with self._lock:
            return {**self.inventory(), "idempotency": self.idempotency.snapshot(), "clock": self.clock_state()}
