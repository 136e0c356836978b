"""donations-ops card-testing against the template deployed in moto: the attack mode, its counts, the offenders."""

from __future__ import annotations

import json
from typing import Any

import pytest

from donations_ops.cli import main
from simulator.local.pipeline import LOCAL_SOURCE_IP_HEADER
from tests.support.keys import a_key
from tests.support.world import DONATION, World

pytestmark = pytest.mark.integration


def ops(world: World, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["--stack-name", world.pipeline.stack.stack_name, *args], clients=world.pipeline.clients)
    return code, capsys.readouterr().out


def decline(world: World, key: str, ip: str, email: str) -> Any:
    body = {**DONATION, "email": email, "payment_method": "pm_card_chargeDeclined"}
    return world.post(body, key=a_key(key), headers={LOCAL_SOURCE_IP_HEADER: ip})


def test_status_shows_the_mode_the_last_minutes_and_the_worst_offenders(world, capsys):
    with world.template_card_testing():
        for n in range(3):
            decline(world, f"ops-{n}", "198.51.100.66", f"tester{n}@example.org")
        decline(world, "ops-other", "198.51.100.67", "someone@example.org")

        code, out = ops(world, capsys, "card-testing", "status")

    assert code == 0
    assert "Attack mode: off" in out
    assert "198.51.100.66" in out and "t***@e***.org" in out  # addresses shown, emails masked
    rows = [
        [cell.strip() for cell in line.split("│") if cell.strip()] for line in out.splitlines() if "198.51.100." in line
    ]
    assert rows == [["ip", "198.51.100.66", "3"], ["ip", "198.51.100.67", "1"]]  # most declines first


def test_an_operator_holds_the_mode_on_sees_it_and_hands_it_back(world, capsys):
    code, out = ops(world, capsys, "card-testing", "on", "--minutes", "30", "--by", "alice")
    assert code == 0 and "Attack mode: ON" in out and "forced on by alice" in out

    code, out = ops(world, capsys, "card-testing", "status", "--json", "--fail-on-attack")
    status = json.loads(out)
    assert code == 1  # --fail-on-attack: for scripts and monitors
    assert status["mode"]["under_attack"] is True and status["mode"]["forced"] == "on"

    code, out = ops(world, capsys, "card-testing", "auto", "--close")
    assert code == 0 and "Attack mode: off" in out
    code, _ = ops(world, capsys, "card-testing", "status", "--fail-on-attack")
    assert code == 0


def test_held_off_declines_do_not_open_the_mode(world, capsys):
    ops(world, capsys, "card-testing", "off", "--minutes", "10", "--by", "bob")
    with world.template_card_testing(breaker_declines=2) as screening:
        for n in range(3):
            decline(world, f"held-off-{n}", f"10.9.0.{n}", f"h{n}@example.org")

        assert not screening.attack_mode.current().under_attack
    _, out = ops(world, capsys, "card-testing", "status")
    assert "forced off by bob" in out
