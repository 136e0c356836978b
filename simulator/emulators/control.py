"""The client side of an emulator's control API (``/_emulator/``): faults, latency, reset, state.

Standard library only, bounded timeouts: tests and launchers in other processes drive an emulator
with it (``StripeControl`` and ``SendGridControl`` add each provider's own routes).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from simulator.emulators.serving import CONTROL_PREFIX


class EmulatorControlError(RuntimeError):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"control API answered {status}: {body}")
        self.status = status
        self.body = body


class EmulatorControl:
    """Drive an emulator's ``/_emulator/`` API from any process (stdlib only, bounded timeouts)."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One JSON call to ``/_emulator/<path>``; raises EmulatorControlError on a 4xx/5xx."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(  # noqa: S310 (scheme checked in __init__)
            f"{self.base_url}{CONTROL_PREFIX}{path.lstrip('/')}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 (scheme checked in __init__)
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise EmulatorControlError(exc.code, exc.read().decode(errors="replace")) from None

    def add_fault(self, kind: str, **kwargs: Any) -> str:
        return str(self.call("POST", "faults", {"kind": kind, **kwargs})["id"])

    def remove_fault(self, fault_id: str) -> None:
        self.call("DELETE", f"faults/{fault_id}")

    def clear_faults(self) -> None:
        self.call("DELETE", "faults")

    def faults(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "faults")["faults"])

    def set_latency(self, route: str, mean_ms: float, jitter_ms: float = 0) -> None:
        self.call("POST", "latency", {"route": route, "mean_ms": mean_ms, "jitter_ms": jitter_ms})

    def seed(self, n: int) -> None:
        self.call("POST", "seed", {"seed": n})

    def reset(self) -> None:
        self.call("POST", "reset", {})

    def state(self) -> dict[str, Any]:
        return dict(self.call("GET", "state"))

    def healthy(self) -> bool:
        try:
            return bool(self.call("GET", "health")["ok"])
        except (OSError, EmulatorControlError):
            return False

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Poll /health until the emulator answers (for launchers starting it as a subprocess)."""
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if time.monotonic() >= deadline:
                raise TimeoutError(f"emulator at {self.base_url} not ready after {timeout}s")
            time.sleep(0.05)
