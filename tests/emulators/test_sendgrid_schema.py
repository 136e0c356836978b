"""The receipt request against SendGrid's published v3 Mail Send schema and its documented rules."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from donations.mail import receipt_mail
from donations.models import Donation
from donations.settings import MailSettings
from simulator.emulators import sendgrid_schema, sendgrid_templates
from simulator.emulators.sendgrid_schema import (
    CONTENT_ORDER,
    CONTENT_REQUIRED,
    CUSTOM_ARGS_EMPTY,
    CUSTOM_ARGS_STRINGS,
    FROM_INVALID,
    INVALID_ADDRESS,
    NO_PERSONALIZATION,
    REPLY_TO_BOTH,
    SUBJECT_REQUIRED,
    SUBSTITUTIONS_WITH_DYNAMIC_TEMPLATE,
    TO_REQUIRED,
    TOO_MANY_PERSONALIZATIONS,
    TOO_MANY_RECIPIENTS,
    mail_send_errors,
)
from tests.support.records import a_donation

pytestmark = pytest.mark.unit

# The template's parameter defaults (template.yaml): what a deployed stack sends with.
SETTINGS = MailSettings(
    receipt_template_id="d-00000000000000000000000000000000",
    receipt_from_email="receipts@example.org",
    org_name="Example Charity",
    org_address="1 Example Street, Springfield",
    goods_or_services_statement="No goods or services were provided in exchange for this donation.",
    support_email="support@example.org",
)


def donation(**changes: Any) -> Donation:
    return a_donation(**({"donation_id": "don_0123456789abcdef", "created_at": "2026-03-01T12:00:00Z"} | changes))


def receipt_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = receipt_mail(donation(**changes), SETTINGS).get()
    return json.loads(json.dumps(body))  # exactly what the SDK puts on the wire


def fields(errors: list[dict[str, Any]]) -> list[tuple[str | None, str]]:
    return [(e["field"], e["message"]) for e in errors]


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"name": "Zoë O'Brien-Łukasiewicz 山田"},
        {"email": "ada+receipts@example.org", "currency": "jpy", "amount": 500},
        {"name": "x" * 200, "email": "very.long.local.part+tag@sub.domain.example.org"},
    ],
)
def test_the_products_receipt_passes_sendgrids_schema_and_rules(changes: dict[str, Any]) -> None:
    body = receipt_body(**changes)

    assert mail_send_errors(body) == []
    # What the receipt relies on: a dynamic template, one recipient, the donation id as a custom arg.
    assert body["template_id"].startswith("d-")
    assert [p["to"] for p in body["personalizations"]] == [[{"email": donation(**changes).email}]]
    assert body["custom_args"] == {"donation_id": "don_0123456789abcdef"}


def _without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


def _with(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = body
    for part in parents:
        node = node[part]
    node[last] = value
    return body


BASE = receipt_body()
RECIPIENT = {"email": "ada@example.org"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(_without(BASE, "personalizations"), [("personalizations", NO_PERSONALIZATION)], id="none"),
        pytest.param(_with(BASE, "personalizations", []), [("personalizations", NO_PERSONALIZATION)], id="empty"),
        pytest.param(
            _with(BASE, "personalizations", [{"to": [{"email": f"d{n}@example.org"}]} for n in range(1001)]),
            [("personalizations", TOO_MANY_PERSONALIZATIONS)],
            id="1001-personalizations",
        ),
        pytest.param(
            _with(BASE, "personalizations.0.to", []), [("personalizations.0.to", TO_REQUIRED)], id="no-recipient"
        ),
        pytest.param(
            _with(BASE, "personalizations.0.to.0.email", "ada@no-tld"),
            [("personalizations.0.to.0.email", INVALID_ADDRESS)],
            id="bad-to",
        ),
        pytest.param(
            _with(BASE, "personalizations.0.to.0.email", "ada lovelace@example.org"),
            [("personalizations.0.to.0.email", INVALID_ADDRESS)],
            id="space-in-address",
        ),
        pytest.param(
            _with(BASE, "personalizations.0.cc", [{"email": "a" * 310 + "@example.org"}]),
            [("personalizations.0.cc.0.email", INVALID_ADDRESS)],
            id="over-320-characters",
        ),
        pytest.param(_with(BASE, "from.email", "receipts"), [("from.email", FROM_INVALID)], id="bad-from"),
        pytest.param(
            _with(BASE, "custom_args", {"donation_id": "don_1", "attempt": 2}),
            [("custom_args.attempt", CUSTOM_ARGS_STRINGS)],
            id="custom-arg-not-a-string",
        ),
        pytest.param(
            _with(BASE, "custom_args", "donation_id=don_1"),
            [("custom_args", CUSTOM_ARGS_STRINGS)],
            id="custom-args-as-a-string",
        ),
        pytest.param(_with(BASE, "custom_args", {}), [("custom_args", CUSTOM_ARGS_EMPTY)], id="custom-args-empty"),
        pytest.param(
            _with(BASE, "personalizations.0.to", [{"email": f"d{n}@example.org"} for n in range(1001)]),
            [("personalizations", TOO_MANY_RECIPIENTS)],
            id="1001-recipients",
        ),
        pytest.param(
            _with(
                BASE,
                "personalizations",
                [{"to": [{"email": f"d{n}@example.org"}], "cc": [{"email": f"c{n}@example.org"}]} for n in range(501)],
            ),
            [("personalizations", TOO_MANY_RECIPIENTS)],
            id="1002-recipients-over-personalizations",
        ),
        pytest.param(_without(BASE, "template_id"), [("content", CONTENT_REQUIRED), ("subject", SUBJECT_REQUIRED)]),
        pytest.param(
            _with(BASE, "personalizations.0.substitutions", {"-name-": "Ada"}),
            [("personalizations.0.substitutions", SUBSTITUTIONS_WITH_DYNAMIC_TEMPLATE)],
            id="substitutions-with-a-dynamic-template",
        ),
        pytest.param(
            _with(
                _with(_without(BASE, "template_id"), "subject", "Thank you"),
                "content",
                [{"type": "text/html", "value": "<p>Thanks</p>"}, {"type": "text/plain", "value": "Thanks"}],
            ),
            [("content", CONTENT_ORDER)],
            id="html-before-plain",
        ),
        pytest.param(
            _with(_with(BASE, "reply_to", RECIPIENT), "reply_to_list", [RECIPIENT]),
            [("reply_to_list", REPLY_TO_BOTH)],
            id="reply-to-twice",
        ),
        pytest.param(
            _with(BASE, "template_id", 42), [("template_id", "Invalid type. Expected: string, given: integer.")]
        ),
    ],
)
def test_classic_mistakes_are_refused_with_sendgrids_errors(
    body: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    errors = mail_send_errors(body)

    assert fields(errors) == expected
    assert all(e["help"].startswith(sendgrid_schema.HELP + "#message.") for e in errors)


def test_duplicate_recipients_in_one_personalization_are_refused() -> None:
    body = _with(BASE, "personalizations.0.bcc", [{"email": "ADA@example.org"}])

    [error] = mail_send_errors(body)

    assert error["field"] == "personalizations.0.bcc.0.email"
    assert error["message"].startswith("Each email address in the personalization block should be unique")


def test_a_template_with_content_is_accepted_as_sendgrid_documents() -> None:
    # The schema's template_id text: a template's subject and content override those of the request.
    body = _with(BASE, "content", [{"type": "text/html", "value": "<p>Thanks</p>"}])

    assert mail_send_errors(body) == []


def test_errors_never_echo_the_address_back() -> None:
    # The product records SendGrid's field, never its message; the emulator keeps addresses out of both.
    errors = mail_send_errors(_with(BASE, "personalizations.0.to.0.email", "secret@no-tld"))

    assert "secret" not in json.dumps(errors)


def test_the_derived_schema_names_its_source_and_the_corrections_are_still_needed() -> None:
    published = json.loads(sendgrid_schema.SCHEMA_PATH.read_text())
    assert "dbe0e0d2e67a0c3c55b222d54df2acda2b9027a7" in published["$comment"]
    assert "tsg_mail_v3.json" in published["$comment"]
    assert published["required"] == ["personalizations", "from"]

    # As published, the schema refuses the SDK's own custom_args object (it says "string") and lets an
    # empty personalizations list through: the documented corrections are what make it SendGrid's API.
    raw = Draft202012Validator(published)
    assert [e.validator for e in raw.iter_errors(BASE)] == ["type"]
    assert list(raw.iter_errors(_with(_without(BASE, "custom_args"), "personalizations", []))) == []
    assert mail_send_errors(BASE) == []
    assert mail_send_errors(_with(BASE, "personalizations", [])) != []


def test_regenerating_a_schema_file_inlines_refs_and_drops_the_prose(tmp_path: Path) -> None:
    # Given an OpenAPI document shaped as SendGrid's (a request body behind a $ref, with descriptions)
    body = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Mail"}}}}
    mail = {"type": "object", "description": "prose", "properties": {"subject": {"type": "string", "example": "x"}}}
    operations = [("/v3/mail/send", "post"), *sendgrid_templates.REQUEST_SCHEMAS.values()]
    spec = {
        "paths": {path: {method: {"requestBody": body}} for path, method in operations},
        "components": {"schemas": {"Mail": mail}},
    }
    source, target = tmp_path / "spec.json", tmp_path / "derived.schema.json"
    source.write_text(json.dumps(spec))
    inlined = {"type": "object", "properties": {"subject": {"type": "string"}}}

    # When each module's command derives its schema file from it
    assert sendgrid_schema.regenerate([str(source)], "usage", sendgrid_schema.extract_request_schema, target) == 0
    mail_send = json.loads(target.read_text())
    templates = sendgrid_templates.extract_request_schemas(spec)

    # Then the schemas are the document's, $refs inlined, descriptions and examples gone, each a 2020-12 schema
    assert {k: v for k, v in mail_send.items() if not k.startswith("$")} == inlined
    assert mail_send["$schema"] == "https://json-schema.org/draft/2020-12/schema" and "$comment" in mail_send
    assert all(schema == {"$schema": mail_send["$schema"], **inlined} for schema in templates["requests"].values())
    assert set(templates["requests"]) == set(sendgrid_templates.REQUEST_SCHEMAS)
    # And without a document it says how it is called, and writes nothing
    assert sendgrid_schema.regenerate([], "usage", sendgrid_schema.extract_request_schema, tmp_path / "none") == 2
    assert not (tmp_path / "none").exists()
