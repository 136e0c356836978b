"""The receipt email's SendGrid dynamic template: the one shipped in ``receipt_template/``, installed.

``install_template`` creates the dynamic template (or finds it by name, or takes its id) and adds a new
active version holding the shipped subject, HTML and plain text, through SendGrid's Transactional
Templates API (twilio/sendgrid-oai ``spec/json/tsg_templates_v3.json``; API reference "Create a
transactional template", "Retrieve paged transactional templates", "Create a new transactional
template version", "Activate a transactional template version"). Running it again adds another
version and activates it: the receipts sent after that use it. Old versions stay in SendGrid
(an account may hold 300 versions in all; delete old ones in SendGrid's console if needed).

The template reads exactly the variables :func:`donations.receipt.receipt_data` sends.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from donations.models import Donation, DonationStatus, StepStatus
from donations.receipt import receipt_data
from donations.settings import MailSettings
from donations.statements import Gift, Statement, statement_data

if TYPE_CHECKING:
    from sendgrid import SendGridAPIClient

TEMPLATE_DIR = Path(__file__).with_name("receipt_template")
DEFAULT_NAME = "Donation receipt"
# The year-end statement's template (donations.statements.statement_data), installed by the same command.
STATEMENT_TEMPLATE_DIR = Path(__file__).with_name("statement_template")
STATEMENT_NAME = "Donation statement"
PAGE_SIZE = 200  # the most the list answers per page
MAX_PAGES = 50


class InstallError(Exception):
    """SendGrid refused a step, or the template to update is not there or not unique."""


@dataclass(frozen=True)
class ReceiptTemplate:
    subject: str
    html: str
    text: str

    def parts(self) -> dict[str, str]:
        """Each part by its field in a template version."""
        return {"subject": self.subject, "html_content": self.html, "plain_content": self.text}


@dataclass(frozen=True)
class Installed:
    template_id: str
    version_id: str
    created: bool
    """A new template (else a new version of an existing one)."""
    name: str


def shipped_template() -> ReceiptTemplate:
    return ReceiptTemplate(
        subject=(TEMPLATE_DIR / "subject.txt").read_text(encoding="utf-8").strip(),
        html=(TEMPLATE_DIR / "receipt.html").read_text(encoding="utf-8"),
        text=(TEMPLATE_DIR / "receipt.txt").read_text(encoding="utf-8"),
    )


def shipped_statement_template() -> ReceiptTemplate:
    return ReceiptTemplate(
        subject=(STATEMENT_TEMPLATE_DIR / "subject.txt").read_text(encoding="utf-8").strip(),
        html=(STATEMENT_TEMPLATE_DIR / "statement.html").read_text(encoding="utf-8"),
        text=(STATEMENT_TEMPLATE_DIR / "statement.txt").read_text(encoding="utf-8"),
    )


def install_template(
    client: SendGridAPIClient,
    *,
    name: str = DEFAULT_NAME,
    template_id: str | None = None,
    template: ReceiptTemplate | None = None,
    test_data: dict[str, Any] | None = None,
) -> Installed:
    """Create or update the dynamic template and make a new version of it active; its id goes in ReceiptTemplateId."""
    template = template or shipped_template()
    templates = client.client.templates
    created = False
    if template_id is None:
        found = _dynamic_templates_named(client, name)
        if len(found) > 1:
            raise InstallError(f"{len(found)} dynamic templates are named {name!r}: pass --template-id")
        if found:
            template_id = found[0]
        else:
            template_id = str(_call(templates.post, request_body={"name": name, "generation": "dynamic"})["id"])
            created = True
    else:
        existing = _call(templates._(template_id).get)
        if existing.get("generation") != "dynamic":
            raise InstallError(f"{template_id} is a legacy template; receipts need a dynamic one")
    version = {
        "name": f"{name} {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())}"[:100],
        **template.parts(),
        "generate_plain_content": False,  # ours is written for reading, not derived from the HTML
        "editor": "code",
        "active": 1,
        "test_data": json.dumps(test_data or sample_data()),  # SendGrid's preview shows a real-looking receipt
    }
    versions = templates._(template_id).versions
    added = _call(versions.post, request_body=version)
    if added.get("active") != 1:
        added = _call(versions._(added["id"]).activate.post)
    return Installed(template_id=template_id, version_id=str(added["id"]), created=created, name=name)


def install_statement_template(
    client: SendGridAPIClient, *, name: str = STATEMENT_NAME, template_id: str | None = None
) -> Installed:
    """The year-end statement's template, installed like the receipt's; its id goes in StatementTemplateId."""
    return install_template(
        client,
        name=name,
        template_id=template_id,
        template=shipped_statement_template(),
        test_data=sample_statement_data(),
    )


def sample_statement_data() -> dict[str, Any]:
    """The template data of an example statement: a one-time gift partly refunded, a monthly one, two currencies."""
    donation = _sample_donation()
    gifts = (
        Gift(donation.donation_id, donation.created_at, 2500, 500, "usd", monthly=False),
        Gift("don_examplemonthly000000000", "2026-12-01T12:00:00Z", 1000, 0, "usd", monthly=True),
        Gift("don_exampleeuro00000000000", "2026-12-10T12:00:00Z", 2000, 0, "eur", monthly=False),
    )
    statement = Statement("0" * 32, 2026, donation.email, donation.name, gifts)
    return statement_data(statement, _sample_settings())


def sample_data() -> dict[str, str]:
    """The template data of an example donation, for SendGrid's preview and test sends."""
    return receipt_data(
        _sample_donation(), _sample_settings(), manage_url="https://example.org/manage#token=v1.example.example"
    )


def _sample_donation() -> Donation:
    return Donation(
        donation_id="don_examplereceipt0000000000",
        status=DonationStatus.SUCCEEDED,
        amount=2500,
        currency="usd",
        email="ada@example.org",
        email_masked="a***@e***.org",
        name="Ada Lovelace",
        payment_method="pm_card_visa",
        save_card=True,
        request_hash="example",
        created_at="2026-11-25T12:00:00Z",
        updated_at="2026-11-25T12:00:00Z",
        card_status=StepStatus.DONE,
        card_last4="4242",
    )


def _sample_settings() -> MailSettings:
    return MailSettings(
        receipt_template_id="d-00000000000000000000000000000000",
        receipt_from_email="receipts@example.org",
        org_name="Example Charity",
        org_address="1 Example Street, Springfield",
        org_tax_id="12-3456789",
        goods_or_services_statement="No goods or services were provided in exchange for this donation.",
        support_email="support@example.org",
    )


def _dynamic_templates_named(client: SendGridAPIClient, name: str) -> list[str]:
    """Ids of the dynamic templates called ``name``. The list shows legacy templates only unless asked."""
    query: dict[str, Any] = {"generations": "dynamic", "page_size": PAGE_SIZE}
    found: list[str] = []
    for _ in range(MAX_PAGES):
        page = _call(client.client.templates.get, query_params=query)
        found += [str(t["id"]) for t in page.get("result", []) if t.get("name") == name]
        token = parse_qs(urlsplit(str((page.get("_metadata") or {}).get("next") or "")).query).get("page_token")
        if not token:
            return found
        query = {**query, "page_token": token[-1]}
    raise InstallError(f"more than {MAX_PAGES * PAGE_SIZE} dynamic templates: pass --template-id")


def _call(request: Any, **arguments: Any) -> dict[str, Any]:
    """One Templates API call; SendGrid's refusal becomes an InstallError naming its status and message."""
    from python_http_client.exceptions import HTTPError

    try:
        response = request(**arguments)
    except HTTPError as error:
        raise InstallError(f"SendGrid answered {error.status_code}: {_first_message(error.body)}") from error
    body: dict[str, Any] = json.loads(response.body or b"{}")
    return body


def _first_message(body: bytes | str | None) -> str:
    try:
        errors = json.loads(body or b"{}").get("errors") or [{}]
    except (ValueError, AttributeError):
        return str(body)[:200]
    first = errors[0] if isinstance(errors[0], dict) else {}
    field = f" ({first['field']})" if first.get("field") else ""
    return f"{first.get('message', 'no message')}{field}"
