"""Local Cloudflare Turnstile: the siteverify endpoint, and a widget stand-in for the sample form.

    emu = TurnstileEmulator().start()                     # sitekey LOCAL_SITEKEY, secret LOCAL_SECRET
    token = emu.issue_token(LOCAL_SITEKEY)                # what a person solving the widget gets
    requests.post(f"{emu.url}/turnstile/v0/siteverify", json={"secret": LOCAL_SECRET, "response": token})

Run standalone with ``python -m simulator.emulators.turnstile_emulator --port 3040``.

Every behaviour cites Cloudflare's pages (developers.cloudflare.com/turnstile/...):

* "Server-side validation" (get-started/server-side-validation): ``POST /turnstile/v0/siteverify``
  takes ``application/x-www-form-urlencoded`` or ``application/json`` with ``secret``, ``response``,
  ``remoteip`` (not strictly validated) and ``idempotency_key``, and always answers JSON with
  ``success`` and ``error-codes`` (plus ``challenge_ts``, ``hostname``, ``action``, ``cdata`` on
  success). A token has at most 2048 characters, is valid for 300 s and validates once: again, it is
  ``timeout-or-duplicate``, unless the same ``idempotency_key`` is given, which answers the same
  again. Error codes: ``missing-input-secret``, ``invalid-input-secret``, ``missing-input-response``,
  ``invalid-input-response``, ``bad-request``, ``timeout-or-duplicate``, ``internal-error`` (retry).
* "Testing" (troubleshooting/testing): sitekeys ``1x00000000000000000000AA`` (passes, visible),
  ``2x00000000000000000000AB`` (fails, visible), ``1x00000000000000000000BB`` / ``2x00000000000000000000BB``
  (passes / fails, invisible), ``3x00000000000000000000FF`` (forces an interactive challenge); they
  produce the dummy token ``XXXX.DUMMY.TOKEN.XXXX``. Secret keys ``1x0000000000000000000000000000000AA``
  (always passes), ``2x0000000000000000000000000000000AA`` (always fails),
  ``3x0000000000000000000000000000000AA`` ("token already spent": ``timeout-or-duplicate``). Test
  secrets accept only the dummy token; other secrets reject it.

Not documented, chosen here: every verdict is HTTP 200 (the pages show only the JSON); a malformed
body is ``bad-request``; an ``http_error`` fault answers its status with ``internal-error``.
The widget stand-in (``/turnstile/v0/api.js``) implements ``turnstile.render``/``reset``/``remove``
("Client-side rendering", explicit rendering) as one checkbox that asks this emulator for a token:
a local stand-in for the real challenge, never a CAPTCHA.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs

from simulator.emulators.base import EmulatorServer, run_cli
from simulator.emulators.control import EmulatorControl
from simulator.emulators.faults import Fault
from simulator.emulators.serving import Request, Response

Json = dict[str, Any]

# This emulator's own widget: its tokens are real ones (issued, expiring, single use).
LOCAL_SITEKEY = "0x4AAAAAAALocalEmulatorKey"
LOCAL_SECRET = "0x4AAAAAAALocalEmulatorSecretKeyXX"  # noqa: S105 - a well-known local test secret
DUMMY_TOKEN = "XXXX.DUMMY.TOKEN.XXXX"  # noqa: S105 - what Cloudflare's test sitekeys produce
PASSING_SITEKEYS = frozenset({"1x00000000000000000000AA", "1x00000000000000000000BB", "3x00000000000000000000FF"})
FAILING_SITEKEYS = frozenset({"2x00000000000000000000AB", "2x00000000000000000000BB"})
PASSING_SECRET = "1x0000000000000000000000000000000AA"  # noqa: S105 - Cloudflare's documented test secret
FAILING_SECRET = "2x0000000000000000000000000000000AA"  # noqa: S105
SPENT_SECRET = "3x0000000000000000000000000000000AA"  # noqa: S105
TEST_SECRETS = frozenset({PASSING_SECRET, FAILING_SECRET, SPENT_SECRET})
TOKEN_LIFETIME_SECONDS = 300
MAX_TOKEN_CHARACTERS = 2048
WIDGET_SCRIPT = Path(__file__).with_name("turnstile_widget.js")


@dataclass
class _Token:
    sitekey: str
    issued_at: float
    hostname: str
    action: str | None
    cdata: str | None
    redeemed_with: str | None = None  # the idempotency key of its one validation ("" when none was given)
    verdict: Json | None = None


class TurnstileEmulator(EmulatorServer):
    """Turnstile's siteverify with real-shaped tokens, Cloudflare's test keys, and a widget stand-in."""

    name: ClassVar[str] = "turnstile-emulator"
    supported_faults: ClassVar[frozenset[str]] = frozenset({"latency", "http_error", "reset", "timeout"})

    def __init__(self, port: int = 0, *, widgets: dict[str, str] | None = None) -> None:
        """``widgets``: sitekey -> secret of the widgets this account has (default: the local one)."""
        super().__init__(port)
        self.widgets = dict(widgets or {LOCAL_SITEKEY: LOCAL_SECRET})
        self._offset = 0.0
        self._reset_state()

    def _reset_state(self) -> None:
        with self._lock:
            self._tokens: dict[str, _Token] = {}
            self._verifications: list[Json] = []
            self._offset = 0.0

    # -- public Python API -------------------------------------------------------------------------
    def now(self) -> float:
        return time.time() + self._offset

    def advance_clock(self, seconds: float) -> None:
        """Let time pass for the tokens (expiry after 300 s)."""
        with self._lock:
            self._offset += seconds

    def issue_token(self, sitekey: str, *, hostname: str = "localhost", action: str | None = None) -> str | None:
        """What solving the widget gives a visitor: a fresh token, the dummy one for test sitekeys,
        or None (the widget fails) for the failing test sitekeys and unknown sitekeys."""
        if sitekey in PASSING_SITEKEYS:
            return DUMMY_TOKEN
        if sitekey in FAILING_SITEKEYS or sitekey not in self.widgets:
            return None
        token = f"0.{secrets.token_urlsafe(96)}"
        with self._lock:
            self._tokens[token] = _Token(sitekey, self.now(), hostname, action, None)
        return token

    @property
    def verifications(self) -> list[Json]:
        """Every siteverify call: its outcome and error codes (never the secret)."""
        with self._lock:
            return [dict(v) for v in self._verifications]

    def snapshot(self) -> Json:
        with self._lock:
            redeemed = sum(1 for t in self._tokens.values() if t.redeemed_with is not None)
            return {
                "tokens_issued": len(self._tokens),
                "tokens_redeemed": redeemed,
                "verifications": self.verifications,
            }

    # -- HTTP --------------------------------------------------------------------------------------
    def handle_api(self, req: Request) -> Response:
        if req.path == "/turnstile/v0/api.js" and req.method == "GET":
            return Response(200, WIDGET_SCRIPT.read_bytes(), {"Content-Type": "text/javascript; charset=utf-8"})
        if req.path == "/turnstile/v0/siteverify" and req.method == "POST":
            verdict = self._siteverify(_form(req))
            with self._lock:
                self._verifications.append({"success": verdict["success"], "error-codes": verdict["error-codes"]})
            return Response.json(200, verdict)
        return Response.json(404, {"success": False, "error-codes": ["bad-request"]})

    def handle_control(self, req: Request, sub: str) -> Response | None:
        if sub == "tokens" and req.method == "POST":
            # The widget stand-in calls this from the donation form's page, another origin: it sends a
            # CORS "simple request" (text/plain, no preflight), and may read the answer.
            cors = {"Access-Control-Allow-Origin": "*"}
            body = req.json() or {}
            token = self.issue_token(
                str(body.get("sitekey", "")),
                hostname=str(body.get("hostname") or "localhost"),
                action=body.get("action"),
            )
            if token is None:
                return Response.json(400, {"error": "this sitekey's widget fails"}, cors)
            return Response.json(200, {"token": token}, cors)
        if sub == "clock" and req.method == "POST":
            self.advance_clock(float((req.json() or {}).get("advance", 0)))
            return Response.json(200, {"now": self.now()})
        return None

    def fault_response(self, fault: Fault, req: Request) -> Response:
        return self.internal_error(fault.status or 500)

    def internal_error(self, status: int = 500) -> Response:
        return Response.json(status, {"success": False, "error-codes": ["internal-error"]})

    # -- siteverify ----------------------------------------------------------------------------------
    def _siteverify(self, form: Json | None) -> Json:
        if form is None:
            return _failure("bad-request")
        secret, token = str(form.get("secret") or ""), str(form.get("response") or "")
        if not secret:
            return _failure("missing-input-secret")
        if secret not in TEST_SECRETS and secret not in self.widgets.values():
            return _failure("invalid-input-secret")
        if not token:
            return _failure("missing-input-response")
        if secret in TEST_SECRETS:
            return self._test_secret(secret, token)
        if token == DUMMY_TOKEN or len(token) > MAX_TOKEN_CHARACTERS:
            return _failure("invalid-input-response")  # "Production secret keys will reject the dummy token"
        with self._lock:
            return self._redeem(secret, token, str(form.get("idempotency_key") or ""))

    def _test_secret(self, secret: str, token: str) -> Json:
        if token != DUMMY_TOKEN:  # "Test secret keys: only accept the dummy token, reject real tokens"
            return _failure("invalid-input-response")
        if secret == FAILING_SECRET:
            return _failure("invalid-input-response")
        if secret == SPENT_SECRET:
            return _failure("timeout-or-duplicate")
        return _success(self.now(), "localhost", "test", "test-data")

    def _redeem(self, secret: str, token: str, idempotency_key: str) -> Json:
        found = self._tokens.get(token)
        if found is None or self.widgets.get(found.sitekey) != secret:
            return _failure("invalid-input-response")  # forged, or another widget's token
        if found.redeemed_with is not None:
            if idempotency_key and idempotency_key == found.redeemed_with and found.verdict is not None:
                return dict(found.verdict)  # a retry of the same validation answers the same
            return _failure("timeout-or-duplicate")
        if self.now() - found.issued_at > TOKEN_LIFETIME_SECONDS:
            return _failure("timeout-or-duplicate")  # "issued five minutes ago and is no longer valid"
        found.redeemed_with = idempotency_key
        found.verdict = _success(found.issued_at, found.hostname, found.action, found.cdata)
        return dict(found.verdict)


def _form(req: Request) -> Json | None:
    """The request's parameters, from a JSON or a form-encoded body; None when neither parses."""
    content_type = (req.header("content-type") or "").split(";")[0].strip().lower()
    try:
        if content_type == "application/json":
            body = json.loads(req.body or b"{}")
            return body if isinstance(body, dict) else None
        return {key: values[-1] for key, values in parse_qs(req.body.decode(), keep_blank_values=True).items()}
    except (ValueError, UnicodeDecodeError):
        return None


def _failure(code: str) -> Json:
    return {"success": False, "error-codes": [code]}


def _success(solved_at: float, hostname: str, action: str | None, cdata: str | None) -> Json:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(solved_at)) + f".{int(solved_at * 1000) % 1000:03d}Z"
    answer: Json = {"success": True, "challenge_ts": stamp, "hostname": hostname, "error-codes": []}
    if action is not None:
        answer["action"] = action
    if cdata is not None:
        answer["cdata"] = cdata
    return answer


class TurnstileControl(EmulatorControl):
    """EmulatorControl plus tokens (what solving the widget gives) and the tokens' clock."""

    def issue_token(
        self, sitekey: str = LOCAL_SITEKEY, *, hostname: str = "localhost", action: str | None = None
    ) -> str:
        body = {"sitekey": sitekey, "hostname": hostname, "action": action}
        return str(self.call("POST", "tokens", body)["token"])

    def advance_clock(self, seconds: float) -> None:
        self.call("POST", "clock", {"advance": seconds})


def main(argv: list[str] | None = None) -> int:
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--widget", action="append", default=[], help="SITEKEY=SECRET of a widget (repeatable)")

    def build(args: argparse.Namespace) -> EmulatorServer:
        widgets = dict(pair.split("=", 1) for pair in args.widget) or None
        return TurnstileEmulator(args.port, widgets=widgets)

    return run_cli(build, prog="turnstile-emulator", default_port=3040, argv=argv, add_arguments=add_arguments)


if __name__ == "__main__":
    sys.exit(main())
