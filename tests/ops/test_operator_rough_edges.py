"""donations-ops as an evaluator meets it on the local stack: commands it suggests run as pasted, a redrive
during an outage says the step still fails, and the donor lookup and report say what they mean."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from typing import Any

import pytest

from donations_ops.cli import main
from donations_ops.target import Target
from tests.ops.test_ops_cli import DONATION, donate, ops, ops_json, park_bouncing_receipt, park_transient

pytestmark = pytest.mark.integration


def parked_ids(world: Any) -> list[str]:
    return [json.loads(m["Body"])["donation_id"] for m in world.queued("receipt_dlq")]


@pytest.fixture
def receipt_step_alarm(pipeline: Any) -> Iterator[str]:
    """The receipt step's failing alarm; set back to OK afterwards (moto never evaluates alarms)."""
    cloudwatch = pipeline.clients("cloudwatch")
    name = str(pipeline.stack.alarms["ReceiptStepFailingAlarm"])
    yield name
    for alarm in pipeline.stack.alarms.values():
        cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="reset by test")


def _set(pipeline: Any, alarm: str, state: str) -> None:
    pipeline.clients("cloudwatch").set_alarm_state(AlarmName=alarm, StateValue=state, StateReason="set by test")


# --------------------------------------------------------------------------- a redrive during an outage


def test_a_redrive_while_the_steps_alarm_fires_moves_nothing_and_says_why(world, pipeline, capsys, receipt_step_alarm):
    # Given a receipt parked by an outage, and SendGrid still failing: receipt-step-failing is in ALARM
    parked = park_transient(world, "key-guard-outage")
    _set(pipeline, receipt_step_alarm, "ALARM")

    # When the operator redrives the receipts
    code, out, err = ops(pipeline, capsys, "redrive", "receipt", "--donation", parked)

    # Then nothing moves, the output says the step still fails and how to go ahead, exit 3 (as for a
    # redrive that left messages which would fail again)
    assert code == 3, err
    assert f"{receipt_step_alarm} is in ALARM: the step still fails" in out
    assert f"--stack-name {pipeline.stack_name} redrive receipt --donation {parked} --force" in out
    assert parked_ids(world) == [parked]
    assert world.record(parked).redrives == 0
    refused = json.loads(ops(pipeline, capsys, "redrive", "receipt", "--json")[1])
    assert (refused["moved"], refused["alarms_firing"], refused["exit_code"]) == ([], [receipt_step_alarm], 3)

    # When the operator forces it (the alarm lags a fix by its evaluation periods)
    code, out, err = ops(pipeline, capsys, "redrive", "receipt", "--donation", parked, "--force")

    # Then it moves, still with the warning
    assert code == 0, err
    assert "redriven anyway (--force)" in out and f"Moved 1 message(s) from ReceiptDLQ to ReceiptQueue: {parked}" in out
    assert parked_ids(world) == []


def test_only_the_steps_own_alarms_hold_a_redrive_back(world, pipeline, capsys, receipt_step_alarm):
    # Given a parked receipt: its DLQ's alarm fires (that is why one redrives), and the other step's alarm
    park_transient(world, "key-guard-other")
    _set(pipeline, pipeline.stack.alarms["ReceiptDLQAlarm"], "ALARM")
    _set(pipeline, pipeline.stack.alarms["TokenizeStepFailingAlarm"], "ALARM")

    code, out, err = ops(pipeline, capsys, "redrive", "receipt")

    assert code == 0, err
    assert "in ALARM" not in out and parked_ids(world) == []


# --------------------------------------------------------------------------- suggested commands


def _suggested(out: str, start: str) -> list[str]:
    """The command on the line that starts with ``start`` (after it), as argv without the program name."""
    line = next(line for line in out.splitlines() if line.strip().startswith(start))
    words = shlex.split(line.strip().removeprefix(start).strip().strip("`"))
    assert words[0] == "donations-ops", line
    return words[1:]


def test_the_commands_a_local_redrive_suggests_run_as_pasted(world, pipeline, capsys, monkeypatch):
    # Given a receipt SendGrid refused (permanent), on the local stack (--local, its stack name from the run command)
    poison = park_bouncing_receipt(world, "key-suggest-poison")
    monkeypatch.setenv("DONATIONS_STACK_NAME", pipeline.stack_name)
    capsys.readouterr()

    # When the operator redrives with --local
    code = main(["--local", "redrive", "receipt"], clients=pipeline.clients)
    out = capsys.readouterr().out

    # Then each command it suggests names the same stack, with --local (else: "You must specify a region")
    assert code == 3
    forced = _suggested(out, "Once the cause is fixed:")
    assert forced == ["--local", "--stack-name", pipeline.stack_name, "redrive", "receipt", "--force"]
    hint = next(line for line in out.splitlines() if "→" in line)
    assert f"`donations-ops --local --stack-name {pipeline.stack_name} donor fix-email {poison} --email NEW" in hint
    # And pasted, it runs against that stack
    monkeypatch.delenv("DONATIONS_STACK_NAME")
    assert main(forced, clients=pipeline.clients) == 0
    assert parked_ids(world) == []


def test_the_command_a_deployed_redrive_suggests_names_what_the_operator_gave(world, pipeline, capsys):
    park_bouncing_receipt(world, "key-suggest-deployed")

    code, out, _ = ops(pipeline, capsys, "--region", "eu-west-1", "redrive", "receipt")

    assert code == 3
    assert _suggested(out, "Once the cause is fixed:") == [
        "--stack-name", pipeline.stack_name, "--region", "eu-west-1", "redrive", "receipt", "--force"
    ]  # fmt: skip


# --------------------------------------------------------------------------- donor find and the report


def test_a_declined_gifts_receipt_is_not_due_rather_than_pending(world, pipeline, capsys):
    # Given a donor whose card was declined (the donor was told so: 402)
    declined = world.post({**DONATION, "payment_method": "pm_card_chargeDeclined"}, key="key-declined-find")
    assert declined.status == 402

    # When the operator finds the donor
    found = ops_json(pipeline, capsys, "donor", "find", "--email", DONATION["email"])["donations"]
    code, out, _ = ops(pipeline, capsys, "donor", "find", "--email", DONATION["email"])

    # Then no receipt is said to be on its way: none is due for a gift that was not charged
    [row] = [d for d in found if d["status"] == "declined"]
    assert row["receipt"] == "not due"
    assert code == 0
    line = next(line for line in out.splitlines() if row["donation_id"] in line)
    assert "not due" in line and "pending" not in line
    assert ops_json(pipeline, capsys, "donor", "show", row["donation_id"])["receipt"]["status"] == "not due"


def test_the_reports_rows_each_say_what_they_count(world, pipeline, capsys):
    # Given two donations received today
    donate(world, "key-report-label-1")
    donate(world, "key-report-label-2")
    world.drain()

    # When the operator reads the day's report
    code, out, _ = ops(pipeline, capsys, "report", "--date", "today")

    # Then the count and the money are two rows, each labelled

    rows = [line.split() for line in out.splitlines()]
    assert code == 0
    assert ["received", "2", "donations"] in rows
    assert ["amount", "received", "50.00", "USD"] in rows
    assert sum(1 for row in rows if row[:1] == ["received"]) == 1  # no second, unlabelled "received"


# --------------------------------------------------------------------------- the console, the same


CONSOLE_PORT = 3000


def _console(pipeline: Any) -> Any:
    from simulator.local.console_api import ConsoleApi, console_origins

    name = pipeline.stack_name
    target = Target.local_stack("http://127.0.0.1:4566", name)
    return ConsoleApi(pipeline.clients, name, f"{name}-", console_origins(CONSOLE_PORT), target)


def _post(console: Any, route: str, body: dict[str, Any]) -> tuple[int, Any]:
    """A POST as the console's own page sends it (its header and Origin: the console's CSRF guard)."""
    from simulator.local.console_api import CONSOLE_HEADER

    headers = [(CONSOLE_HEADER, "1"), ("Origin", f"http://127.0.0.1:{CONSOLE_PORT}")]
    return console.handle("POST", route, "", json.dumps(body).encode(), headers)  # type: ignore[no-any-return]


def test_the_consoles_redrive_refuses_while_the_steps_alarm_fires_and_force_goes_ahead(
    world, pipeline, receipt_step_alarm
):
    # Given a parked receipt while receipt-step-failing is in ALARM
    parked = park_transient(world, "key-console-guard")
    _set(pipeline, receipt_step_alarm, "ALARM")
    console = _console(pipeline)

    # When the operator presses Redrive: refused (the page shows the error), nothing moves
    status, answer = _post(console, "ops/redrive", {"queue": "receipt", "donation": parked})
    assert status == 409 and f"{receipt_step_alarm} in ALARM: the step still fails" in answer["error"]
    assert parked_ids(world) == [parked]

    # When the operator presses Force redrive: it goes back
    status, answer = _post(console, "ops/redrive", {"queue": "receipt", "donation": parked, "force": True})
    assert status == 200 and answer["moved"] == [parked] and answer["alarms_firing"] == [receipt_step_alarm]
    assert parked_ids(world) == []


def test_the_consoles_hints_are_commands_for_the_local_stack(world, pipeline):
    poison = park_bouncing_receipt(world, "key-console-hint")

    status, shown = _console(pipeline).handle("GET", "ops/show", f"donation={poison}", b"")

    assert status == 200
    assert f"`donations-ops --local --stack-name {pipeline.stack_name} donor fix-email {poison}" in shown["hint"]
