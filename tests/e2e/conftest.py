"""Start the README's run command (the local stack) in a subprocess and talk to it over HTTP only."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from simulator.local.process import RunningStack, stop_stack
from simulator.local.process import start_stack as start_local_stack
from tests.support.keys import a_key
from tests.support.world import CARD_TESTING_OUT_OF_REACH

__all__ = ["RunningStack", "donate", "start_stack", "stop_stack", "wait_for"]

# Time passes 10x faster for alarms and retries alike, so that they keep the ratio they have on AWS
# (RUNBOOK.md, "When the alarms fire"): alarm periods of 60 s take 6 s, evaluated every 0.5 s, and the
# retry backoff starts at 1 s instead of 10 (its cap, 60 s, is not reached before the DLQ either): an
# outage parks a receipt 15.5-31 s after its first failure, and raises receipt-step-failing within
# 12 s. Full JSON log lines let the log scans read everything.
E2E_ENVIRONMENT = {
    "DONATIONS_LOCAL_TIME_SCALE": "10",
    "DONATIONS_LOCAL_TICK": "0.5",
    "DONATIONS_FN_BACKOFF_BASE_SECONDS": "1",
    "DONATIONS_FN_BACKOFF_CAP_SECONDS": "60",
    "DONATIONS_LOCAL_VERBOSE": "1",
    # The e2e tests share one stack and donate from one address: card-testing limits out of reach
    # (tests/support/world.py says why; tests/attack runs a stack with the template's).
    **{f"DONATIONS_FN_{name}": value for name, value in CARD_TESTING_OUT_OF_REACH.items()},
    # An operator's attack-mode switch (the browser test) reaches the charge at once, not after 5 s.
    "DONATIONS_FN_CARD_TESTING_MODE_CACHE_SECONDS": "0",
}


def start_stack(tmp_dir: Path, ports: dict[str, int] | None = None) -> RunningStack:
    """The run command with the e2e settings; on ``ports`` (``RunningStack.ports``), else on free ones."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    return start_local_stack(
        tmp_dir / "local-stack.log", stack_name="donations-e2e", extra_env=E2E_ENVIRONMENT, ports=ports
    )


# Package scope: a worker keeps the shared stack while it runs e2e files back to back and stops it when it
# moves on. An idle stack is not free: its alarm ticker and queue
# pollers keep about a tenth of a core busy, for the rest of the run if the stack lived as long as it.
@pytest.fixture(scope="package")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    stack = start_stack(tmp_path_factory.mktemp("local-stack"))
    yield stack
    stop_stack(stack)


def wait_for(check, *, timeout: float = 30.0, interval: float = 0.2, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll a condition over HTTP until it holds (bounded)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last value: {last!r}")


def donate(api: str, key: str, **changes: object) -> requests.Response:
    body = {
        "amount": 2500,
        "currency": "usd",
        "email": "ada@example.org",
        "name": "Ada Lovelace",
        "payment_method": "pm_card_visa",
        "save_card": True,
        **changes,
    }
    return requests.post(f"{api}/donations", json=body, headers={"Idempotency-Key": a_key(key)}, timeout=15)


def run_ops(stack: RunningStack, *args: str) -> subprocess.CompletedProcess[str]:
    """`donations-ops` as an operator runs it against this stack's moto (a subprocess: the real entry point)."""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "donations_ops", "--endpoint-url", stack.moto, "--stack-name", stack.stack_name, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def run_pasted(command: str) -> subprocess.CompletedProcess[str]:
    """A suggested donations-ops command run as a user pastes it: in a terminal with no AWS region or
    credentials configured, and none of the run command's variables."""
    words = shlex.split(command)
    assert words[0] == "donations-ops", command
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DONATIONS_"))}
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "donations_ops", *words[1:]],
        capture_output=True, text=True, timeout=60, env={**env, "AWS_CONFIG_FILE": os.devnull}, check=False,
    )  # fmt: skip
