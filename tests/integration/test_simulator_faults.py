"""`python -m simulator.faults`: a SendGrid outage caused and ended with one command each (docs/simulator-faults.md)."""

from __future__ import annotations

import pytest
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Mail

from simulator.emulators.sendgrid_emulator import SendGridEmulator
from simulator.faults import main

pytestmark = pytest.mark.integration


def _send(emulator: SendGridEmulator) -> int:
    """One mail send through the real SDK; its HTTP status."""
    client = SendGridAPIClient(api_key="SG.local-emulator", host=emulator.url)
    mail = Mail(from_email="giving@example.org", to_emails="ada@example.org", subject="Receipt", plain_text_content="x")
    try:
        return int(client.send(mail).status_code)
    except HTTPError as error:
        return int(error.status_code)


def test_one_command_causes_a_sendgrid_outage_and_one_ends_it(capsys, monkeypatch):
    monkeypatch.delenv("DONATIONS_STACK_NAME", raising=False)  # the local stack's default name
    with SendGridEmulator() as emulator:
        # When the outage is switched on
        assert main(["sendgrid", "outage", "--on", "--url", emulator.url]) == 0
        on = capsys.readouterr().out

        # Then every mail send answers 503 (what SendGrid's "5XX" outage answers look like to the SDK),
        # and the command says what will happen and how to end it
        assert [_send(emulator) for _ in range(2)] == [503, 503]
        assert "receipt-step-failing" in on and "python -m simulator.faults sendgrid outage --off" in on
        # And switching it on twice holds one fault, not two
        assert main(["sendgrid", "outage", "--on", "--url", emulator.url]) == 0
        assert len(emulator.faults.list_faults()) == 1

        # When it is switched off
        assert main(["sendgrid", "outage", "--off", "--url", emulator.url]) == 0
        off = capsys.readouterr().out

        # Then mail goes out again, and the command says how to send back what was parked, for the local stack
        assert _send(emulator) == 202
        assert "1 fault(s) removed" in off and "donations-ops --local redrive receipt" in off


def test_an_emulator_that_does_not_answer_exits_2_and_says_why(capsys):
    assert main(["sendgrid", "outage", "--on", "--url", "http://127.0.0.1:9"]) == 2
    assert "is `make run` running?" in capsys.readouterr().err
