"""Shared HTTP plumbing for the local provider emulators.

Each emulator is a ``ThreadingHTTPServer`` on 127.0.0.1 serving the provider's
API plus a control API under ``/_emulator/`` (faults, latency, reset, state) so
tests in other processes can drive it. ``EmulatorControl`` is the client side.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from types import FrameType, TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, urlsplit

from infra.emulators.faults import MAX_HOLD_MS, TERMINAL_KINDS, Fault, FaultInjector

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/_emulator/"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Request:
    """One parsed HTTP request; header names are lower-cased."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def query_params(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.query, keep_blank_values=True).items()}

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        merged = {"Content-Type": "application/json", **(headers or {})}
        return cls(status, json.dumps(payload).encode(), merged)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real APIs behind the SDKs' pooled sessions
    server_version = "emulator"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are dropped eventually
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: no access log on stderr
        return

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle plus the client's
        # delayed ACK adds ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.untrack(self.connection)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        split = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        req = Request(self.command, split.path, split.query, headers, body)
        self.server.emulator._serve(self, req)

    def send(self, resp: Response) -> None:
        self.send_response(resp.status)
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        self.wfile.write(resp.body)

    def reset_connection(self) -> None:
        # SO_LINGER(on, 0) makes close() send RST, so the client sees "connection reset by peer".
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.wfile.close()
        self.connection.close()

    def hold(self, seconds: float) -> None:
        """Keep the connection open without answering, then close it (a hung upstream)."""
        self.close_connection = True
        self.connection.settimeout(seconds)
        try:
            # Returns early when the client gives up or the emulator stops (both close the socket).
            data = self.connection.recv(1, socket.MSG_PEEK)
        except (TimeoutError, OSError):
            return
        if data:  # client sent more bytes (pipelining): fall back to a plain bounded wait
            self.server.emulator._stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, emulator: EmulatorServer) -> None:
        self.emulator = emulator
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__((HOST, port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup; skip it, the name is fixed.
        TCPServer.server_bind(self)
        self.server_name = HOST
        self.server_port = self.server_address[1]

    def track(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.discard(conn)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out and hang up are part of the game; only log real bugs.
        log.debug("emulator connection error from %s", client_address, exc_info=True)


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
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._latency: dict[str, tuple[float, float]] = {}
        self._requests: Counter[str] = Counter()
        self.faults = FaultInjector(supported=self.supported_faults)

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError(f"{self.name} already started")
        self._stopping.clear()
        self._server = _Server(self._requested_port, self)
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
            self._reset_state()

    @property
    def requests(self) -> dict[str, int]:
        """Requests seen per route (e.g. "POST /v1/payment_intents"), faulted ones included."""
        with self._lock:
            return dict(self._requests)

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
    def _serve(self, conn: _Handler, req: Request) -> None:
        if req.path.startswith(CONTROL_PREFIX):
            conn.send(self._control(req))
            return
        with self._lock:
            self._requests[self.route_name(req)] += 1
        fired = self.faults.pick(req.method, req.path)
        terminal = next((f for f in fired if f.kind in TERMINAL_KINDS), None)
        self._pause(self._route_delay_ms(req))
        self._apply_delays(fired, "before")
        self.respond(conn, req, fired, terminal)

    def respond(self, conn: _Handler, req: Request, fired: Sequence[Fault], terminal: Fault | None) -> None:
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

    def _apply_fault(self, conn: _Handler, fault: Fault, req: Request) -> None:
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


# -- client ------------------------------------------------------------------------
class EmulatorControlError(RuntimeError):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"control API answered {status}: {body}")
        self.status = status
        self.body = body


class EmulatorControl:
    """Drive an emulator's ``/_emulator/`` API from any process (stdlib only, bounded timeouts)."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One JSON call to ``/_emulator/<path>``; raises EmulatorControlError on a 4xx/5xx."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(  # noqa: S310 (scheme checked in __init__)
            f"{self.base_url}{CONTROL_PREFIX}{path.lstrip('/')}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 (scheme checked in __init__)
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise EmulatorControlError(exc.code, exc.read().decode(errors="replace")) from None

    def add_fault(self, kind: str, **kwargs: Any) -> str:
        return str(self.call("POST", "faults", {"kind": kind, **kwargs})["id"])

    def remove_fault(self, fault_id: str) -> None:
        self.call("DELETE", f"faults/{fault_id}")

    def clear_faults(self) -> None:
        self.call("DELETE", "faults")

    def faults(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "faults")["faults"])

    def set_latency(self, route: str, mean_ms: float, jitter_ms: float = 0) -> None:
        self.call("POST", "latency", {"route": route, "mean_ms": mean_ms, "jitter_ms": jitter_ms})

    def seed(self, n: int) -> None:
        self.call("POST", "seed", {"seed": n})

    def reset(self) -> None:
        self.call("POST", "reset", {})

    def state(self) -> dict[str, Any]:
        return dict(self.call("GET", "state"))

    def healthy(self) -> bool:
        try:
            return bool(self.call("GET", "health")["ok"])
        except (OSError, EmulatorControlError):
            return False

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Poll /health until the emulator answers (for launchers starting it as a subprocess)."""
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if time.monotonic() >= deadline:
                raise TimeoutError(f"emulator at {self.base_url} not ready after {timeout}s")
            time.sleep(0.05)


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
