"""Start the README's run command in a subprocess on free ports, and stop it the way a user does (Ctrl-C).

Used by the e2e tests and the load script, so that what they drive is the real command in its own
process, not an in-process copy sharing their interpreter.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_SECONDS = 60


def free_port() -> int:
    """A port a server can listen on now, drawn below the kernel's ephemeral range. A port from ``bind(0)``
    comes from that range, where every outgoing connection takes its local port too: between this probe and
    the server's bind, one of the many connections a test run opens could take it ("Address already in use",
    seen when several stacks started at once)."""
    first_ephemeral = _first_ephemeral_port()
    for _ in range(100):
        port = _PORTS.randrange(first_ephemeral // 2, first_ephemeral)
        if port_is_free(port):
            return port
    with socket.socket() as probe:  # a machine whose low ports are all taken: the kernel's choice
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# Its own generator: Hypothesis seeds the global one inside the tests it runs.
_PORTS = random.Random()  # noqa: S311 - a port number, not a secret


def _first_ephemeral_port() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default range starts there


def require_free_ports(ports: dict[str, int]) -> None:
    """Fail fast, naming the variable to change, rather than half-starting on a busy port.

    The probe binds as the servers themselves do, with SO_REUSEADDR (http.server's
    ``allow_reuse_address``): a port only holding connections in TIME_WAIT, as a stack stopped a
    moment ago leaves them for about a minute, is free for a new listener; one with a listener is not.
    """
    for variable, port in ports.items():
        if port and not port_is_free(port):
            raise SystemExit(f"Port {port} on 127.0.0.1 is in use; stop what uses it or set {variable}.")


def port_is_free(port: int) -> bool:
    """Whether a server can listen on ``port`` (bound as the servers bind, with SO_REUSEADDR)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class RunningStack:
    api: str
    moto: str
    stripe: str
    sendgrid: str
    turnstile: str
    stack_name: str
    log_path: Path
    process: subprocess.Popen[bytes]
    ports: dict[str, int]
    """The ports it was started on, by name (API, MOTO, STRIPE, SENDGRID, TURNSTILE), to start another on the same."""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_stack(
    log_path: Path,
    *,
    stack_name: str = "donations-local",
    extra_env: dict[str, str] | None = None,
    ports: dict[str, int] | None = None,
) -> RunningStack:
    """The run command in its own process group, once it printed "Ready."; ``ports`` by name (API,
    MOTO, STRIPE, SENDGRID) as ``RunningStack.ports`` holds them, else free ones."""
    ports = ports or {name: free_port() for name in ("API", "MOTO", "STRIPE", "SENDGRID")}
    ports = {"TURNSTILE": free_port(), **ports}
    # As from a user's shell: no provider key and none of the functions' Powertools settings (the stack
    # sets those from the template; this process may have them, as tests/conftest.py sets them).
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("POWERTOOLS_")},
        **{f"DONATIONS_{name}_PORT": str(port) for name, port in ports.items()},
        "DONATIONS_STACK_NAME": stack_name,
        **(extra_env or {}),
    }
    env.pop("STRIPE_API_KEY", None)
    env.pop("SENDGRID_API_KEY", None)
    env.pop("TURNSTILE_SECRET_KEY", None)
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator.local"],
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
        turnstile=f"http://127.0.0.1:{ports['TURNSTILE']}",
        stack_name=stack_name,
        log_path=log_path,
        process=process,
        ports=dict(ports),
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
