"""SendGrid's v3 Mail Send request body as SendGrid publishes it, and the documented rules around it.

Source of the schema: SendGrid's OpenAPI 3.1 document for the Mail API, github.com/twilio/sendgrid-oai,
``spec/json/tsg_mail_v3.json`` at commit dbe0e0d2e67a0c3c55b222d54df2acda2b9027a7 (2026-01-22),
``components.requestBodies.PostMailSend``. ``sendgrid_mail_send.schema.json`` beside this module is that
schema alone, its ``$ref``s inlined and descriptions and examples dropped; regenerate it with
``python -m simulator.emulators.sendgrid_schema path/to/tsg_mail_v3.json``. (The older sendgrid/sendgrid-oai
spec requires ``subject`` and ``content`` even with a template, which its own errors page contradicts.)

The published schema is looser than the API in places that SendGrid's "v3 Mail Send errors" page
(docs.sendgrid.com/api-reference/mail-send/errors; source: sendgrid/docs,
content/docs/API_Reference/Web_API_v3/Mail/errors.md) spells out: :data:`CORRECTIONS` tightens each, naming
the documented error. Rules that span fields (a template or content, recipients per request, ...) are
checked by :func:`rule_errors`. Errors come back in SendGrid's shape: ``{"message", "field", "help"}``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email
from jsonschema import Draft202012Validator, FormatChecker, ValidationError

Json = dict[str, Any]
Errors = list[Json]

SCHEMA_PATH = Path(__file__).with_name("sendgrid_mail_send.schema.json")
SOURCE = "twilio/sendgrid-oai spec/json/tsg_mail_v3.json @ dbe0e0d2e67a0c3c55b222d54df2acda2b9027a7"
# SendGrid's answers link each error to its row on the errors page, e.g. ...errors.html#message.personalizations.to
HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"
MAX_RECIPIENTS = 1000  # "There is a limit of 1000 total recipients (to + cc + bcc) per request."
MAX_EMAIL_LENGTH = 320  # "The To email exceeds the maximum total length of 320 characters" (same for from, cc, ...)

# Messages from the errors page (or, where it gives none, the API's own answer as SendGrid's SDK issues quote it).
NO_PERSONALIZATION = "The personalizations field is required and must have at least one personalization."
TOO_MANY_PERSONALIZATIONS = (
    "The personalization block is limited to 1000 personalizations per API request. Please consider splitting "
    "this into multiple requests and resending your request."
)
TO_REQUIRED = (
    "The to array is required for all personalization objects, and must have at least one email object with a "
    "valid email address."
)
INVALID_ADDRESS = "Does not contain a valid address."
FROM_REQUIRED = (
    "The from object must be provided for every email send. It is an object that requires the email parameter, "
    'but may also contain a name parameter.  e.g. {"email" : "example@example.com"}  or '
    '{"email" : "example@example.com", "name" : "Example Recipient"}.'
)
FROM_INVALID = "The from email does not contain a valid address."
CUSTOM_ARGS_STRINGS = "All values of custom arguments object must be strings"
CUSTOM_ARGS_EMPTY = "custom_args cannot be empty."
TOO_MANY_RECIPIENTS = "There is a limit of 1000 total recipients (to + cc + bcc) per request."
CONTENT_REQUIRED = (
    "The content param is required unless you are using a transactional template and have defined a template_ID."
)
NO_CONTENT_BLOCK = (
    "There must be at least one defined content block. We typically suggest both text/plain and text/html blocks "
    "are included, but only one block is required."
)
CONTENT_ORDER = (
    "Following RFC 1341, section 7.2, if either text/html or text/plain are to be sent in your email: text/plain "
    "needs to be first, followed by text/html, followed by any other content."
)
SUBJECT_REQUIRED = (
    "The subject is required. You can get around this requirement if you use a template with a subject defined "
    "or if every personalization has a subject defined."
)
# The API's answer quoted in sendgrid/sendgrid-ruby#299; the schema's template_id text: a "d-" template works
# with dynamic_template_data, any other with substitutions.
SUBSTITUTIONS_WITH_DYNAMIC_TEMPLATE = "Substitutions may not be used with dynamic templating"
REPLY_TO_BOTH = "You can use either the reply_to property or reply_to_list property but not both."


def sendgrid_error(message: str, field: str | None) -> Json:
    """One entry of SendGrid's ``errors`` array; ``help`` links the errors page table of the field."""
    anchor = _anchor(field).removesuffix(".email")
    for free_form in ("custom_args", "headers", "substitutions"):  # their keys are ours, not SendGrid's rows
        head, found, _ = anchor.partition(free_form)
        anchor = head + found if found else anchor
    return {"message": message, "field": field, "help": f"{HELP}#message.{anchor}" if anchor else None}


# -- the published schema and its documented corrections ----------------------------------------------------------


def _email_objects(node: Any) -> Iterator[Json]:
    """Every inlined email object (the spec's MailFrom / MailTo components)."""
    if isinstance(node, dict):
        if node.get("title") in {"From Email Object", "To Email Object"}:
            yield node
        for value in node.values():
            yield from _email_objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _email_objects(value)


def _string_map(minimum: int = 0) -> Json:
    return {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": minimum}


def _custom_args_are_string_maps(schema: Json) -> None:
    # The spec types message-level custom_args as a string; the errors page: "All values of custom arguments
    # object must be strings", "custom_args cannot be empty" (the API answers a string with "Invalid type.
    # Expected: object, given: string."). The same holds in each personalization.
    schema["properties"]["custom_args"] = _string_map(1)
    schema["properties"]["personalizations"]["items"]["properties"]["custom_args"] = _string_map(1)


def _at_least_one_personalization_and_recipient(schema: Json) -> None:
    # "You must have at least one personalization." / "The to parameter is required for all personalization
    # objects." (every personalization needs at least one valid "to").
    personalizations = schema["properties"]["personalizations"]
    personalizations["minItems"] = 1
    personalizations["items"]["properties"]["to"]["minItems"] = 1


def _at_least_one_content_block(schema: Json) -> None:
    # "There must be at least one defined content block."
    schema["properties"]["content"]["minItems"] = 1


def _header_values_are_strings(schema: Json) -> None:
    # "The header values must be strings." (message level and per personalization)
    schema["properties"]["headers"] = _string_map()
    schema["properties"]["personalizations"]["items"]["properties"]["headers"] = _string_map()


def _email_length(schema: Json) -> None:
    # "The From email exceeds the maximum total length of 320 characters" (and To, CC, BCC, Reply-To).
    for email_object in _email_objects(schema):
        email_object["properties"]["email"]["maxLength"] = MAX_EMAIL_LENGTH


CORRECTIONS: tuple[Callable[[Json], None], ...] = (
    _custom_args_are_string_maps,
    _at_least_one_personalization_and_recipient,
    _at_least_one_content_block,
    _header_values_are_strings,
    _email_length,
)


@cache
def _validator() -> Draft202012Validator:
    schema: Json = json.loads(SCHEMA_PATH.read_text())
    for correct in CORRECTIONS:
        correct(schema)
    formats = FormatChecker(formats=())
    formats.checks("email", raises=EmailNotValidError)(_is_email)
    # OpenAPI 3.1 schemas are JSON Schema 2020-12, whose "format" only annotates unless a checker is given.
    return Draft202012Validator(schema, format_checker=formats)


def _is_email(value: object) -> bool:
    # RFC 5322 syntax (the email-validator library), no DNS lookup; SendGrid does not publish its own rule.
    if isinstance(value, str):
        validate_email(value, check_deliverability=False)
    return True


# -- errors in SendGrid's shape ---------------------------------------------------------------------------------


def schema_errors(mail: Any) -> Errors:
    """The schema's verdict on a mail send body, one SendGrid error per violation (in document order)."""
    found = sorted(_validator().iter_errors(mail), key=lambda e: [str(p) for p in e.absolute_path])
    errors: Errors = []
    for error in found:
        for field in _fields(error):
            errors.append(sendgrid_error(_message(_anchor(field), error), field))
    return _unique(errors)


def _fields(error: ValidationError) -> list[str | None]:
    """The dotted field(s) SendGrid names, e.g. personalizations.0.to.0.email; each missing one for "required"."""
    path = [str(part) for part in error.absolute_path]
    if error.validator == "required":
        present = error.instance if isinstance(error.instance, dict) else {}
        required = error.validator_value if isinstance(error.validator_value, list) else []
        return [".".join([*path, name]) for name in required if name not in present]
    return [".".join(path) or None]


def _anchor(field: str | None) -> str:
    return ".".join(part for part in (field or "").split(".") if part and not part.isdigit())


def _unique(errors: Errors) -> Errors:
    seen: set[tuple[str, str | None]] = set()
    unique = []
    for error in errors:
        key = (error["message"], error["field"])
        if key not in seen:
            seen.add(key)
            unique.append(error)
    return unique


def _message(anchor: str, error: ValidationError) -> str:
    """The errors page's message for this field where it has one, else the API's generic wording."""
    keyword = str(error.validator)
    if anchor == "personalizations":
        return TOO_MANY_PERSONALIZATIONS if keyword == "maxItems" else NO_PERSONALIZATION
    if anchor == "personalizations.to":
        return TO_REQUIRED
    if anchor.startswith("personalizations.") and anchor.endswith((".to.email", ".cc.email", ".bcc.email")):
        return INVALID_ADDRESS
    if anchor == "from":
        return FROM_REQUIRED
    if anchor == "from.email":
        return FROM_INVALID
    if anchor.endswith("custom_args"):
        return CUSTOM_ARGS_EMPTY if keyword == "minProperties" else CUSTOM_ARGS_STRINGS
    if anchor.startswith("custom_args.") or ".custom_args." in anchor:
        return CUSTOM_ARGS_STRINGS
    if anchor == "content" and keyword == "minItems":
        return NO_CONTENT_BLOCK
    if keyword == "type":
        return f"Invalid type. Expected: {_expected(error)}, given: {_json_type(error.instance)}."
    return f"The {anchor or 'request body'} does not match the v3 Mail Send schema ({keyword})."


def _expected(error: ValidationError) -> str:
    expected = error.validator_value
    return ", ".join(expected) if isinstance(expected, list) else str(expected)


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


# -- documented rules a schema does not carry ---------------------------------------------------------------------


def rule_errors(mail: Json) -> Errors:
    """The errors page's cross-field rules, for a body the schema accepted."""
    errors = _recipient_errors(mail["personalizations"])
    errors += _content_errors(mail)
    if not _has_subject(mail):
        errors.append(sendgrid_error(SUBJECT_REQUIRED, "subject"))
    errors += _dynamic_template_errors(mail)
    if "reply_to" in mail and "reply_to_list" in mail:
        errors.append(sendgrid_error(REPLY_TO_BOTH, "reply_to_list"))
    return errors


def mail_send_errors(mail: Any) -> Errors:
    """Everything SendGrid documents as a 400 for this body (account-specific checks aside)."""
    return schema_errors(mail) or rule_errors(mail)


def _recipient_errors(personalizations: list[Json]) -> Errors:
    errors: Errors = []
    total = 0
    for i, personalization in enumerate(personalizations):
        seen: set[str] = set()
        for kind in ("to", "cc", "bcc"):
            for j, recipient in enumerate(personalization.get(kind) or []):
                total += 1
                email = str(recipient["email"]).lower()
                if email in seen:
                    # "Each email address in the personalization block should be unique between to, cc, and bcc."
                    message = (
                        "Each email address in the personalization block should be unique between to, cc, and bcc. "
                        f"We found the first duplicate instance of [{recipient['email']}] in the "
                        f"personalizations.{i}.{kind} field."
                    )
                    errors.append(sendgrid_error(message, f"personalizations.{i}.{kind}.{j}.email"))
                seen.add(email)
    if total > MAX_RECIPIENTS:
        errors.append(sendgrid_error(TOO_MANY_RECIPIENTS, "personalizations"))
    return errors


def _content_errors(mail: Json) -> Errors:
    if "content" not in mail:
        return [] if mail.get("template_id") else [sendgrid_error(CONTENT_REQUIRED, "content")]
    types = [block["type"] for block in mail["content"]]
    if "text/plain" in types and types.index("text/plain") != 0:
        return [sendgrid_error(CONTENT_ORDER, "content")]
    if "text/html" in types and "text/plain" in types and types.index("text/html") < types.index("text/plain"):
        return [sendgrid_error(CONTENT_ORDER, "content")]
    return []


def _has_subject(mail: Json) -> bool:
    # A template brings its own subject; otherwise a global one, or one in every personalization.
    if mail.get("template_id") or mail.get("subject"):
        return True
    return all(p.get("subject") for p in mail["personalizations"])


def _dynamic_template_errors(mail: Json) -> Errors:
    if not str(mail.get("template_id") or "").startswith("d-"):
        return []
    return [
        sendgrid_error(SUBSTITUTIONS_WITH_DYNAMIC_TEMPLATE, f"personalizations.{i}.substitutions")
        for i, p in enumerate(mail["personalizations"])
        if "substitutions" in p
    ]


# -- regenerating the derived schema --------------------------------------------------------------------------------

_DROPPED_KEYS = frozenset({"description", "examples", "example"})


def inline_refs(spec: Json, node: Any) -> Any:
    """``node`` of SendGrid's OpenAPI document ``spec`` with every ``$ref`` inlined and descriptions and
    examples dropped (shared by the mail send and the Templates API schema extractors)."""
    if isinstance(node, list):
        return [inline_refs(spec, item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return inline_refs(spec, {**target, **rest})
    return {key: inline_refs(spec, value) for key, value in node.items() if key not in _DROPPED_KEYS}


def request_schema(spec: Json, path: str, method: str) -> Json:
    """The JSON body schema of one operation of SendGrid's OpenAPI document ``spec`` (OpenAPI 3.1 schemas are
    JSON Schema 2020-12), ``$ref``s inlined."""
    body = inline_refs(spec, spec["paths"][path][method]["requestBody"])
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **body["content"]["application/json"]["schema"]}


def extract_request_schema(spec: Json) -> Json:
    """The POST /v3/mail/send request body schema of SendGrid's OpenAPI document, ``$ref``s inlined."""
    schema = request_schema(spec, "/v3/mail/send", "post")
    return {
        "$schema": schema["$schema"],
        "$comment": f"Derived from {SOURCE}: components.requestBodies.PostMailSend, $refs inlined, "
        "descriptions and examples dropped. Regenerate with python -m simulator.emulators.sendgrid_schema.",
        **schema,
    }


def regenerate(argv: list[str] | None, usage: str, extract: Callable[[Json], Json], target: Path) -> int:
    """A schema module's command (``usage``: how it is called): writes ``extract`` of the OpenAPI document named
    on the command line to ``target``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: {usage}", file=sys.stderr)
        return 2
    schema = extract(json.loads(Path(args[0]).read_text()))
    target.write_text(json.dumps(schema, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {target}")
    return 0


def main(argv: list[str] | None = None) -> int:
    usage = "python -m simulator.emulators.sendgrid_schema path/to/tsg_mail_v3.json"
    return regenerate(argv, usage, extract_request_schema, SCHEMA_PATH)


if __name__ == "__main__":
    sys.exit(main())
