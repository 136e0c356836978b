"""Start the README's run command (the local stack) in a subprocess and talk to it over HTTP only."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_SECONDS = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningStack:
    api: str
    moto: str
    stripe: str
    sendgrid: str
    stack_name: str
    log_path: Path
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_stack(tmp_dir: Path, *, extra_env: dict[str, str] | None = None) -> RunningStack:
    ports = {name: free_port() for name in ("API", "MOTO", "STRIPE", "SENDGRID")}
    env = {
        **os.environ,
        **{f"DONATIONS_{name}_PORT": str(port) for name, port in ports.items()},
        "DONATIONS_STACK_NAME": "donations-e2e",
        # Alarm periods pass 60x faster and are evaluated every 0.5 s, so a 60 s alarm takes 1 s.
        "DONATIONS_LOCAL_TIME_SCALE": "60",
        "DONATIONS_LOCAL_TICK": "0.5",
        # Full JSON log lines, so the log scans below read everything the functions logged.
        "DONATIONS_LOCAL_VERBOSE": "1",
        # Short retry backoffs so an outage reaches the DLQ in seconds, not minutes.
        "DONATIONS_FN_BACKOFF_BASE_SECONDS": "1",
        "DONATIONS_FN_BACKOFF_CAP_SECONDS": "4",
        **(extra_env or {}),
    }
    env.pop("STRIPE_API_KEY", None)
    env.pop("SENDGRID_API_KEY", None)
    log_path = tmp_dir / "local-stack.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.local"],
        cwd=ROOT,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack = RunningStack(
        api=f"http://127.0.0.1:{ports['API']}",
        moto=f"http://127.0.0.1:{ports['MOTO']}",
        stripe=f"http://127.0.0.1:{ports['STRIPE']}",
        sendgrid=f"http://127.0.0.1:{ports['SENDGRID']}",
        stack_name="donations-e2e",
        log_path=log_path,
        process=process,
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"local stack exited early:\n{stack.log()}")
        if "Ready." in stack.log():
            return stack
        time.sleep(0.2)
    stop_stack(stack)
    raise RuntimeError(f"local stack not ready after {STARTUP_TIMEOUT_SECONDS} s:\n{stack.log()}")


def stop_stack(stack: RunningStack) -> int:
    """Ctrl-C, as a user would; returns the exit code."""
    if stack.process.poll() is None:
        os.killpg(stack.process.pid, signal.SIGINT)
        try:
            return stack.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(stack.process.pid, signal.SIGKILL)
            stack.process.wait(timeout=10)
            raise
    return int(stack.process.returncode)


@pytest.fixture(scope="session")
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
    return requests.post(f"{api}/donations", json=body, headers={"Idempotency-Key": key}, timeout=15)
