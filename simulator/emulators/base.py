"""What every provider emulator is: a threaded HTTP server with faults, latency and a control API.

Each emulator serves the provider's API on 127.0.0.1 (``serving``: requests, answers, the server)
plus a control API under ``/_emulator/`` (faults, latency, reset, state), so tests in other
processes can drive it with ``simulator.emulators.control.EmulatorControl``. ``run_cli`` runs one in
the foreground.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from types import FrameType, TracebackType
from typing import Any, ClassVar, Self

from simulator.emulators.faults import MAX_HOLD_MS, TERMINAL_KINDS, Fault, FaultInjector
from simulator.emulators.serving import (
    CONTROL_PREFIX,
    HOST,
    EmulatorHttpServer,
    EmulatorRequestHandler,
    Request,
    Response,
)

log = logging.getLogger(__name__)


class EmulatorServer:
    """Base class: threaded HTTP server, fault injection, latency, control API.

    Subclasses implement ``handle_api``, ``fault_response``, ``snapshot`` and
    ``_reset_state``, and may add control routes in ``handle_control``.
    """

    name: ClassVar[str] = "emulator"
    # stored_error needs an idempotency layer: only emulators that have one list it.
    supported_faults: ClassVar[frozenset[str]] = frozenset((TERMINAL_KINDS - {"stored_error"}) | {"latency"})

    def __init__(self, port: int = 0) -> None:
        self._requested_port = port
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: EmulatorHttpServer | None = None
        self._thread: threading.Thread | None = None
        self._latency: dict[str, tuple[float, float]] = {}
        self._requests: Counter[str] = Counter()
        # Requests per wall-clock second and route (plus the label ``per_second_label`` gives, if set): the
        # rate a provider's limiter sees (e.g. docs.stripe.com/rate-limits counts requests per second).
        self._per_second: Counter[tuple[int, str]] = Counter()
        self.per_second_label: Callable[[Request], str] | None = None
        self.faults = FaultInjector(supported=self.supported_faults)

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError(f"{self.name} already started")
        self._stopping.clear()
        self._server = EmulatorHttpServer(self._requested_port, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # short poll so stop() returns quickly
            name=f"{self.name}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wakes latency waits and held connections
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self if self._server is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self.name} is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    # -- knobs ---------------------------------------------------------------------
    def seed(self, n: int) -> None:
        """Seed the random source behind ``rate`` faults and jitter, for replayable chaos runs."""
        self.faults.seed(n)

    def set_latency(self, route_prefix: str, mean_ms: float, jitter_ms: float = 0) -> None:
        """Delay every request whose "METHOD /path" starts with ``route_prefix`` (longest prefix wins)."""
        if mean_ms < 0 or jitter_ms < 0:
            raise ValueError("latency must be >= 0")
        with self._lock:
            self._latency[route_prefix] = (float(mean_ms), float(jitter_ms))

    def reset(self) -> None:
        """Forget all provider state, faults, latencies and counters."""
        self.faults.clear()
        with self._lock:
            self._latency.clear()
            self._requests.clear()
            self._per_second.clear()
            self._reset_state()

    @property
    def requests(self) -> dict[str, int]:
        """Requests seen per route (e.g. "POST /v1/payment_intents"), faulted ones included."""
        with self._lock:
            return dict(self._requests)

    def requests_per_second(self) -> dict[int, dict[str, int]]:
        """Requests as they arrived (before latency, faults or validation), per second since the epoch
        (``int(time.time())``), then per route, or per "route label" when ``per_second_label`` is set."""
        with self._lock:
            counts = list(self._per_second.items())
        seconds: dict[int, dict[str, int]] = {}
        for (second, name), count in sorted(counts):
            seconds.setdefault(second, {})[name] = count
        return seconds

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {**self.snapshot(), "requests": dict(self._requests)}

    # -- subclass hooks ------------------------------------------------------------
    def handle_api(self, req: Request) -> Response:
        raise NotImplementedError

    def fault_response(self, fault: Fault, req: Request) -> Response:
        raise NotImplementedError

    def snapshot(self) -> dict[str, Any]:
        raise NotImplementedError

    def _reset_state(self) -> None:
        raise NotImplementedError

    def route_name(self, req: Request) -> str:
        return f"{req.method} {req.path}"

    def handle_control(self, req: Request, sub: str) -> Response | None:
        """Extra emulator-only routes; ``sub`` is the path after ``/_emulator/``."""
        return None

    def internal_error(self) -> Response:
        return Response.json(500, {"error": "emulator bug, see logs"})

    # -- request pipeline ----------------------------------------------------------
    def _serve(self, conn: EmulatorRequestHandler, req: Request) -> None:
        if req.path.startswith(CONTROL_PREFIX):
            conn.send(self._control(req))
            return
        route, arrived = self.route_name(req), int(time.time())
        label = self.per_second_label
        with self._lock:
            self._requests[route] += 1
            self._per_second[(arrived, route if label is None else f"{route} {label(req)}")] += 1
        fired = self.faults.pick(req.method, req.path)
        terminal = next((f for f in fired if f.kind in TERMINAL_KINDS), None)
        self._pause(self._route_delay_ms(req))
        self._apply_delays(fired, "before")
        self.respond(conn, req, fired, terminal)

    def respond(
        self, conn: EmulatorRequestHandler, req: Request, fired: Sequence[Fault], terminal: Fault | None
    ) -> None:
        """Execute the request and answer it, after route latency and "before" delays were applied.

        ``fired`` are the faults picked for this request, ``terminal`` the one (if any) that replaces
        the answer. Emulators with provider-side state around execution (Stripe's idempotency layer)
        override this.
        """
        if terminal is not None and terminal.phase == "before":
            self._apply_fault(conn, terminal, req)
            return
        resp = self._execute(req)
        self._apply_delays(fired, "after")
        if terminal is not None and terminal.phase == "after":
            self._apply_fault(conn, terminal, req)
            return
        conn.send(resp)

    def _execute(self, req: Request) -> Response:
        try:
            return self.handle_api(req)
        except Exception:
            log.exception("%s failed on %s %s", self.name, req.method, req.path)
            return self.internal_error()

    def _route_delay_ms(self, req: Request) -> float:
        key = f"{req.method} {req.path}"
        with self._lock:
            matches = [p for p in self._latency if key.startswith(p)]
            if not matches:
                return 0.0
            mean, jitter = self._latency[max(matches, key=len)]
        return self.faults.delay_ms(mean, jitter)

    def _apply_delays(self, fired: Sequence[Fault], phase: str) -> None:
        for fault in fired:
            # A timeout's latency_ms is its hold time, applied when the fault fires.
            if fault.phase == phase and fault.kind != "timeout" and fault.latency_ms:
                self._pause(self.faults.delay_ms(fault.latency_ms, fault.jitter_ms))

    def _pause(self, ms: float) -> None:
        if ms > 0:
            self._stopping.wait(ms / 1000)  # interruptible, so stop() never waits on latency

    def _apply_fault(self, conn: EmulatorRequestHandler, fault: Fault, req: Request) -> None:
        if fault.kind == "reset":
            conn.reset_connection()
        elif fault.kind == "timeout":
            hold_ms = min(self.faults.delay_ms(fault.latency_ms, fault.jitter_ms), MAX_HOLD_MS)
            conn.hold(hold_ms / 1000)
        else:
            conn.send(self.fault_response(fault, req))

    # -- control API ---------------------------------------------------------------
    def _control(self, req: Request) -> Response:
        sub = req.path[len(CONTROL_PREFIX) :].strip("/")
        try:
            resp = self._base_control(req, sub) or self.handle_control(req, sub)
        except (ValueError, TypeError, KeyError) as exc:
            return Response.json(400, {"error": str(exc)})
        return resp or Response.json(404, {"error": f"unknown control route {req.method} {req.path}"})

    def _base_control(self, req: Request, sub: str) -> Response | None:
        route = (req.method, sub)
        if route == ("GET", "health"):
            return Response.json(200, {"ok": True, "name": self.name})
        if route == ("GET", "state"):
            return Response.json(200, self.state())
        if route == ("POST", "reset"):
            self.reset()
            return Response.json(200, {"ok": True})
        if route == ("POST", "seed"):
            self.seed(int(_json_object(req)["seed"]))
            return Response.json(200, {"ok": True})
        if route == ("POST", "latency"):
            body = _json_object(req)
            self.set_latency(str(body["route"]), float(body["mean_ms"]), float(body.get("jitter_ms", 0)))
            return Response.json(200, {"ok": True})
        return self._faults_control(req, sub)

    def _faults_control(self, req: Request, sub: str) -> Response | None:
        if sub == "faults" and req.method == "GET":
            return Response.json(200, {"faults": self.faults.list_faults()})
        if sub == "faults" and req.method == "POST":
            return Response.json(200, {"id": self.faults.add(**_json_object(req))})
        if sub == "faults" and req.method == "DELETE":
            self.faults.clear()
            return Response.json(200, {"ok": True})
        if sub.startswith("faults/") and req.method == "DELETE":
            removed = self.faults.remove(sub.split("/", 1)[1])
            return Response.json(200 if removed else 404, {"ok": removed})
        return None


def _json_object(req: Request) -> dict[str, Any]:
    try:
        body = req.json()
    except json.JSONDecodeError as exc:
        raise ValueError(f"body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


# -- CLI ---------------------------------------------------------------------------
def run_cli(
    build: Callable[[argparse.Namespace], EmulatorServer],
    *,
    prog: str,
    default_port: int,
    argv: Sequence[str] | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """Run an emulator in the foreground until SIGINT/SIGTERM; prints "<prog> listening on <url>"."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--port", type=int, default=default_port, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=None, help="seed for rate faults and jitter")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    emulator = build(args).start()
    if args.seed is not None:
        emulator.seed(args.seed)
    print(f"{prog} listening on {emulator.url}", flush=True)
    try:
        while not stop.wait(0.5):  # timed wait keeps the main thread responsive to signals
            pass
    finally:
        emulator.stop()
    return 0
