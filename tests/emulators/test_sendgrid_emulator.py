"""The SendGrid emulator driven by the real sendgrid SDK over HTTP."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from python_http_client import exceptions as http_errors
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import CustomArg, Mail

from simulator.emulators.sendgrid_emulator import (
    ACCESS_FORBIDDEN,
    CREDITS_EXCEEDED,
    INVALID_ADDRESS,
    INVALID_GRANT,
    INVALID_TEMPLATE,
    MAX_PAYLOAD_BYTES,
    UNVERIFIED_SENDER,
    SendGridControl,
    SendGridEmulator,
)

pytestmark = pytest.mark.integration

ClientFactory = Callable[..., SendGridAPIClient]
TEMPLATE = "d-0123456789abcdef0123456789abcdef"


def receipt(to: str = "donor@example.org", donation_id: str = "don_1", **custom: Any) -> Mail:
    mail = Mail(from_email="receipts@charity.example", to_emails=to)
    mail.template_id = TEMPLATE
    mail.dynamic_template_data = {"amount": "25.00", "currency": "USD"}
    mail.custom_arg = CustomArg("donation_id", donation_id)
    for key, value in custom.items():
        mail.custom_arg = CustomArg(key, value)
    return mail


def error_body(exc: http_errors.HTTPError) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def test_accepted_mail_gets_a_message_id_and_lands_in_the_outbox(
    sendgrid_emu: SendGridEmulator, sendgrid_client: ClientFactory
) -> None:
    resp = sendgrid_client().send(receipt(donation_id="don_ok"))

    assert resp.status_code == 202
    assert resp.body == b""
    message_id = resp.headers["X-Message-Id"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", message_id)
    [mail] = sendgrid_emu.outbox_for("don_ok")
    assert mail["message_id"] == message_id
    assert mail["to"] == ["donor@example.org"]
    assert mail["from"]["email"] == "receipts@charity.example"
    assert mail["template_id"] == TEMPLATE
    assert mail["dynamic_template_data"] == {"amount": "25.00", "currency": "USD"}
    assert mail["custom_args"] == {"donation_id": "don_ok"}
    assert sendgrid_emu.outbox_for("don_other") == []


def test_invalid_recipient_address_is_a_400_with_sendgrid_body(
    sendgrid_emu: SendGridEmulator, sendgrid_client: ClientFactory
) -> None:
    with pytest.raises(http_errors.BadRequestsError) as caught:
        sendgrid_client().send(receipt(to="donor@no-tld"))

    [error] = error_body(caught.value)["errors"]
    assert error["field"] == "personalizations.0.to.0.email"
    assert error["message"] == INVALID_ADDRESS
    assert error["help"].startswith("http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#")
    assert sendgrid_emu.outbox == []


def test_rejected_recipient_domain_is_refused(sendgrid_emu: SendGridEmulator, sendgrid_client: ClientFactory) -> None:
    sendgrid_emu.reject_recipient("bounce.example")
    with pytest.raises(http_errors.BadRequestsError) as caught:
        sendgrid_client().send(receipt(to="someone@bounce.example"))
    assert error_body(caught.value)["errors"][0]["message"] == INVALID_ADDRESS

    sendgrid_client().send(receipt(to="someone@fine.example"))
    assert len(sendgrid_emu.outbox) == 1


def test_mail_without_template_or_content_is_rejected(sendgrid_client: ClientFactory) -> None:
    mail = Mail(from_email="receipts@charity.example", to_emails="donor@example.org", subject="Thanks")
    with pytest.raises(http_errors.BadRequestsError) as caught:
        sendgrid_client().send(mail)
    assert [e["field"] for e in error_body(caught.value)["errors"]] == ["content"]


def test_subject_is_required_without_a_template(sendgrid_client: ClientFactory) -> None:
    mail = Mail(from_email="receipts@charity.example", to_emails="donor@example.org", plain_text_content="hi")
    with pytest.raises(http_errors.BadRequestsError) as caught:
        sendgrid_client().send(mail)
    assert [e["field"] for e in error_body(caught.value)["errors"]] == ["subject"]


def test_unknown_template_is_rejected_when_templates_are_configured() -> None:
    with SendGridEmulator(templates={"d-known"}) as emu:
        client = SendGridAPIClient(api_key="SG.test", host=emu.url)
        with pytest.raises(http_errors.BadRequestsError) as caught:
            client.send(receipt())
        [error] = error_body(caught.value)["errors"]
        assert (error["field"], error["message"]) == ("template_id", INVALID_TEMPLATE)


def test_custom_args_must_be_strings(sendgrid_emu: SendGridEmulator, sendgrid_client: ClientFactory) -> None:
    with pytest.raises(http_errors.BadRequestsError) as caught:
        sendgrid_client().send(receipt(attempt=2))  # the SDK happily sends the int
    assert error_body(caught.value)["errors"][0]["field"] == "custom_args.attempt"
    assert sendgrid_emu.outbox == []


def test_unverified_sender_is_forbidden() -> None:
    with SendGridEmulator(verified_senders={"verified.example"}) as emu:
        client = SendGridAPIClient(api_key="SG.test", host=emu.url)
        with pytest.raises(http_errors.ForbiddenError):
            client.send(receipt())
        assert emu.outbox == []


def test_bad_or_missing_api_key_is_401(sendgrid_emu: SendGridEmulator, sendgrid_client: ClientFactory) -> None:
    with pytest.raises(http_errors.UnauthorizedError) as caught:
        sendgrid_client(key="not-a-sendgrid-key").send(receipt())
    message = error_body(caught.value)["errors"][0]["message"]
    assert message == "The provided authorization grant is invalid, expired, or revoked"

    resp = requests.post(f"{sendgrid_emu.url}/v3/mail/send", json={}, timeout=5)
    assert resp.status_code == 401
    assert sendgrid_emu.outbox == []


def test_rate_limit_carries_sendgrid_headers(sendgrid_emu: SendGridEmulator, sendgrid_client: ClientFactory) -> None:
    sendgrid_emu.faults.add("rate_limit", times=1)

    with pytest.raises(http_errors.TooManyRequestsError) as caught:
        sendgrid_client().send(receipt())

    headers = caught.value.headers
    assert headers["X-RateLimit-Remaining"] == "0"
    assert int(headers["X-RateLimit-Limit"]) > 0
    assert int(headers["X-RateLimit-Reset"]) >= int(time.time())
    assert error_body(caught.value)["errors"][0]["message"] == "too many requests"
    assert sendgrid_client().send(receipt()).status_code == 202  # times=1: next call passes


@pytest.mark.parametrize(
    ("status", "exc_type"),
    [(500, http_errors.InternalServerError), (503, http_errors.ServiceUnavailableError)],
)
def test_server_errors(
    sendgrid_emu: SendGridEmulator, sendgrid_client: ClientFactory, status: int, exc_type: type[Exception]
) -> None:
    sendgrid_emu.faults.add("http_error", status=status, times=1)
    with pytest.raises(exc_type) as caught:
        sendgrid_client().send(receipt())
    assert error_body(caught.value)["errors"] == [{"field": None, "message": "internal server error"}]  # the spec's 500
    assert sendgrid_emu.outbox == []


def test_after_phase_fault_sends_the_mail_anyway(
    sendgrid_emu: SendGridEmulator, sendgrid_client: ClientFactory
) -> None:
    sendgrid_emu.faults.add("http_error", status=500, times=1, phase="after")

    with pytest.raises(http_errors.InternalServerError):
        sendgrid_client().send(receipt(donation_id="don_after"))

    assert len(sendgrid_emu.outbox_for("don_after")) == 1


def test_connection_reset_before_sending_loses_nothing_but_the_reply(
    sendgrid_emu: SendGridEmulator, sendgrid_client: ClientFactory
) -> None:
    sendgrid_emu.faults.add("reset", times=1)
    with pytest.raises(OSError):  # urllib: ConnectionResetError / URLError, both OSErrors
        sendgrid_client().send(receipt())
    assert sendgrid_emu.outbox == []


def test_timeout_fault_is_bounded_by_the_client_timeout(
    sendgrid_emu: SendGridEmulator, sendgrid_client: ClientFactory
) -> None:
    sendgrid_emu.faults.add("timeout", times=1, latency_ms=10_000)
    started = time.monotonic()
    with pytest.raises(OSError):
        sendgrid_client(timeout=0.3).send(receipt())
    assert time.monotonic() - started < 5


def test_injected_latency_is_measurable(sendgrid_emu: SendGridEmulator, sendgrid_client: ClientFactory) -> None:
    sendgrid_emu.faults.add("latency", latency_ms=200, times=1)
    client = sendgrid_client()

    started = time.monotonic()
    client.send(receipt())
    assert time.monotonic() - started >= 0.2

    sendgrid_emu.set_latency("POST /v3/mail/send", 150)
    started = time.monotonic()
    client.send(receipt())
    assert time.monotonic() - started >= 0.15


def test_outbox_and_rejections_over_the_control_api(
    sendgrid_emu: SendGridEmulator, sendgrid_client: ClientFactory
) -> None:
    control = SendGridControl(sendgrid_emu.url)
    client = sendgrid_client()
    client.send(receipt(donation_id="don_a"))
    client.send(receipt(donation_id="don b/c"))

    assert [m["custom_args"]["donation_id"] for m in control.outbox()] == ["don_a", "don b/c"]
    assert len(control.outbox("don b/c")) == 1
    assert control.state()["requests"] == {"POST /v3/mail/send": 2}

    control.reject_recipient("donor@example.org")
    with pytest.raises(http_errors.BadRequestsError):
        client.send(receipt())
    control.clear_rejections()
    control.reset()
    assert control.outbox() == []


def test_sandbox_mode_validates_without_delivering(sendgrid_emu: SendGridEmulator) -> None:
    body = receipt().get()
    body["mail_settings"] = {"sandbox_mode": {"enable": True}}
    resp = requests.post(
        f"{sendgrid_emu.url}/v3/mail/send", json=body, headers={"Authorization": "Bearer SG.x"}, timeout=5
    )
    assert resp.status_code == 200
    assert sendgrid_emu.outbox == []


def test_lock_timeout_is_not_a_sendgrid_fault(sendgrid_emu: SendGridEmulator) -> None:
    with pytest.raises(ValueError, match="unsupported fault kind"):
        sendgrid_emu.faults.add("lock_timeout")


# -- SendGrid's documented refusals -----------------------------------------------------------------------


def test_a_revoked_key_is_401_until_reset(sendgrid_emu: SendGridEmulator, sendgrid_client: ClientFactory) -> None:
    sendgrid_emu.revoke_key("SG.test")

    with pytest.raises(http_errors.UnauthorizedError) as caught:
        sendgrid_client().send(receipt())
    assert error_body(caught.value)["errors"] == [{"message": INVALID_GRANT, "field": None, "help": None}]
    assert sendgrid_client(key="SG.other").send(receipt()).status_code == 202  # only that key

    sendgrid_emu.reset()
    assert sendgrid_client().send(receipt()).status_code == 202


def test_an_account_out_of_credits_is_401_maximum_credits_exceeded_for_every_key(
    sendgrid_emu: SendGridEmulator, sendgrid_client: ClientFactory
) -> None:
    # SendGrid's "4XX API Errors" support article and a captured response of the real service:
    # 401 {"errors":[{"message":"Maximum credits exceeded","field":null,"help":null}]}.
    sendgrid_emu.exhaust_credits()

    for key in ("SG.test", "SG.other"):
        with pytest.raises(http_errors.UnauthorizedError) as caught:
            sendgrid_client(key=key).send(receipt())
        assert error_body(caught.value) == {"errors": [{"message": CREDITS_EXCEEDED, "field": None, "help": None}]}
    assert sendgrid_emu.outbox == []

    SendGridControl(sendgrid_emu.url).restore_credits()
    assert sendgrid_client().send(receipt()).status_code == 202


def test_a_key_without_the_mail_send_scope_is_403_access_forbidden(
    sendgrid_emu: SendGridEmulator, sendgrid_client: ClientFactory
) -> None:
    sendgrid_emu.remove_mail_send_scope("SG.test")

    with pytest.raises(http_errors.ForbiddenError) as caught:
        sendgrid_client().send(receipt())

    assert error_body(caught.value)["errors"] == [{"message": ACCESS_FORBIDDEN, "field": None, "help": None}]
    assert sendgrid_emu.outbox == []


def test_an_unverified_sender_is_403_naming_the_from_field(
    sendgrid_emu: SendGridEmulator, sendgrid_client: ClientFactory
) -> None:
    sendgrid_emu.unverify_sender("charity.example")

    with pytest.raises(http_errors.ForbiddenError) as caught:
        sendgrid_client().send(receipt())

    assert error_body(caught.value)["errors"] == [{"message": UNVERIFIED_SENDER, "field": "from", "help": None}]
    assert sendgrid_emu.outbox == []


def test_a_body_over_30_mb_is_413(sendgrid_emu: SendGridEmulator) -> None:
    body = receipt().get()
    body["attachments"] = [{"content": "A" * MAX_PAYLOAD_BYTES, "filename": "big.txt"}]

    resp = requests.post(
        f"{sendgrid_emu.url}/v3/mail/send", json=body, headers={"Authorization": "Bearer SG.x"}, timeout=30
    )

    assert resp.status_code == 413
    assert resp.json()["errors"] == [{"message": "content too large", "field": None, "help": None}]
    assert sendgrid_emu.outbox == []


def test_the_schema_refuses_what_the_sdk_lets_through(sendgrid_emu: SendGridEmulator) -> None:
    body = receipt().get()
    body["custom_args"] = "donation_id=don_1"  # the SDK sends whatever it is given

    resp = requests.post(
        f"{sendgrid_emu.url}/v3/mail/send", json=body, headers={"Authorization": "Bearer SG.x"}, timeout=5
    )

    assert resp.status_code == 400
    [error] = resp.json()["errors"]
    assert error["field"] == "custom_args"
    assert error["help"].endswith("errors.html#message.custom_args")


@pytest.mark.parametrize(("method", "path", "status"), [("GET", "/v3/mail/send", 405), ("POST", "/v3/mail/sent", 404)])
def test_other_routes_and_methods(sendgrid_emu: SendGridEmulator, method: str, path: str, status: int) -> None:
    resp = requests.request(method, f"{sendgrid_emu.url}{path}", headers={"Authorization": "Bearer SG.x"}, timeout=5)
    assert resp.status_code == status
    assert resp.json()["errors"][0]["field"] is None


def test_account_changes_over_the_control_api(sendgrid_emu: SendGridEmulator, sendgrid_client: ClientFactory) -> None:
    control = SendGridControl(sendgrid_emu.url)

    control.unverify_sender("receipts@charity.example")
    with pytest.raises(http_errors.ForbiddenError):
        sendgrid_client().send(receipt())
    control.remove_mail_send_scope("SG.test")
    with pytest.raises(http_errors.ForbiddenError):
        sendgrid_client().send(receipt())
    control.revoke_key("SG.test")
    with pytest.raises(http_errors.UnauthorizedError):
        sendgrid_client().send(receipt())

    control.reset()
    assert sendgrid_client().send(receipt()).status_code == 202
