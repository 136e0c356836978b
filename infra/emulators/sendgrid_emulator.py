"""Local SendGrid v3 Mail Send emulator with an inspectable outbox and fault injection.

    emu = SendGridEmulator(templates={"d-receipt"}).start()
    SendGridAPIClient(api_key="SG.test", host=emu.url).send(mail)
    emu.outbox_for("don_123")

Run standalone with ``python -m infra.emulators.sendgrid_emulator --port 3030``.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import sys
import time
from collections.abc import Iterable
from typing import Any, ClassVar
from urllib.parse import parse_qs, quote

from infra.emulators.base import EmulatorControl, EmulatorServer, Request, Response, run_cli
from infra.emulators.faults import Fault

Json = dict[str, Any]
Errors = list[Json]

_EMAIL_RE = re.compile(r"[^@\s<>(),;:\"\[\]]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
_HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"
MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
RATE_LIMIT = 600  # X-RateLimit-Limit advertised on injected 429s

INVALID_GRANT = "The provided authorization grant is invalid, expired, or revoked"
INVALID_ADDRESS = "Does not contain a valid address."
INVALID_TEMPLATE = "The template_id is not a valid template ID."
UNVERIFIED_SENDER = (
    "The from address does not match a verified Sender Identity. Mail cannot be sent until this error is "
    "resolved. Visit https://sendgrid.com/docs/for-developers/sending-email/sender-identity/ to see the "
    "Sender Identity requirements"
)


def _error(message: str, field: str | None, anchor: str | None) -> Json:
    return {"message": message, "field": field, "help": f"{_HELP}#{anchor}" if anchor else None}


def _errors_response(status: int, errors: Errors, headers: dict[str, str] | None = None) -> Response:
    return Response.json(status, {"errors": errors}, headers)


def _valid_email(value: Any) -> bool:
    return isinstance(value, str) and _EMAIL_RE.fullmatch(value) is not None


class SendGridEmulator(EmulatorServer):
    """SendGrid ``POST /v3/mail/send`` with SendGrid's validation, auth and error bodies."""

    name: ClassVar[str] = "sendgrid-emulator"
    supported_faults: ClassVar[frozenset[str]] = frozenset({"latency", "http_error", "rate_limit", "reset", "timeout"})

    def __init__(
        self,
        port: int = 0,
        *,
        api_keys: set[str] | None = None,
        templates: set[str] | None = None,
        verified_senders: set[str] | None = None,
    ) -> None:
        """``api_keys``: accepted keys (None: any key starting ``SG.``). ``templates``: known
        dynamic template ids (None: any ``d-`` id). ``verified_senders``: from addresses or
        domains SendGrid will send for (None: any), otherwise 403 like an unverified sender."""
        super().__init__(port)
        self.api_keys = api_keys
        self.templates = templates
        self.verified_senders = verified_senders
        self._reset_state()

    def _reset_state(self) -> None:
        with self._lock:
            self._outbox: list[Json] = []
            self._rejected: set[str] = set()

    # -- public Python API ---------------------------------------------------------
    @property
    def outbox(self) -> list[Json]:
        """Every accepted mail, one entry per personalization (what SendGrid would deliver)."""
        with self._lock:
            return [json.loads(json.dumps(m)) for m in self._outbox]

    def outbox_for(self, donation_id: str) -> list[Json]:
        return [m for m in self.outbox if m["custom_args"].get("donation_id") == donation_id]

    def reject_recipient(self, email_or_domain: str) -> None:
        """Make SendGrid refuse this address (or every address at this domain) with a 400."""
        with self._lock:
            self._rejected.add(email_or_domain.lower())

    def clear_rejections(self) -> None:
        with self._lock:
            self._rejected.clear()

    def snapshot(self) -> Json:
        with self._lock:
            return {"outbox": self.outbox, "rejected_recipients": sorted(self._rejected)}

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
        return None

    def fault_response(self, fault: Fault, req: Request) -> Response:
        if fault.kind == "rate_limit":
            headers = {
                "X-RateLimit-Limit": str(RATE_LIMIT),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(int(time.time()) + 1),
            }
            return _errors_response(429, [{"field": None, "message": "too many requests"}], headers)
        return _errors_response(fault.status or 500, [{"field": None, "message": "internal error"}])

    def internal_error(self) -> Response:
        return _errors_response(500, [{"field": None, "message": "internal error"}])

    def handle_api(self, req: Request) -> Response:
        if req.method != "POST" or req.path.rstrip("/") != "/v3/mail/send":
            return _errors_response(404, [{"field": None, "message": "resource not found"}])
        denied = self._check_auth(req.header("authorization"))
        if denied is not None:
            return denied
        try:
            mail = json.loads(req.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _errors_response(400, [_error("Bad Request", None, None)])
        if not isinstance(mail, dict):
            return _errors_response(400, [_error("Bad Request", None, None)])
        with self._lock:
            return self._send(mail)

    def _check_auth(self, header: str | None) -> Response | None:
        if not header:
            return _errors_response(401, [{"field": None, "message": "authorization required", "help": None}])
        scheme, _, key = header.partition(" ")
        valid = key in self.api_keys if self.api_keys is not None else key.startswith("SG.")
        if scheme.lower() != "bearer" or not valid:
            return _errors_response(401, [{"field": None, "message": INVALID_GRANT, "help": None}])
        return None

    def _send(self, mail: Json) -> Response:
        errors = self._validate(mail)
        if errors:
            return _errors_response(400, errors)
        if not self._sender_verified(mail["from"]["email"]):
            return _errors_response(403, [{"field": "from", "message": UNVERIFIED_SENDER, "help": None}])
        message_id = secrets.token_urlsafe(16)  # 22 url-safe characters, like SendGrid's ids
        if _sandboxed(mail):  # sandbox mode validates but never delivers
            return Response(200)
        self._outbox.extend(_outbox_entries(mail, message_id))
        return Response(202, b"", {"X-Message-Id": message_id})

    # -- validation ----------------------------------------------------------------------
    def _validate(self, mail: Json) -> Errors:
        errors = _validate_from(mail.get("from"))
        errors += self._validate_personalizations(mail.get("personalizations"))
        errors += self._validate_body(mail)
        errors += _validate_custom_args(mail.get("custom_args"), "custom_args")
        return errors

    def _validate_personalizations(self, raw: Any) -> Errors:
        if not isinstance(raw, list) or not raw:
            message = "The personalizations field is required and must have at least one personalization."
            return [_error(message, "personalizations", "-Personalizations-Errors")]
        if len(raw) > MAX_PERSONALIZATIONS:
            message = f"The personalizations field may have at most {MAX_PERSONALIZATIONS} personalizations."
            return [_error(message, "personalizations", "-Personalizations-Errors")]
        errors: Errors = []
        for i, p in enumerate(raw):
            errors += self._validate_personalization(i, p if isinstance(p, dict) else {})
        return errors

    def _validate_personalization(self, i: int, p: Json) -> Errors:
        to = p.get("to")
        if not isinstance(to, list) or not to:
            message = (
                "The to array is required for all personalization objects, and must have at least one email "
                "object with a valid email address."
            )
            return [_error(message, f"personalizations.{i}.to", "message.personalizations.to")]
        errors: Errors = []
        seen: set[str] = set()
        for kind in ("to", "cc", "bcc"):
            entries = p.get(kind) or []
            for j, entry in enumerate(entries if isinstance(entries, list) else []):
                errors += self._validate_recipient(f"personalizations.{i}.{kind}.{j}.email", entry, seen)
        if len(seen) > MAX_RECIPIENTS:
            message = f"The total number of recipients must be no more than {MAX_RECIPIENTS}."
            errors.append(_error(message, f"personalizations.{i}", "message.recipient-limit"))
        errors += _validate_custom_args(p.get("custom_args"), f"personalizations.{i}.custom_args")
        return errors

    def _validate_recipient(self, field: str, entry: Any, seen: set[str]) -> Errors:
        email = entry.get("email") if isinstance(entry, dict) else None
        if not _valid_email(email) or self._rejected_address(str(email)):
            return [_error(INVALID_ADDRESS, field, "message.personalizations.to")]
        assert isinstance(email, str)
        if email.lower() in seen:
            message = (
                "Each email address in the personalization block should be unique between to, cc, and bcc. "
                f"We found the first duplicate instance of [{email}] in the {field.rsplit('.', 2)[0]} field."
            )
            return [_error(message, field, "message.recipient-errors")]
        seen.add(email.lower())
        return []

    def _validate_body(self, mail: Json) -> Errors:
        template_id = mail.get("template_id")
        if template_id is not None:
            if not self._known_template(template_id):
                return [_error(INVALID_TEMPLATE, "template_id", "message.template_id")]
            return _validate_content(mail["content"]) if "content" in mail else []
        errors: Errors = []
        if not _has_subject(mail):
            message = (
                "The subject is required. You can get around this requirement if you use a template with a "
                "subject defined or if every personalization has a subject defined."
            )
            errors.append(_error(message, "subject", "message.subject"))
        if not mail.get("content"):
            message = (
                "Unless a valid template_id is provided, the content parameter is required. There must be at "
                "least one defined content block. We typically suggest both text/plain and text/html blocks "
                "are included, but only one block is required."
            )
            return [*errors, _error(message, "content", "message.content")]
        return errors + _validate_content(mail["content"])

    def _known_template(self, template_id: Any) -> bool:
        if not isinstance(template_id, str):
            return False
        if self.templates is None:
            return template_id.startswith("d-") and len(template_id) > 2
        return template_id in self.templates

    def _rejected_address(self, email: str) -> bool:
        email = email.lower()
        return email in self._rejected or email.rsplit("@", 1)[-1] in self._rejected

    def _sender_verified(self, email: str) -> bool:
        if self.verified_senders is None:
            return True
        allowed = {s.lower() for s in self.verified_senders}
        return email.lower() in allowed or email.lower().rsplit("@", 1)[-1] in allowed


def _validate_from(raw: Any) -> Errors:
    email = raw.get("email") if isinstance(raw, dict) else None
    if email is None:
        message = (
            "The from object must be provided for every email send. It is an object that requires the email "
            'parameter, but may also contain a name parameter.  e.g. {"email" : "example@example.com"}  or '
            '{"email" : "example@example.com", "name" : "Example Recipient"}.'
        )
        return [_error(message, "from.email", "message.from")]
    if not _valid_email(email):
        return [_error("The from email does not contain a valid address.", "from.email", "message.from")]
    return []


def _validate_content(raw: Any) -> Errors:
    if not isinstance(raw, list):
        return [_error("The content field must be an array.", "content", "message.content")]
    errors: Errors = []
    for i, block in enumerate(raw):
        block = block if isinstance(block, dict) else {}
        if not isinstance(block.get("type"), str) or not block["type"]:
            message = "The content type must be a string at least one character in length."
            errors.append(_error(message, f"content.{i}.type", "message.content.type"))
        if not isinstance(block.get("value"), str) or not block["value"]:
            message = "The content value must be a string at least one character in length."
            errors.append(_error(message, f"content.{i}.value", "message.content.value"))
    types = [b.get("type") for b in raw if isinstance(b, dict)]
    if "text/plain" in types and types.index("text/plain") != 0:
        message = "If present, text/plain must be first, followed by text/html, followed by any other content."
        errors.append(_error(message, "content", "message.content.type"))
    return errors


def _validate_custom_args(raw: Any, field: str) -> Errors:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        return [_error("Invalid type. Expected: object.", field, "message.custom_args")]
    return [
        _error(f"Invalid type. Expected: string, given: {type(v).__name__}.", f"{field}.{k}", "message.custom_args")
        for k, v in raw.items()
        if not isinstance(v, str)
    ]


def _has_subject(mail: Json) -> bool:
    if isinstance(mail.get("subject"), str) and mail["subject"]:
        return True
    persons = mail.get("personalizations") or []
    return bool(persons) and all(isinstance(p, dict) and p.get("subject") for p in persons)


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
