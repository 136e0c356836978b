"""Local SendGrid v3 Mail Send emulator with an inspectable outbox and fault injection.

    emu = SendGridEmulator(templates={"d-receipt"}).start()
    SendGridAPIClient(api_key="SG.test", host=emu.url).send(mail)
    emu.outbox_for("don_123")

It also serves the Transactional Templates API (``/v3/templates``, :mod:`simulator.emulators.sendgrid_templates`):
a mail sent with a dynamic template created there is rendered with Handlebars.js, and its outbox
entry carries what the recipient reads (``rendered``: subject, HTML, text).

Run standalone with ``python -m simulator.emulators.sendgrid_emulator --port 3030``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any, ClassVar
from urllib.parse import parse_qs, quote

from simulator.emulators.base import EmulatorServer, run_cli
from simulator.emulators.control import EmulatorControl
from simulator.emulators.faults import Fault
from simulator.emulators.sendgrid_schema import INVALID_ADDRESS, mail_send_errors, sendgrid_error
from simulator.emulators.sendgrid_templates import PREFIX as TEMPLATES_PREFIX
from simulator.emulators.sendgrid_templates import TemplateStore, render_mail
from simulator.emulators.serving import Request, Response
from simulator.emulators.templating import HandlebarsRenderer

Json = dict[str, Any]
Errors = list[Json]

RATE_LIMIT = 600  # X-RateLimit-Limit advertised on injected 429s
# Mail Send docs ("Limitations"): the total message size, attachments included, must be under 30 MB.
MAX_PAYLOAD_BYTES = 30 * 1024 * 1024

# Bodies from SendGrid's OpenAPI document (twilio/sendgrid-oai tsg_mail_v3.json, PostMailSend401/403/413/500).
AUTHORIZATION_REQUIRED = "authorization required"
ACCESS_FORBIDDEN = "access forbidden"  # a valid key without the Mail Send scope
CONTENT_TOO_LARGE = "content too large"
# SendGrid's 4XX troubleshooting article: a key that is invalid, deleted or whose permissions changed.
INVALID_GRANT = "The provided authorization grant is invalid, expired, or revoked"
# SendGrid's "4XX API Errors" and "Maximum Credits Exceeded" support articles: an account out of credits
# gets 401 with this message (no field, no help) on every mail send, whatever the key.
CREDITS_EXCEEDED = "Maximum credits exceeded"
INVALID_TEMPLATE = "Must be a valid template."  # errors page, template_id
# Twilio error 60222 ("HTTP status: 403"); SendGrid's body names the field "from" and no help link.
UNVERIFIED_SENDER = (
    "The from address does not match a verified Sender Identity. Mail cannot be sent until this error is "
    "resolved. Visit https://sendgrid.com/docs/for-developers/sending-email/sender-identity/ to see the "
    "Sender Identity requirements"
)


def _errors_response(status: int, errors: Errors, headers: dict[str, str] | None = None) -> Response:
    return Response.json(status, {"errors": errors}, headers)


def _plain_error(status: int, message: str) -> Response:
    return _errors_response(status, [{"message": message, "field": None, "help": None}])


class SendGridEmulator(EmulatorServer):
    """SendGrid ``POST /v3/mail/send``: the published schema, SendGrid's documented errors, an outbox.

    The body is checked against SendGrid's own schema and rules (:mod:`simulator.emulators.sendgrid_schema`);
    then come what only an account knows: API keys and their scopes, dynamic templates, verified senders.
    """

    name: ClassVar[str] = "sendgrid-emulator"
    supported_faults: ClassVar[frozenset[str]] = frozenset({"latency", "http_error", "rate_limit", "reset", "timeout"})

    def __init__(
        self,
        port: int = 0,
        *,
        api_keys: set[str] | None = None,
        templates: set[str] | None = None,
        verified_senders: set[str] | None = None,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    ) -> None:
        """``api_keys``: accepted keys (None: any key starting ``SG.``). ``templates``: known
        dynamic template ids besides those created through the Templates API (None: any ``d-`` id).
        ``verified_senders``: from addresses or domains SendGrid will send for (None: any),
        otherwise 403 like an unverified sender."""
        super().__init__(port)
        self.api_keys = api_keys
        self.templates = templates
        self.verified_senders = verified_senders
        self.max_payload_bytes = max_payload_bytes
        # The account's templates outlive reset(), as they outlive any send; clear_templates() forgets them.
        self.template_store = TemplateStore()
        self._renderer = HandlebarsRenderer()
        self._render_lock = threading.Lock()  # one outbox reader renders at a time
        self._reset_state()

    def _reset_state(self) -> None:
        with self._lock:
            self._outbox: list[Json] = []
            # Accepted mails not rendered yet, with the template version active when each was sent. SendGrid's
            # 202 means "accepted and queued for delivery" (v3 Mail Send reference): it renders afterwards, so
            # the emulator renders when the outbox is read, not while the sender waits for its answer.
            self._unrendered: list[tuple[Json, Any]] = []
            self._rejected: set[str] = set()
            self._revoked_keys: set[str] = set()
            self._keys_without_mail_send: set[str] = set()
            self._unverified_senders: set[str] = set()
            self._credits_exhausted = False

    # -- public Python API ---------------------------------------------------------
    @property
    def outbox(self) -> list[Json]:
        """Every accepted mail, one entry per personalization (what SendGrid would deliver).

        Mails accepted since the last read are rendered now, one reader at a time, but outside the lock that
        sends take: rendering a thousand statements takes seconds, and sends held up behind it timed out
        after being accepted (and were sent again, as a client must when it cannot know)."""
        with self._render_lock:
            while True:
                with self._lock:
                    pending, self._unrendered = self._unrendered, []
                    if not pending:  # a mail accepted while the others rendered is rendered before the copy
                        return [json.loads(json.dumps(m)) for m in self._outbox]
                for entry, version in pending:
                    rendered = render_mail(version, entry["dynamic_template_data"], self._renderer)
                    with self._lock:
                        entry["rendered"] = rendered

    def outbox_for(self, donation_id: str) -> list[Json]:
        return [m for m in self.outbox if m["custom_args"].get("donation_id") == donation_id]

    def reject_recipient(self, email_or_domain: str) -> None:
        """Make SendGrid refuse this address (or every address at this domain) with a 400."""
        with self._lock:
            self._rejected.add(email_or_domain.lower())

    def clear_rejections(self) -> None:
        with self._lock:
            self._rejected.clear()

    def revoke_key(self, key: str) -> None:
        """The key was deleted in SendGrid's console: every request with it gets 401 until reset()."""
        with self._lock:
            self._revoked_keys.add(key)

    def remove_mail_send_scope(self, key: str) -> None:
        """The key stays valid but loses the Mail Send permission: 403 ``access forbidden`` until reset()."""
        with self._lock:
            self._keys_without_mail_send.add(key)

    def exhaust_credits(self, _value: str = "") -> None:
        """The account has used its plan's credits: every mail send gets 401 ``Maximum credits exceeded``
        until restore_credits() (a plan upgrade, or the free plan's daily reset) or reset()."""
        with self._lock:
            self._credits_exhausted = True

    def restore_credits(self, _value: str = "") -> None:
        with self._lock:
            self._credits_exhausted = False

    def unverify_sender(self, email_or_domain: str) -> None:
        """The sender identity (address or domain) is no longer verified: 403 until reset()."""
        with self._lock:
            self._unverified_senders.add(email_or_domain.lower())

    def clear_templates(self) -> None:
        with self._lock:
            self.template_store = TemplateStore()

    def stop(self) -> None:
        super().stop()
        self._renderer.close()

    def snapshot(self) -> Json:
        with self._lock:
            templates = [
                {"id": t.id, "name": t.name, "generation": t.generation, "versions": len(t.versions)}
                for t in self.template_store.templates.values()
            ]
            return {"outbox": self.outbox, "rejected_recipients": sorted(self._rejected), "templates": templates}

    # -- HTTP --------------------------------------------------------------------------
    def route_name(self, req: Request) -> str:
        return f"{req.method} {req.path.rstrip('/')}"

    def handle_control(self, req: Request, sub: str) -> Response | None:
        if sub == "outbox" and req.method == "GET":
            donation_id = parse_qs(req.query).get("donation_id", [None])[-1]
            mails = self.outbox if donation_id is None else self.outbox_for(donation_id)
            return Response.json(200, {"outbox": mails})
        if sub == "rejections" and req.method == "POST":
            self.reject_recipient(str((req.json() or {})["recipient"]))
            return Response.json(200, {"ok": True})
        if sub == "rejections" and req.method == "DELETE":
            self.clear_rejections()
            return Response.json(200, {"ok": True})
        if sub == "account" and req.method == "POST":
            return self._account_control(req.json() or {})
        return None

    def _account_control(self, change: Json) -> Response:
        actions = {
            "revoke_key": self.revoke_key,
            "remove_mail_send_scope": self.remove_mail_send_scope,
            "unverify_sender": self.unverify_sender,
            "exhaust_credits": self.exhaust_credits,
            "restore_credits": self.restore_credits,
        }
        action = actions.get(str(change.get("action")))
        if action is None:
            return Response.json(400, {"error": f"action must be one of {sorted(actions)}"})
        action(str(change.get("value", "")))
        return Response.json(200, {"ok": True})

    def fault_response(self, fault: Fault, req: Request) -> Response:
        if fault.kind == "rate_limit":
            # Rate limits page: a 429 carries X-RateLimit-Limit/-Remaining/-Reset and "too many requests".
            headers = {
                "X-RateLimit-Limit": str(RATE_LIMIT),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(int(time.time()) + 1),
            }
            return _errors_response(429, [{"field": None, "message": "too many requests"}], headers)
        return self.internal_error(fault.status or 500)

    def internal_error(self, status: int = 500) -> Response:
        return _errors_response(status, [{"field": None, "message": "internal server error"}])

    def handle_api(self, req: Request) -> Response:
        if req.path.rstrip("/") == TEMPLATES_PREFIX or req.path.startswith(f"{TEMPLATES_PREFIX}/"):
            denied = self._check_auth(req.header("authorization"))
            if denied is not None:
                return denied
            with self._lock:
                return self.template_store.handle(req)
        if req.path.rstrip("/") != "/v3/mail/send":
            return _plain_error(404, "not found")
        if req.method != "POST":
            return _plain_error(405, "method not allowed")
        denied = self._check_auth(req.header("authorization"))
        if denied is not None:
            return denied
        if len(req.body) > self.max_payload_bytes:
            return _plain_error(413, CONTENT_TOO_LARGE)
        try:
            mail = json.loads(req.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _errors_response(400, [sendgrid_error("Bad Request", None)])
        with self._lock:
            return self._send(mail)

    def _check_auth(self, header: str | None) -> Response | None:
        if not header:
            return _plain_error(401, AUTHORIZATION_REQUIRED)
        scheme, _, key = header.partition(" ")
        valid = key in self.api_keys if self.api_keys is not None else key.startswith("SG.")
        with self._lock:
            if scheme.lower() != "bearer" or not valid or key in self._revoked_keys:
                return _plain_error(401, INVALID_GRANT)
            if key in self._keys_without_mail_send:
                return _plain_error(403, ACCESS_FORBIDDEN)
        return None

    def _send(self, mail: Any) -> Response:
        if self._credits_exhausted:
            return _plain_error(401, CREDITS_EXCEEDED)
        errors = mail_send_errors(mail) or self._account_errors(mail)
        if errors:
            return _errors_response(400, errors)
        if not self._sender_verified(mail["from"]["email"]):
            return _errors_response(403, [{"message": UNVERIFIED_SENDER, "field": "from", "help": None}])
        message_id = secrets.token_urlsafe(16)  # 22 url-safe characters, like SendGrid's ids
        if _sandboxed(mail):  # sandbox mode validates but never delivers
            return Response(200)
        entries = _outbox_entries(mail, message_id)
        version = self.template_store.active_version(str(mail.get("template_id")))
        for entry in entries:
            entry["rendered"] = None
            self._unrendered.append((entry, version))
        self._outbox.extend(entries)
        return Response(202, b"", {"X-Message-Id": message_id})

    # -- what only the account knows ------------------------------------------------------
    def _account_errors(self, mail: Json) -> Errors:
        errors: Errors = []
        if "template_id" in mail and not self._known_template(mail["template_id"]):
            errors.append(sendgrid_error(INVALID_TEMPLATE, "template_id"))
        for i, personalization in enumerate(mail["personalizations"]):
            for kind in ("to", "cc", "bcc"):
                for j, recipient in enumerate(personalization.get(kind) or []):
                    if self._rejected_address(recipient["email"]):
                        errors.append(sendgrid_error(INVALID_ADDRESS, f"personalizations.{i}.{kind}.{j}.email"))
        return errors

    def _known_template(self, template_id: str) -> bool:
        if template_id in self.template_store.templates:
            return True
        if self.templates is None:
            return template_id.startswith("d-") and len(template_id) > 2
        return template_id in self.templates

    def _rejected_address(self, email: str) -> bool:
        email = email.lower()
        return email in self._rejected or email.rsplit("@", 1)[-1] in self._rejected

    def _sender_verified(self, email: str) -> bool:
        email = email.lower()
        domain = email.rsplit("@", 1)[-1]
        if email in self._unverified_senders or domain in self._unverified_senders:
            return False
        if self.verified_senders is None:
            return True
        allowed = {s.lower() for s in self.verified_senders}
        return email in allowed or domain in allowed


def _sandboxed(mail: Json) -> bool:
    settings = mail.get("mail_settings") or {}
    return bool(isinstance(settings, dict) and (settings.get("sandbox_mode") or {}).get("enable"))


def _emails(entries: Iterable[Any] | None) -> list[str]:
    return [e["email"] for e in entries or [] if isinstance(e, dict)]


def _outbox_entries(mail: Json, message_id: str) -> list[Json]:
    received_at = time.time()
    entries = []
    for index, p in enumerate(mail["personalizations"]):
        entries.append(
            {
                "message_id": message_id,
                "personalization_index": index,
                "from": mail["from"],
                "to": _emails(p.get("to")),
                "cc": _emails(p.get("cc")),
                "bcc": _emails(p.get("bcc")),
                "reply_to": mail.get("reply_to"),
                "template_id": mail.get("template_id"),
                "dynamic_template_data": p.get("dynamic_template_data") or {},
                # Personalization-level custom args override message-level ones, as in SendGrid.
                "custom_args": {**(mail.get("custom_args") or {}), **(p.get("custom_args") or {})},
                "subject": p.get("subject") or mail.get("subject"),
                "content": mail.get("content") or [],
                "categories": mail.get("categories") or [],
                "received_at": received_at,
            }
        )
    return entries


# -- cross-process client ------------------------------------------------------------
class SendGridControl(EmulatorControl):
    """EmulatorControl plus the SendGrid outbox and recipient-rejection routes."""

    def outbox(self, donation_id: str | None = None) -> list[Json]:
        path = "outbox" if donation_id is None else f"outbox?donation_id={quote(donation_id)}"
        return list(self.call("GET", path)["outbox"])

    def reject_recipient(self, email_or_domain: str) -> None:
        self.call("POST", "rejections", {"recipient": email_or_domain})

    def clear_rejections(self) -> None:
        self.call("DELETE", "rejections")

    def revoke_key(self, key: str) -> None:
        self.call("POST", "account", {"action": "revoke_key", "value": key})

    def remove_mail_send_scope(self, key: str) -> None:
        self.call("POST", "account", {"action": "remove_mail_send_scope", "value": key})

    def exhaust_credits(self) -> None:
        self.call("POST", "account", {"action": "exhaust_credits"})

    def restore_credits(self) -> None:
        self.call("POST", "account", {"action": "restore_credits"})

    def unverify_sender(self, email_or_domain: str) -> None:
        self.call("POST", "account", {"action": "unverify_sender", "value": email_or_domain})


def main(argv: list[str] | None = None) -> int:
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--api-key", action="append", dest="api_keys", help="accepted key (repeatable)")
        parser.add_argument("--template", action="append", dest="templates", help="known template id")
        parser.add_argument("--verified-sender", action="append", dest="senders", help="address or domain")

    def build(args: argparse.Namespace) -> EmulatorServer:
        return SendGridEmulator(
            args.port,
            api_keys=set(args.api_keys) if args.api_keys else None,
            templates=set(args.templates) if args.templates else None,
            verified_senders=set(args.senders) if args.senders else None,
        )

    return run_cli(build, prog="sendgrid-emulator", default_port=3030, argv=argv, add_arguments=add_arguments)


if __name__ == "__main__":
    sys.exit(main())
