"""The shipped receipt template: the variables it reads are the ones the product sends, and a receipt
sent by the product through the SendGrid emulator reads right in USD, EUR, JPY and ISK.

The template is installed with the operator tool's own installer (donations_ops.receipts) over the real
sendgrid SDK, and each receipt is sent by the product's ReceiptMailer: Handlebars.js renders it as
SendGrid would (simulator/emulators/sendgrid_templates.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from sendgrid import SendGridAPIClient

from donations.mail import ReceiptMailer
from donations.models import Donation, StepStatus
from donations.receipt import receipt_data
from donations.settings import MailSettings
from donations_ops import cli
from donations_ops.receipts import ReceiptTemplate, install_template, sample_data, shipped_template
from simulator.emulators.sendgrid_emulator import SendGridEmulator
from simulator.emulators.templating import HandlebarsRenderer
from tests.support.records import a_donation

pytestmark = pytest.mark.integration

KEY = "SG.receipt-tests"
SETTINGS = MailSettings(
    receipt_template_id="d-00000000000000000000000000000000",  # replaced by the installed id
    receipt_from_email="receipts@example.org",
    org_name="Friends of the Library",
    org_address="12 Reading Lane, Springfield",
    org_tax_id="12-3456789",
    goods_or_services_statement="No goods or services were provided in exchange for this donation.",
    support_email="help@friends.example",
    receipt_time_zone="America/New_York",
)


@pytest.fixture(scope="module")
def emulator() -> Iterator[SendGridEmulator]:
    with SendGridEmulator(api_keys={KEY}) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def settings(emulator: SendGridEmulator) -> MailSettings:
    installed = install_template(SendGridAPIClient(api_key=KEY, host=emulator.url))
    return SETTINGS.model_copy(update={"receipt_template_id": installed.template_id, "sendgrid_api_host": emulator.url})


@pytest.fixture(scope="module")
def renderer() -> Iterator[HandlebarsRenderer]:
    renderer = HandlebarsRenderer()
    yield renderer
    renderer.close()


def donation(**changes: Any) -> Donation:
    return a_donation(**({"donation_id": "don_receipttestaaaaaaaaaaaaaa"} | changes))


def send(emulator: SendGridEmulator, settings: MailSettings, receipt: Donation) -> dict[str, Any]:
    mailer = ReceiptMailer(SendGridAPIClient(api_key=KEY, host=emulator.url), settings)
    message_id = mailer.send(receipt)
    [mail] = [m for m in emulator.outbox_for(receipt.donation_id) if m["message_id"] == message_id]
    rendered: dict[str, Any] = mail["rendered"]
    assert rendered is not None and rendered["error"] is None, rendered
    return rendered


# -- the variables ---------------------------------------------------------------------------------


def test_the_template_reads_exactly_the_variables_the_product_sends(renderer: HandlebarsRenderer):
    template = shipped_template()
    sent = set(receipt_data(donation(), SETTINGS))
    read = {part: set(renderer.variables(text).variables) for part, text in template.parts().items()}

    # Both bodies say everything the product sends: nothing sent is unused, nothing read is missing.
    assert read["html_content"] == sent, (
        f"HTML: unused {sent - read['html_content']}, missing {read['html_content'] - sent}"
    )
    assert read["plain_content"] == sent, (
        f"text: unused {sent - read['plain_content']}, missing {read['plain_content'] - sent}"
    )
    assert read["subject"] <= sent
    # Only Handlebars' own helpers, which SendGrid supports ("Using Handlebars").
    for text in template.parts().values():
        assert set(renderer.variables(text).helpers) <= {"if", "unless"}


def test_a_template_reading_a_variable_the_product_does_not_send_is_caught(renderer: HandlebarsRenderer):
    # The check above, on a template with one variable too many and one too few.
    sent = set(receipt_data(donation(), SETTINGS))
    wrong = shipped_template().html.replace("{{receipt_number}}", "{{donation_number}}")
    read = set(renderer.variables(wrong).variables)
    assert read - sent == {"donation_number"} and sent - read == {"receipt_number"}


def test_the_preview_data_in_sendgrid_is_the_products_own(renderer: HandlebarsRenderer):
    assert set(sample_data()) == set(renderer.variables(shipped_template().html).variables)


# -- rendered receipts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (2500, "usd", "$25.00"),
        (250000, "eur", "€2,500.00"),
        (5000, "jpy", "¥5,000"),  # zero-decimal: 5000 is 5,000 yen
        (100000, "isk", "ISK1,000"),  # two decimals in Stripe's API, whole krónur: 100000 is 1,000 krónur
    ],
)
def test_a_receipt_shows_the_amount_in_the_donors_currency(emulator, settings, amount, currency, shown):
    receipt = donation(donation_id=f"don_receipt{currency}aaaaaaaaaaaaaaa", amount=amount, currency=currency)

    rendered = send(emulator, settings, receipt)

    for body in (rendered["html"], rendered["text"]):
        assert shown in body
        assert "Ada Lovelace" in body
        assert receipt.donation_id in body  # the receipt number
        assert "November 25, 2026" in body  # 15:30 UTC is the same day in New York
        assert "Friends of the Library" in body and "12 Reading Lane, Springfield" in body
        assert "12-3456789" in body
        assert "No goods or services were provided in exchange for this donation." in body
        assert "help@friends.example" in body
    assert rendered["subject"] == "Receipt for your donation to Friends of the Library"


def test_the_date_is_the_day_in_the_charitys_time_zone(emulator, settings):
    late = donation(donation_id="don_receiptlatezzzzzzzzzzzzz", created_at="2027-01-01T03:00:00Z")
    rendered = send(emulator, settings, late)
    assert "December 31, 2026" in rendered["text"]  # still 2026 in New York: that tax year's gift


def test_the_card_line_appears_when_the_charge_named_the_card(emulator, settings):
    named = donation(donation_id="don_receiptcardaaaaaaaaaaaaa", card_last4="4242")  # saving still pending
    unnamed = donation(donation_id="don_receiptnocardaaaaaaaaaaa", card_status=StepStatus.DONE)

    assert "Ending in 4242" in send(emulator, settings, named)["html"]
    assert "ending in 4242" in send(emulator, settings, named)["text"]
    assert "Card" not in send(emulator, settings, unnamed)["html"]


def test_an_empty_tax_id_or_statement_is_left_out(emulator, settings):
    plain = settings.model_copy(update={"org_tax_id": "", "goods_or_services_statement": ""})
    rendered = send(emulator, plain, donation(donation_id="don_receiptplainaaaaaaaaaaaa"))
    for body in (rendered["html"], rendered["text"]):
        assert "Tax id" not in body
        assert "goods or services" not in body


def test_what_the_donor_typed_is_escaped_in_the_html_and_kept_in_the_text(emulator, settings):
    rendered = send(emulator, settings, donation(donation_id="don_receipthtmlaaaaaaaaaaaaa", name="<b>Ada</b> & Co"))
    assert "&lt;b&gt;Ada&lt;/b&gt; &amp; Co" in rendered["html"] and "<b>Ada" not in rendered["html"]
    assert "<b>Ada</b> & Co" in rendered["text"]


# -- the HTML a mail client gets -------------------------------------------------------------------


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


def test_the_html_is_accessible_readable_on_a_phone_and_loads_nothing_remote(emulator, settings):
    html = send(emulator, settings, donation(donation_id="don_receiptaccessaaaaaaaaaaa", card_status=StepStatus.DONE,
                                             card_last4="4242"))["html"]  # fmt: skip
    parser = _Elements()
    parser.feed(html)
    tags = [tag for tag, _ in parser.elements]
    attrs = dict(parser.elements)

    assert attrs["html"].get("lang") == "en"
    assert any(tag == "meta" and a.get("name") == "viewport" for tag, a in parser.elements)
    assert "title" in tags and "h1" in tags
    # No images, no remote anything: nothing for a mail client to fetch or block.
    assert not {"img", "link", "script", "iframe", "object", "picture"} & set(tags)
    assert not [
        a for _, a in parser.elements if any((v or "").startswith(("http:", "https:", "//")) for v in a.values())
    ]
    assert "url(" not in html
    # One layout table, marked presentational; the receipt's facts are a data table with row headers.
    tables = [a for tag, a in parser.elements if tag == "table"]
    assert [t.get("role") for t in tables] == ["presentation", None]
    assert "caption" in tags
    assert [a.get("scope") for tag, a in parser.elements if tag == "th"] == ["row"] * tags.count("th")


# -- the installer ---------------------------------------------------------------------------------


def test_installing_again_adds_a_new_active_version_to_the_same_template(emulator):
    client = SendGridAPIClient(api_key=KEY, host=emulator.url)
    first = install_template(client, name="Receipt (reinstall test)")
    changed = ReceiptTemplate(
        subject="Thanks from {{{org_name}}}", html="<p>{{donor_name}}</p>", text="{{{donor_name}}}"
    )
    second = install_template(client, name="Receipt (reinstall test)", template=changed)

    assert (first.created, second.created) == (True, False)
    assert second.template_id == first.template_id
    stored = emulator.template_store.templates[first.template_id]
    assert [v.active for v in stored.versions] == [0, 1]
    active = stored.active_version
    assert active is not None and active.id == second.version_id
    assert (active.subject, active.generate_plain_content) == ("Thanks from {{{org_name}}}", False)
    assert json.loads(active.test_data or "{}") == sample_data()


def test_the_command_installs_the_template_and_prints_its_id(emulator, monkeypatch, capsys):
    monkeypatch.setenv("SENDGRID_API_KEY", KEY)

    code = cli.main(["receipts", "install-template", "--name", "Receipt (cli test)", "--sendgrid-host", emulator.url])

    assert code == 0
    printed = capsys.readouterr().out.strip().splitlines()
    template_id = printed[-1]
    assert f"ReceiptTemplateId={template_id}" in "\n".join(printed)
    assert emulator.template_store.active_version(template_id) is not None

    # Again with --json and the id: an update of the same template.
    code = cli.main(["receipts", "install-template", "--template-id", template_id, "--sendgrid-host", emulator.url,
                     "--json"])  # fmt: skip
    answer = json.loads(capsys.readouterr().out)
    assert code == 0 and (answer["template_id"], answer["created"]) == (template_id, False)


def test_the_command_says_what_is_wrong(emulator, monkeypatch, capsys):
    monkeypatch.delenv("SENDGRID_API_KEY", raising=False)
    assert cli.main(["receipts", "install-template", "--sendgrid-host", emulator.url]) == 2
    assert "SENDGRID_API_KEY" in capsys.readouterr().err

    monkeypatch.setenv("SENDGRID_API_KEY", "SG.not-this-account")
    assert cli.main(["receipts", "install-template", "--sendgrid-host", emulator.url]) == 1
    assert "SendGrid answered 401" in capsys.readouterr().out

    monkeypatch.setenv("SENDGRID_API_KEY", KEY)
    missing = "d-" + "f" * 32
    assert cli.main(["receipts", "install-template", "--template-id", missing, "--sendgrid-host", emulator.url]) == 1
    assert "SendGrid answered 404" in capsys.readouterr().out
