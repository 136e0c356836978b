"""SendGrid's Transactional Templates API (``/v3/templates``), as the SendGrid emulator serves it.

Source: SendGrid's OpenAPI document for the Templates API, github.com/twilio/sendgrid-oai
``spec/json/tsg_templates_v3.json`` at commit dbe0e0d2e67a0c3c55b222d54df2acda2b9027a7, and the API
reference pages it was generated for ("Create a transactional template", "Create a new transactional
template version", "Activate a transactional template version"). ``sendgrid_templates.schema.json``
beside this module holds that document's request schemas, ``$ref``s inlined (regenerate with
``python -m simulator.emulators.sendgrid_templates path/to/tsg_templates_v3.json``); bodies and query
strings are validated against them and refused with 400 in SendGrid's ``{"errors": [...]}`` shape
(the v3 "Errors" page). What the document says and the emulator does:

- ``POST /v3/templates`` creates a template (``generation`` defaults to ``legacy``); 201 with the
  template and ``versions: []``. Dynamic templates have ids ``d-`` and 32 hex digits (the id the
  Mail Send ``template_id`` takes; the document's uuid examples are legacy ids).
- ``GET /v3/templates`` needs ``page_size`` (1-200) and lists only ``legacy`` templates unless
  ``generations`` says otherwise; ``{"result": [...], "_metadata": {...}}``, ``page_token`` pages on.
- ``GET`` / ``PATCH`` (name) / ``DELETE`` ``/v3/templates/{id}``.
- ``POST /v3/templates/{id}/versions`` (``name`` and ``subject`` required): 201. "The first version
  created for a template will automatically be set to Active"; "Only one version of a template can
  be active", so activating one deactivates the others. ``GET`` / ``PATCH`` / ``DELETE`` a version and
  ``POST .../versions/{vid}/activate`` (200, the version).

Not documented, so chosen here: an id the account does not have is 404 ``{"errors": [{"field": null,
"message": "Not Found"}]}``; the per-account limits (300 templates, 300 versions) and API key scopes
are not modelled. A mail sent with a dynamic template is rendered from its active version
(:func:`render_mail`); ``generate_plain_content: true`` means SendGrid derives the text part from
the HTML, which the emulator does not imitate (its text part is then ``None``).
"""

from __future__ import annotations

import json
import secrets
import sys
import time
import uuid
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jsonschema import Draft202012Validator

from simulator.emulators.sendgrid_schema import regenerate, request_schema
from simulator.emulators.serving import Request, Response
from simulator.emulators.templating import HandlebarsRenderer, RendererUnavailable, TemplateError

Json = dict[str, Any]

SCHEMA_PATH = Path(__file__).with_name("sendgrid_templates.schema.json")
SOURCE = "twilio/sendgrid-oai spec/json/tsg_templates_v3.json @ dbe0e0d2e67a0c3c55b222d54df2acda2b9027a7"
PREFIX = "/v3/templates"
VERSION_FIELDS = ("active", "name", "html_content", "plain_content", "generate_plain_content", "subject", "editor")
# The request schemas extracted from the document: where each one is, by our name.
REQUEST_SCHEMAS = {
    "create_template": ("/v3/templates", "post"),
    "update_template": ("/v3/templates/{template_id}", "patch"),
    "version": ("/v3/templates/{template_id}/versions", "post"),
}


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())  # the document's updated_at pattern


@dataclass
class Version:
    id: str
    template_id: str
    name: str
    subject: str
    active: int = 0
    html_content: str = ""
    plain_content: str = ""
    generate_plain_content: bool = True  # the document's default
    editor: str = "code"
    test_data: str | None = None
    updated_at: str = field(default_factory=_now)

    def output(self) -> Json:
        """TransactionalTemplateVersionOutput."""
        fields = {name: getattr(self, name) for name in VERSION_FIELDS}
        extra = {"test_data": self.test_data} if self.test_data is not None else {}
        return {"id": self.id, "template_id": self.template_id, **fields, **extra, "updated_at": self.updated_at}


@dataclass
class Template:
    id: str
    name: str
    generation: str
    updated_at: str = field(default_factory=_now)
    versions: list[Version] = field(default_factory=list)

    def output(self) -> Json:
        """TransactionalTemplate (with its versions)."""
        versions = [v.output() for v in self.versions]
        return {"id": self.id, "name": self.name, "generation": self.generation, "updated_at": self.updated_at,
                "versions": versions}  # fmt: skip

    @property
    def active_version(self) -> Version | None:
        return next((v for v in self.versions if v.active == 1), None)

    def activate(self, version: Version) -> None:
        for other in self.versions:
            other.active = 1 if other is version else 0
        self.updated_at = _now()


def _errors(status: int, message: str, field_name: str | None = None) -> Response:
    return Response.json(status, {"errors": [{"field": field_name, "message": message}]})


NOT_FOUND = "Not Found"


@cache
def _validators() -> dict[str, Draft202012Validator]:
    schemas: Json = json.loads(SCHEMA_PATH.read_text())
    return {name: Draft202012Validator(schema) for name, schema in schemas["requests"].items()}


def _body_error(kind: str, body: Any) -> Response | None:
    for error in sorted(_validators()[kind].iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path]):
        path = [str(part) for part in error.absolute_path]
        if error.validator == "required" and isinstance(error.instance, dict):
            missing = [name for name in error.validator_value if name not in error.instance]
            return _errors(400, f"{missing[0]} is required", ".".join([*path, missing[0]]))
        return _errors(400, error.message, ".".join(path) or None)
    return None


class TemplateStore:
    """The account's transactional templates and their versions; not thread-safe (the emulator locks)."""

    def __init__(self) -> None:
        self.templates: dict[str, Template] = {}

    def handle(self, req: Request) -> Response:
        parts = [p for p in req.path.rstrip("/").removeprefix(PREFIX).strip("/").split("/") if p]
        try:
            body = req.json() if req.method in ("POST", "PATCH") and req.body else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _errors(400, "Bad Request")
        if not parts:
            return self._create_template(body) if req.method == "POST" else self._list(req)
        template = self.templates.get(parts[0])
        if template is None:
            return _errors(404, NOT_FOUND)
        if len(parts) == 1:
            return self._one_template(req.method, template, body)
        return self._versions(req.method, template, parts[1:], body)

    def _versions(self, method: str, template: Template, parts: list[str], body: Any) -> Response:
        """``versions``, ``versions/{id}`` and ``versions/{id}/activate`` under one template."""
        if parts[0] != "versions" or len(parts) > 3 or (len(parts) == 3 and parts[2] != "activate"):
            return _errors(404, NOT_FOUND)
        if len(parts) == 1:
            return self._create_version(template, body) if method == "POST" else _errors(405, "Method Not Allowed")
        version = next((v for v in template.versions if v.id == parts[1]), None)
        if version is None:
            return _errors(404, NOT_FOUND)
        if len(parts) == 2:
            return self._one_version(method, template, version, body)
        if method != "POST":
            return _errors(405, "Method Not Allowed")
        template.activate(version)
        return Response.json(200, version.output())

    def active_version(self, template_id: str) -> Version | None:
        template = self.templates.get(template_id)
        return template.active_version if template else None

    # -- templates ----------------------------------------------------------------------------------
    def _create_template(self, body: Any) -> Response:
        refused = _body_error("create_template", body)
        if refused is not None:
            return refused
        generation = body.get("generation", "legacy")
        template_id = f"d-{secrets.token_hex(16)}" if generation == "dynamic" else str(uuid.uuid4())
        template = Template(template_id, body["name"], generation)
        self.templates[template_id] = template
        return Response.json(201, template.output())

    def _list(self, req: Request) -> Response:
        query = req.query_params()
        refused = _query_error(query)
        if refused is not None:
            return refused
        generations = set(query.get("generations", "legacy").split(","))
        matching = [t for t in self.templates.values() if t.generation in generations]
        size, start = int(float(query["page_size"])), _offset(query.get("page_token"))
        page = matching[start : start + size]
        metadata: Json = {"self": f"{PREFIX}?{urlencode(query)}", "count": len(matching)}
        if start + size < len(matching):
            metadata["next"] = f"{PREFIX}?{urlencode({**query, 'page_token': str(start + size)})}"
        return Response.json(200, {"result": [t.output() for t in page], "_metadata": metadata})

    def _one_template(self, method: str, template: Template, body: Any) -> Response:
        if method == "GET":
            return Response.json(200, template.output())
        if method == "PATCH":
            refused = _body_error("update_template", body)
            if refused is not None:
                return refused
            template.name = body.get("name", template.name)
            template.updated_at = _now()
            return Response.json(200, template.output())
        if method == "DELETE":
            del self.templates[template.id]
            return Response(204)
        return _errors(405, "Method Not Allowed")

    # -- versions -----------------------------------------------------------------------------------
    def _create_version(self, template: Template, body: Any) -> Response:
        refused = _body_error("version", body)
        if refused is not None:
            return refused
        given = {name: body[name] for name in (*VERSION_FIELDS, "test_data") if name in body}
        version = Version(id=str(uuid.uuid4()), template_id=template.id, **given)
        template.versions.append(version)
        if version.active == 1 or len(template.versions) == 1:  # the first version is always active
            template.activate(version)
        return Response.json(201, version.output())

    def _one_version(self, method: str, template: Template, version: Version, body: Any) -> Response:
        if method == "GET":
            return Response.json(200, version.output())
        if method == "PATCH":
            # The document's PATCH body is the create schema, whose required name and subject a patch need not repeat.
            refused = _body_error("version", {"name": version.name, "subject": version.subject, **body})
            if refused is not None:
                return refused
            for name in (*VERSION_FIELDS, "test_data"):
                if name in body and name != "active":
                    setattr(version, name, body[name])
            version.updated_at = _now()
            if body.get("active") == 1:
                template.activate(version)
            return Response.json(200, version.output())
        if method == "DELETE":
            template.versions.remove(version)
            return Response(204)
        return _errors(405, "Method Not Allowed")


def _query_error(query: dict[str, str]) -> Response | None:
    """ListTemplate's query: page_size required, 1 to 200; generations one of the document's enum."""
    try:
        size = float(query["page_size"])
    except KeyError:
        return _errors(400, "page_size is required", "page_size")
    except ValueError:
        return _errors(400, "page_size must be a number", "page_size")
    if not 1 <= size <= 200:
        return _errors(400, "page_size should be between 1 and 200", "page_size")
    if query.get("generations", "legacy") not in ("legacy", "dynamic", "legacy,dynamic"):
        return _errors(400, "generations must be legacy, dynamic or legacy,dynamic", "generations")
    return None


def _offset(page_token: str | None) -> int:
    return int(page_token) if page_token and page_token.isdigit() else 0


# -- rendering a mail sent with a dynamic template ----------------------------------------------------------


def render_mail(version: Version | None, data: Json, renderer: HandlebarsRenderer) -> Json | None:
    """What the recipient gets from a dynamic template: its active version's subject, HTML and text rendered
    with the personalization's ``dynamic_template_data``. None when the account has no such template."""
    if version is None:
        return None
    rendered: Json = {"template_version_id": version.id, "subject": None, "html": None, "text": None, "error": None}
    try:
        rendered["subject"] = renderer.render(version.subject, data)
        rendered["html"] = renderer.render(version.html_content, data) if version.html_content else None
        if not version.generate_plain_content and version.plain_content:
            rendered["text"] = renderer.render(version.plain_content, data)
    except (TemplateError, RendererUnavailable) as error:
        rendered["error"] = str(error)
    return rendered


# -- the schema file ------------------------------------------------------------------------------------------


def extract_request_schemas(spec: Json) -> Json:
    """The request schemas of SendGrid's Templates API document, by our name, ``$ref``s inlined."""
    return {
        "$comment": f"Derived from {SOURCE}: the request bodies of {sorted(REQUEST_SCHEMAS.values())}, $refs "
        "inlined, descriptions and examples dropped. Regenerate with python -m simulator.emulators.sendgrid_templates.",
        "requests": {name: request_schema(spec, path, method) for name, (path, method) in REQUEST_SCHEMAS.items()},
    }


def main(argv: list[str] | None = None) -> int:
    usage = "python -m simulator.emulators.sendgrid_templates path/to/tsg_templates_v3.json"
    return regenerate(argv, usage, extract_request_schemas, SCHEMA_PATH)


if __name__ == "__main__":
    sys.exit(main())
