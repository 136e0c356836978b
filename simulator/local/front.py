"""The local HTTP front: API Gateway for the template's routes, plus the sample pages.

Requests under the API's paths go, with every method, the raw body and every header line as
sent (repeated ones included), to :meth:`Pipeline.call_api`, which answers as API Gateway does;
``/``, ``/outbox`` and ``/console`` serve the donation form (``static/form/``, configured for this
stack: the Stripe.js stand-in of the Stripe emulator, or the real Stripe.js with a publishable key),
the receipts the SendGrid emulator accepted, and an operator console.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("donations.local.front")

STATIC = Path(__file__).parent / "static"
PAGES = {
    "/": "index.html",
    "/outbox": "outbox.html",
    "/console": "console.html",
    "/outbox/receipt": "receipt.html",
    "/report": "report.html",
    "/manage": "form/manage.html",  # the pledge manage page (LOCAL_MANAGE_PAGE; docs/monthly-giving.md)
}
FORM_PAGE = "/"
MANAGE_PAGE = "/manage"
FORM_CONFIG_TAG = b'<script type="application/json" id="donation-form-config">{}</script>'
# The form's currencies and suggested amounts here (minor units); a charity sets its own (docs/form.md).
FORM_CURRENCIES = {
    "usd": [1000, 2500, 5000, 10000],
    "eur": [1000, 2500, 5000, 10000],
    "gbp": [1000, 2500, 5000],
    "cad": [1000, 2500, 5000],
    "aud": [1000, 2500, 5000],
}
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
API_PREFIXES = ("/donations", "/webhooks", "/warmup", "/pledges", "/pledge-links")
REQUEST_COUNTS = "/_local/front/requests"

ApiCall = Callable[[str, str, str, bytes | None, list[tuple[str, str]]], tuple[int, dict[str, str], str]]
"""(method, path, query, body, header lines) -> (status, headers, body)."""
LocalCall = Callable[[str, str, str, bytes, list[tuple[str, str]]], tuple[int, Any]]
"""(method, path, query, body, header lines) -> (status, JSON payload, or an object with content_type and
body: sent as is)."""


class Front(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the listen backlog: the default 5 resets connections under load

    def __init__(self, port: int, api: ApiCall, local: LocalCall) -> None:
        self.api = api
        self.local = local
        self.api_requests: Counter[str] = Counter()
        """API requests received, by "METHOD /path" (``GET /_local/front/requests``): what a browser sent."""
        self._counts_lock = threading.Lock()
        self._in_flight = 0
        self._closing = False
        self._idle = threading.Condition()
        super().__init__(("127.0.0.1", port), _Handler)

    def stop(self, timeout: float) -> None:
        """Stop listening, answer 503 to requests on kept-alive connections, and wait (at most ``timeout``
        seconds) for the requests in flight: what they call is still running until they end."""
        with self._idle:
            self._closing = True
        self.shutdown()
        self.server_close()
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight and (remaining := deadline - time.monotonic()) > 0:
                self._idle.wait(remaining)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer (a closed browser tab, a test's timeout) is not news.
        log.debug("front: connection from %s failed", client_address, exc_info=True)

    def begin_request(self) -> bool:
        """Count a request in; False once stopping (the caller answers 503 without calling in)."""
        with self._idle:
            if self._closing:
                return False
            self._in_flight += 1
            return True

    def end_request(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()


class _Handler(BaseHTTPRequestHandler):
    server: Front
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small JSON answers: without TCP_NODELAY each waits ~40 ms for an ACK

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def __getattr__(self, name: str) -> Any:
        # Every method reaches the routing (BaseHTTPRequestHandler answers 501 HTML for a method
        # without a do_ handler): API Gateway, not the front, decides what a method gets.
        if name.startswith("do_"):
            return lambda: self._route(name.removeprefix("do_"))
        raise AttributeError(name)

    def _route(self, method: str) -> None:
        if not self.server.begin_request():
            self.close_connection = True
            self._send(503, b'{"message":"Service Unavailable"}', {"Content-Type": "application/json"})
            return
        try:
            self._answer(method)
        finally:
            self.server.end_request()

    def _answer(self, method: str) -> None:
        target = urlsplit(self.path)
        path = target.path
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._send(413, b'{"message":"Request Too Long"}', {"Content-Type": "application/json"})
                return
            body = self.rfile.read(length) if length > 0 else b""
            headers = list(self.headers.items())  # every header line, repeated names included
            if path.startswith(API_PREFIXES):
                with self.server._counts_lock:
                    self.server.api_requests[f"{method} {path}"] += 1
                status, response_headers, text = self.server.api(method, path, target.query, body or None, headers)
                self._send(status, text.encode(), response_headers, head=method == "HEAD")
            elif path == REQUEST_COUNTS and method == "GET":
                with self.server._counts_lock:
                    counts = dict(self.server.api_requests)
                self._send(200, json.dumps(counts).encode(), {"Content-Type": "application/json"})
            elif path.startswith("/_local/"):
                status, payload = self.server.local(method, path, target.query, body, headers)
                if hasattr(payload, "content_type"):  # the report's CSV, the runbook page
                    self._send(status, payload.body, {"Content-Type": payload.content_type})
                else:
                    self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})
            elif method == "GET" and path in PAGES:
                page = (STATIC / PAGES[path]).read_bytes()
                if path == FORM_PAGE:
                    page = page.replace(FORM_CONFIG_TAG, FORM_CONFIG_TAG.replace(b"{}", self._form_config()))
                if path == MANAGE_PAGE:
                    # The page as a charity hosts it (static/form/manage.html), its API this origin, files under /form/.
                    page = re.sub(
                        rb'(<script type="application/json" id="pledge-page-config">).*?(</script>)',
                        lambda found: found.group(1) + self._form_config() + found.group(2),
                        page,
                        flags=re.DOTALL,
                    )
                    page = page.replace(b'href="donate.css"', b'href="/form/donate.css"')
                    page = page.replace(b'src="manage.js"', b'src="/form/manage.js"')
                self._send(200, page, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"})
            elif method == "GET" and (STATIC / path.lstrip("/")).is_file() and ".." not in path:
                self._send(200, (STATIC / path.lstrip("/")).read_bytes(), {"Content-Type": _content_type(path)})
            else:
                self._send(404, b'{"message":"Not Found"}', {"Content-Type": "application/json"}, head=method == "HEAD")
        except ValueError:  # a Content-Length that is not a number
            self._send(400, b'{"message":"Bad Request"}', {"Content-Type": "application/json"})
        except Exception:
            log.exception("front: %s %s failed", method, path)
            self._send(502, b'{"message":"Internal server error"}', {"Content-Type": "application/json"})

    def _form_config(self) -> bytes:
        """The form's configuration object for this stack, as a deployer writes it (docs/form.md)."""
        _, local = self.server.local("GET", "/_local/config", "", b"", [])
        config: dict[str, Any] = {
            "apiUrl": "",  # the API is this origin
            "stripePublishableKey": local["stripe_publishable_key"],
            "turnstileSiteKey": local["turnstile_sitekey"],
            "organization": "Example Charity",
            "currencies": FORM_CURRENCIES,
        }
        if local.get("stripe_js_url"):  # the emulator's Stripe.js stand-in; unset, the form loads js.stripe.com
            config["stripeJsUrl"] = local["stripe_js_url"]
        # Inside <script>, "</" would end the element early: JSON allows "<\/" for it.
        return json.dumps(config).replace("</", "<\\/").encode()

    def _send(self, status: int, body: bytes, headers: dict[str, str], *, head: bool = False) -> None:
        """Send an answer; to HEAD, its status and headers only (RFC 9110 section 9.3.2)."""
        try:
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() != "content-length":
                    self.send_header(name, value)
            if status != 204:  # RFC 9110 section 8.6: never a Content-Length on a 204 (the warm-up's answer)
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)
        except ConnectionError:  # the client hung up before its answer (a timeout, a closed tab): not news
            self.close_connection = True
            log.debug("front: %s hung up before its %d answer", self.address_string(), status)


_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


def _content_type(path: str) -> str:
    return _CONTENT_TYPES.get(Path(path).suffix, "application/octet-stream")
