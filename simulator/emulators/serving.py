"""The emulators' HTTP plumbing: one request and answer, the keep-alive handler, the threaded server.

Each emulator (simulator.emulators.base.EmulatorServer) owns one ``EmulatorHttpServer`` on 127.0.0.1; its
``EmulatorRequestHandler`` parses a request and hands it to the emulator, and can misbehave on purpose (reset
the connection, hold it without answering) when a fault says so.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from simulator.emulators.base import EmulatorServer

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


class EmulatorRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real APIs behind the SDKs' pooled sessions
    server_version = "emulator"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are dropped eventually
    server: EmulatorHttpServer

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


class EmulatorHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, emulator: EmulatorServer) -> None:
        self.emulator = emulator
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__((HOST, port), EmulatorRequestHandler)

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
