"""The commands the README and the docs site show (docs/snippets/*.sh), run as a reader runs them: the first
donation, the five-minute tour (an outage, its alarm, the fix, the redrive) and the deployed smoke check,
against a local stack started with the tour's own variables."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from simulator.local.process import ROOT, RunningStack, start_stack, stop_stack
from tests.e2e.conftest import E2E_ENVIRONMENT, donate, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SNIPPETS = ROOT / "docs" / "snippets"


def _tour_variables() -> dict[str, str]:
    """The variables the tour's `make run` line sets (docs/snippets/tour-run.sh)."""
    text = (SNIPPETS / "tour-run.sh").read_text()
    line = next(line for line in text.splitlines() if line.endswith("make run"))
    words = shlex.split(line)[:-2]
    return dict(word.split("=", 1) for word in words)


@pytest.fixture(scope="module")
def tour_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A stack of its own (the tour redrives every parked receipt), with the tour's variables on top of
    the e2e settings; the e2e settings must not contradict the tour's (checked in the first test)."""
    log = tmp_path_factory.mktemp("tour") / "local-stack.log"
    stack = start_stack(log, stack_name="donations-tour", extra_env={**E2E_ENVIRONMENT, **_tour_variables()})
    yield stack
    stop_stack(stack)


def _run(script: str, stack: RunningStack, **env: str) -> subprocess.CompletedProcess[str]:
    """A snippet as a reader runs it from the repository's root, pointed at this stack."""
    environment = {
        **os.environ,
        "API": stack.api,
        "SENDGRID": stack.sendgrid,
        "DONATIONS_MOTO_PORT": str(urlsplit(stack.moto).port),
        "DONATIONS_STACK_NAME": stack.stack_name,
        **env,
    }
    return subprocess.run(  # noqa: S603 - our own snippets
        ["bash", str(SNIPPETS / script)],  # noqa: S607 - bash from PATH, as a reader runs it
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _donation(stack: RunningStack, donation_id: str) -> dict[str, object]:
    answer: dict[str, object] = requests.get(f"{stack.api}/donations/{donation_id}", timeout=10).json()
    return answer


def _answers(output: str) -> list[dict[str, object]]:
    """The JSON answers a snippet printed, one a line."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_the_tour_variables_are_the_e2e_timing(tour_stack):
    # Given the tour's `make run` line / Then it speeds time up as the end-to-end tests do (RUNBOOK timing)
    for name, value in _tour_variables().items():
        assert E2E_ENVIRONMENT[name] == value, name


def test_the_first_donation_is_charged_and_its_receipt_sent(tour_stack):
    # When the README's first donation runs against the stack
    ran = _run("first-donation.sh", tour_stack)

    # Then the POST answers succeeded and the GET shows that donation
    assert ran.returncode == 0, ran.stderr
    created, shown = _answers(ran.stdout)
    assert created["status"] == "succeeded"
    assert shown["donation_id"] == created["donation_id"]
    posted = str(created["donation_id"])
    # And the card is saved and the receipt sent, as the comment says (two queues: either may finish first)
    done = wait_for(
        lambda: (d := _donation(tour_stack, posted))["receipt_sent"] and d["card_saved"] and d,
        what="the receipt and the saved card",
    )
    assert done["card_saved"] is True and done["receipt_sent"] is True


def test_the_deployed_smoke_check_asks_cloudformation_for_the_stack_and_donates(tour_stack, tmp_path):
    # Given a stand-in `aws` that answers describe-stacks for samconfig.toml's stack with this stack's API
    calls = tmp_path / "aws-calls"
    stand_in = tmp_path / "bin" / "aws"
    stand_in.parent.mkdir()
    stand_in.write_text(f'#!/usr/bin/env bash\necho "$@" >> {calls}\necho {tour_stack.api}\n')
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IXUSR)

    # When the deploy guide's smoke check runs
    ran = _run("deployed-smoke.sh", tour_stack, PATH=f"{stand_in.parent}{os.pathsep}{os.environ['PATH']}")

    # Then it asked for the ApiUrl output of donations-dev, and the donation succeeded there
    assert ran.returncode == 0, ran.stderr
    assert calls.read_text().split() == [
        "cloudformation",
        "describe-stacks",
        "--stack-name",
        "donations-dev",
        "--query",
        "Stacks[0].Outputs[?OutputKey=='ApiUrl'].OutputValue",
        "--output",
        "text",
    ]
    assert _answers(ran.stdout)[0]["status"] == "succeeded"


def test_the_tour_outage_parks_the_receipt_and_the_redrive_sends_it(tour_stack):
    # Given the tour's SendGrid outage
    outage = _run("sendgrid-outage.sh", tour_stack)
    assert outage.returncode == 0, outage.stderr
    assert json.loads(outage.stdout)["id"]
    try:
        # When a donor gives: charged at once, the receipt retried until it is parked
        answer = donate(tour_stack.api, "tour-outage", save_card=False)
        assert answer.status_code == 201, answer.text
        donation_id = answer.json()["donation_id"]
        wait_for(
            lambda: _donation(tour_stack, donation_id)["failed_step"] == "send_receipt",
            timeout=90,
            what="the receipt parked after its retries",
        )
        # Then operators were told by the alarm the tour names, as the console shows it
        assert wait_for(lambda: _alarm_notices(tour_stack, "receipt-step-failing"), what="the step-failing alarm")
    finally:
        # When the outage ends (the tour's fix)
        recovered = _run("sendgrid-recovers.sh", tour_stack)
        assert recovered.returncode == 0, recovered.stderr

    # And, as the tour says, once the step-failing alarm is back to OK (a redrive refuses while it fires),
    # the tour's redrive runs. The receipt's last try is recorded before its StepRetries datapoint reaches
    # CloudWatch, so an OK seen just then can turn to ALARM once more: the redrive then refuses and moves
    # nothing (exit 3), and the reader waits for OK and runs it again, as the refusal tells them to.
    redrive = _redrive_once_cleared(tour_stack, "receipt-step-failing")

    # Then the redrive succeeded, the receipt is sent and the report was printed
    assert redrive.returncode == 0, redrive.stdout + redrive.stderr
    assert "Receipts:" in redrive.stdout
    wait_for(lambda: _donation(tour_stack, donation_id)["receipt_sent"], what="the redriven receipt")


def _redrive_once_cleared(stack: RunningStack, alarm: str, attempts: int = 3) -> subprocess.CompletedProcess[str]:
    for _ in range(attempts):
        wait_for(lambda: _cleared(stack, alarm), timeout=90, what=f"{alarm} back to OK")
        redrive = _run("tour-redrive.sh", stack)
        if not (redrive.returncode == 3 and "in ALARM" in redrive.stdout):
            break
        assert "redrive" in redrive.stdout and "nothing moved" in redrive.stdout, redrive.stdout
    return redrive


def _cleared(stack: RunningStack, alarm: str) -> bool:
    """The alarm is OK now, and its latest notification (newest first) says so: it fires no more."""
    status = requests.get(f"{stack.api}/_local/status", timeout=10).json()
    [state] = [a["state"] for a in status["alarms"] if a["name"] == f"{stack.stack_name}-{alarm}"]
    latest = next(iter(_alarm_notices(stack, alarm, state=None)), None)
    return state == "OK" and latest is not None and latest["message"]["NewStateValue"] == "OK"


def _alarm_notices(stack: RunningStack, alarm: str, state: str | None = "ALARM") -> list[dict[str, Any]]:
    """The operator notifications of ``alarm`` going to ``state`` (any state: None), newest first, as the
    console lists them."""
    notifications = requests.get(f"{stack.api}/_local/status", timeout=10).json()["notifications"]
    return [
        n
        for n in notifications
        if n["message"].get("AlarmName") == f"{stack.stack_name}-{alarm}"
        and state in (None, n["message"]["NewStateValue"])
    ]
