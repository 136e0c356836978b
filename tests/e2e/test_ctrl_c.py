"""Ctrl-C on the README's run command: everything stops, quietly and at once, and it starts again on the
same ports. A file of its own, so pytest-xdist runs it beside the shared local stack's tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest
import requests

from simulator.local.process import port_is_free
from tests.e2e.conftest import donate, run_pasted, start_stack, stop_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_ctrl_c_stops_everything_and_frees_the_ports(tmp_path):
    stack = start_stack(tmp_path)
    ports = [int(url.rsplit(":", 1)[1]) for url in (stack.api, stack.moto, stack.stripe, stack.sendgrid)]
    assert requests.get(f"{stack.api}/", timeout=10).status_code == 200
    # It said where its data lives, and how to operate it: that command, pasted, runs
    assert "Everything is kept in memory: stopping the stack (Ctrl-C) forgets" in stack.log()
    operate = next(line for line in stack.log().splitlines() if line.startswith("Operate it: "))
    assert run_pasted(operate.removeprefix("Operate it: ")).returncode == 0
    # ...and how to donate: that curl, pasted into a shell, makes a donation (no tool beyond curl and date)
    donate_line = next(line for line in stack.log().splitlines() if line.startswith("Try: "))
    pasted = subprocess.run(  # noqa: S603 - bash runs the line the stack printed, against 127.0.0.1
        [shutil.which("bash") or "/bin/bash", "-c", donate_line.removeprefix("Try: ")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert '"status": "succeeded"' in pasted.stdout.replace('":"', '": "'), pasted.stdout

    assert stop_stack(stack) == 0

    assert "Stopped." in stack.log()
    for port in ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()  # nothing listens any more
    with pytest.raises(ProcessLookupError):
        os.killpg(stack.process.pid, 0)  # no process of the group is left


def test_the_run_command_starts_again_at_once_on_the_same_ports_after_ctrl_c(tmp_path):
    # Given a stack that served a donation, so its ports hold closed connections (TIME_WAIT)...
    first = start_stack(tmp_path / "first")
    try:
        assert donate(first.api, "restart-1").status_code == 201
    finally:
        # ...and was stopped with Ctrl-C
        assert stop_stack(first) == 0

    # When the run command is started again at once on the same ports
    second = start_stack(tmp_path / "second", first.ports)
    try:
        # Then it starts (no "Port ... is in use") and takes donations
        assert "is in use" not in second.log()
        assert donate(second.api, "restart-2").status_code == 201
    finally:
        assert stop_stack(second) == 0


def _nothing_listens_and_a_server_can_bind(port: int) -> bool:
    """The port is free as the run command checks it (simulator.local.process.port_is_free)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False  # something still listens
    except ConnectionRefusedError:
        return port_is_free(port)


CTRL_C_CYCLES = 20
# The twenty cycles run as two tests of ten, each on ports of its own, which pytest-xdist may run side by
# side (tests/support/scheduling.py, SPREAD_OVER_WORKERS): the suite's longest job was these cycles in one test.
HALVES = 2


# About 6 s a cycle on an idle 2-core machine (start-up is most of it: moto's CloudFormation deploy of the
# template, then loading the functions); the time limit leaves room for a busy one.
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("half", range(HALVES), ids=["cycles 1-10", "cycles 11-20"])
def test_ctrl_c_stops_cleanly_every_time_in_twenty_start_donate_stop_cycles(tmp_path, half):
    # Given the run command, started again and again on the same ports, each time with a donation in
    # progress (its card save and receipt run in the pollers, its webhooks come in) when Ctrl-C comes
    ports: dict[str, int] | None = None
    per_half = CTRL_C_CYCLES // HALVES
    for cycle in range(half * per_half, (half + 1) * per_half):
        stack = start_stack(tmp_path / f"cycle-{cycle}", ports)
        ports = stack.ports
        try:
            assert donate(stack.api, f"ctrl-c-{cycle}").status_code == 201
        finally:
            # When the user presses Ctrl-C
            pressed = time.monotonic()
            code = stop_stack(stack)
            seconds = time.monotonic() - pressed

        # Then the stack stops within 5 s, with exit code 0 and not one traceback...
        log = stack.log()
        assert code == 0, f"cycle {cycle}: exit code {code}\n{log}"
        assert "Traceback" not in log, f"cycle {cycle}: a traceback in the output\n{log}"
        assert "Stopped." in log
        assert seconds < 5, f"cycle {cycle}: stopping took {seconds:.1f} s\n{log}"
        # ...and every port it used is free again at once
        busy = [name for name, port in stack.ports.items() if not _nothing_listens_and_a_server_can_bind(port)]
        assert not busy, f"cycle {cycle}: ports still in use: {busy}"
