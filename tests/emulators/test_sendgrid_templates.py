"""The SendGrid emulator's Templates API and dynamic template rendering, driven by the real sendgrid SDK.

What is checked comes from SendGrid's Templates API document (twilio/sendgrid-oai tsg_templates_v3.json)
and "Using Handlebars"; see simulator/emulators/sendgrid_templates.py.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest
from python_http_client import exceptions as http_errors
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import CustomArg, Mail

from simulator.emulators.sendgrid_emulator import SendGridEmulator
from simulator.emulators.templating import HandlebarsRenderer, TemplateError

pytestmark = pytest.mark.integration

ClientFactory = Callable[..., SendGridAPIClient]
DYNAMIC_ID = re.compile(r"d-[0-9a-f]{32}")


def body(response: Any) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(response.body)
    return parsed


def create_template(client: SendGridAPIClient, name: str = "receipt", generation: str = "dynamic") -> str:
    created = client.client.templates.post(request_body={"name": name, "generation": generation})
    assert created.status_code == 201
    return str(body(created)["id"])


def create_version(client: SendGridAPIClient, template_id: str, **fields: Any) -> dict[str, Any]:
    version = {"name": "v", "subject": "Receipt for {{{donor}}}", "html_content": "<p>{{donor}}</p>", **fields}
    created = client.client.templates._(template_id).versions.post(request_body=version)
    assert created.status_code == 201
    return body(created)


def send(client: SendGridAPIClient, template_id: str, data: dict[str, Any], donation_id: str = "don_t") -> None:
    mail = Mail(from_email="receipts@charity.example", to_emails="donor@example.org")
    mail.template_id = template_id
    mail.dynamic_template_data = data
    mail.custom_arg = CustomArg("donation_id", donation_id)
    assert client.send(mail).status_code == 202


def test_a_dynamic_template_gets_a_d_id_and_its_first_version_is_active(sendgrid_client: ClientFactory) -> None:
    client = sendgrid_client()
    template_id = create_template(client)
    assert DYNAMIC_ID.fullmatch(template_id)

    first = create_version(client, template_id, active=0)
    second = create_version(client, template_id, name="v2")

    # "The first version created for a template will automatically be set to Active"; a later one is not
    # unless asked.
    assert (first["active"], second["active"]) == (1, 0)
    assert first["generate_plain_content"] is True  # the document's default
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", first["updated_at"])


def test_activating_a_version_deactivates_the_others(sendgrid_client: ClientFactory) -> None:
    client = sendgrid_client()
    template_id = create_template(client)
    first = create_version(client, template_id)
    second = create_version(client, template_id, name="v2", active=1)

    shown = body(client.client.templates._(template_id).get())
    assert {v["id"]: v["active"] for v in shown["versions"]} == {first["id"]: 0, second["id"]: 1}

    activated = client.client.templates._(template_id).versions._(first["id"]).activate.post()
    assert activated.status_code == 200 and body(activated)["active"] == 1
    shown = body(client.client.templates._(template_id).get())
    assert {v["id"]: v["active"] for v in shown["versions"]} == {first["id"]: 1, second["id"]: 0}


def test_the_list_needs_page_size_and_shows_legacy_templates_unless_asked(sendgrid_client: ClientFactory) -> None:
    client = sendgrid_client()
    dynamic_id = create_template(client, "receipt")
    legacy_id = create_template(client, "old", generation="legacy")

    with pytest.raises(http_errors.BadRequestsError) as refused:
        client.client.templates.get(query_params={"generations": "dynamic"})
    assert json.loads(refused.value.body)["errors"][0]["field"] == "page_size"

    by_default = body(client.client.templates.get(query_params={"page_size": 10}))
    dynamic = body(client.client.templates.get(query_params={"page_size": 10, "generations": "dynamic"}))
    assert [t["id"] for t in by_default["result"]] == [legacy_id]
    assert [t["id"] for t in dynamic["result"]] == [dynamic_id]
    assert dynamic["_metadata"]["count"] == 1


def test_the_list_pages_with_the_token_it_gives(sendgrid_client: ClientFactory) -> None:
    client = sendgrid_client()
    ids = [create_template(client, f"t{i}") for i in range(3)]
    first = body(client.client.templates.get(query_params={"page_size": 2, "generations": "dynamic"}))
    token = re.search(r"page_token=(\w+)", first["_metadata"]["next"])
    assert token is not None
    rest = body(
        client.client.templates.get(query_params={"page_size": 2, "generations": "dynamic", "page_token": token[1]})
    )
    assert [t["id"] for t in first["result"] + rest["result"]] == ids
    assert "next" not in rest["_metadata"]


@pytest.mark.parametrize(
    ("request_body", "field"),
    [
        ({"generation": "dynamic"}, "name"),  # name is required
        ({"name": "x" * 101, "generation": "dynamic"}, "name"),  # maxLength 100
        ({"name": "receipt", "generation": "modern"}, "generation"),  # enum legacy | dynamic
    ],
)
def test_a_template_body_outside_the_schema_is_refused(sendgrid_client: ClientFactory, request_body, field) -> None:
    with pytest.raises(http_errors.BadRequestsError) as refused:
        sendgrid_client().client.templates.post(request_body=request_body)
    assert json.loads(refused.value.body)["errors"][0]["field"] == field


def test_a_version_needs_a_name_and_a_subject(sendgrid_client: ClientFactory) -> None:
    client = sendgrid_client()
    template_id = create_template(client)
    with pytest.raises(http_errors.BadRequestsError) as refused:
        client.client.templates._(template_id).versions.post(request_body={"name": "v", "html_content": "x"})
    assert json.loads(refused.value.body)["errors"][0]["field"] == "subject"


def test_unknown_ids_and_keys_are_refused(sendgrid_client: ClientFactory) -> None:
    client = sendgrid_client()
    with pytest.raises(http_errors.NotFoundError):
        client.client.templates._("d-" + "0" * 32).get()
    template_id = create_template(client)
    with pytest.raises(http_errors.NotFoundError):
        client.client.templates._(template_id).versions._("no-such-version").activate.post()
    with pytest.raises(http_errors.UnauthorizedError):
        sendgrid_client(key="not-a-sendgrid-key").client.templates.post(request_body={"name": "x"})


def test_a_mail_with_a_dynamic_template_is_rendered_from_its_active_version(
    sendgrid_emu: SendGridEmulator, sendgrid_client: ClientFactory
) -> None:
    client = sendgrid_client()
    template_id = create_template(client)
    create_version(
        client,
        template_id,
        html_content="<p>Thank you, {{donor}}.</p>{{#if card}}<p>Card {{card}}</p>{{/if}}",
        plain_content="Thank you, {{{donor}}}.",
        generate_plain_content=False,
    )

    send(client, template_id, {"donor": "Ada & <Bob>", "card": ""})

    [mail] = sendgrid_emu.outbox_for("don_t")
    rendered = mail["rendered"]
    # Double braces escape HTML, triple braces do not ("Using Handlebars"); an empty value is false for #if.
    assert rendered["subject"] == "Receipt for Ada & <Bob>"
    assert rendered["html"] == "<p>Thank you, Ada &amp; &lt;Bob&gt;.</p>"
    assert rendered["text"] == "Thank you, Ada & <Bob>."
    assert rendered["error"] is None


def test_a_new_active_version_changes_what_the_next_mail_says(
    sendgrid_emu: SendGridEmulator, sendgrid_client: ClientFactory
) -> None:
    client = sendgrid_client()
    template_id = create_template(client)
    create_version(client, template_id, html_content="<p>old {{donor}}</p>")
    send(client, template_id, {"donor": "Ada"}, donation_id="don_old")
    create_version(client, template_id, name="v2", html_content="<p>new {{donor}}</p>", active=1)
    send(client, template_id, {"donor": "Ada"}, donation_id="don_new")

    assert sendgrid_emu.outbox_for("don_old")[0]["rendered"]["html"] == "<p>old Ada</p>"
    assert sendgrid_emu.outbox_for("don_new")[0]["rendered"]["html"] == "<p>new Ada</p>"


def test_generated_plain_text_is_not_imitated_and_an_unknown_template_is_not_rendered(
    sendgrid_emu: SendGridEmulator, sendgrid_client: ClientFactory
) -> None:
    client = sendgrid_client()
    template_id = create_template(client)
    create_version(client, template_id)  # generate_plain_content defaults to true
    send(client, template_id, {"donor": "Ada"}, donation_id="don_generated")
    send(client, "d-" + "a" * 32, {"donor": "Ada"}, donation_id="don_unknown")  # any d- id is accepted by default

    assert sendgrid_emu.outbox_for("don_generated")[0]["rendered"]["text"] is None
    assert sendgrid_emu.outbox_for("don_unknown")[0]["rendered"] is None


def test_a_template_calling_a_helper_handlebars_lacks_shows_the_error_in_the_outbox(
    sendgrid_emu: SendGridEmulator, sendgrid_client: ClientFactory
) -> None:
    client = sendgrid_client()
    template_id = create_template(client)
    create_version(client, template_id, html_content='{{formatDate when "MM/DD/YYYY"}}')
    send(client, template_id, {"donor": "Ada", "when": "2026-01-01"})

    rendered = sendgrid_emu.outbox_for("don_t")[0]["rendered"]
    assert "Missing helper" in rendered["error"]


def test_templates_outlive_reset_until_cleared(sendgrid_emu: SendGridEmulator, sendgrid_client: ClientFactory) -> None:
    template_id = create_template(sendgrid_client())
    sendgrid_emu.reset()
    assert template_id in sendgrid_emu.template_store.templates
    sendgrid_emu.clear_templates()
    assert sendgrid_emu.template_store.templates == {}


def test_the_renderer_lists_a_templates_variables_from_handlebars_own_parser() -> None:
    renderer = HandlebarsRenderer()
    try:
        template = "{{a}} {{#if b}}{{c}}{{else}}{{{d.e}}}{{/if}} {{#each items}}{{name}} {{../f}}{{/each}}"
        found = renderer.variables(template)
        assert found.variables == ("a", "b", "c", "d", "f", "items")  # not "name": it belongs to each item
        assert found.helpers == ("each", "if")
        with pytest.raises(TemplateError):
            renderer.variables("{{#if}}")
    finally:
        renderer.close()


def test_a_mail_accepted_while_the_outbox_renders_others_is_listed_rendered(
    sendgrid_emu: SendGridEmulator, sendgrid_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a mail accepted, and a reader of the outbox held in the middle of rendering it
    client = sendgrid_client()
    template_id = create_template(client)
    create_version(client, template_id, subject="Receipt {{donor}}")
    send(client, template_id, {"donor": "first"}, donation_id="don_first")
    rendering, release = threading.Event(), threading.Event()
    renderer = sendgrid_emu._renderer

    class HeldRenderer:
        def render(self, template: str, data: dict[str, Any]) -> str:
            rendering.set()
            assert release.wait(timeout=10)
            return renderer.render(template, data)

    monkeypatch.setattr(sendgrid_emu, "_renderer", HeldRenderer())
    read: list[list[dict[str, Any]]] = []
    reader = threading.Thread(target=lambda: read.append(sendgrid_emu.outbox))
    reader.start()
    assert rendering.wait(timeout=10)

    # When another mail is accepted before that reader has copied the outbox
    send(client, template_id, {"donor": "second"}, donation_id="don_second")
    release.set()
    reader.join(timeout=10)

    # Then the reader lists both, each rendered (not the second as an entry without its rendering)
    [outbox] = read
    subjects = {m["custom_args"]["donation_id"]: m["rendered"] and m["rendered"]["subject"] for m in outbox}
    assert subjects == {"don_first": "Receipt first", "don_second": "Receipt second"}
