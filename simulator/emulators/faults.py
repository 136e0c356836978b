"""Fault injection shared by the provider emulators.

A fault matches requests by method and path prefix and fires either on the next
``times`` matches, with probability ``rate`` (seeded, so chaos runs replay), or
always until cleared. ``phase="before"`` stops the request before the provider
does anything; ``phase="after"`` lets the provider act and then loses the reply,
which is the case that produces double charges and duplicate mails.

``stored_error`` (Stripe only) is a 5xx the provider saves under the request's idempotency key and
replays to every retry: ``before`` nothing happened, ``after`` the operation happened first.
"""

from __future__ import annotations

import itertools
import random
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

FaultKind = Literal["latency", "http_error", "rate_limit", "lock_timeout", "reset", "timeout", "stored_error"]
ALL_KINDS: frozenset[str] = frozenset(get_args(FaultKind))
# Kinds that replace the response; "latency" only delays it.
TERMINAL_KINDS: frozenset[str] = ALL_KINDS - {"latency"}
DEFAULT_TIMEOUT_HOLD_MS = 30_000
# A held connection is released at the latest after this long, so a forgotten fault cannot hang a run.
MAX_HOLD_MS = 300_000


@dataclass
class Fault:
    """One registered fault; ``fired`` counts how often it has been applied."""

    id: str
    kind: str
    times: int | None
    rate: float | None
    path_prefix: str
    method: str | None
    phase: str
    status: int | None
    latency_ms: float
    jitter_ms: float
    fired: int = 0

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method.upper():
            return False
        return path.startswith(self.path_prefix)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _validate(kind: str, supported: frozenset[str], times: int | None, rate: float | None, phase: str) -> None:
    if kind not in supported:
        raise ValueError(f"unsupported fault kind {kind!r}; expected one of {sorted(supported)}")
    if times is not None and times < 1:
        raise ValueError("times must be >= 1")
    if rate is not None and not 0.0 <= rate <= 1.0:
        raise ValueError("rate must be within [0, 1]")
    if phase not in ("before", "after"):
        raise ValueError("phase must be 'before' or 'after'")


def _default_status(kind: str, status: int | None) -> int | None:
    if kind == "http_error":
        status = 500 if status is None else status
        if not 400 <= status <= 599:
            raise ValueError("http_error status must be a 4xx or 5xx code")
    if kind == "stored_error":
        status = 500 if status is None else status
        if not 500 <= status <= 599:
            raise ValueError("stored_error status must be a 5xx code")
    return status


@dataclass
class FaultInjector:
    """Thread-safe registry of faults; ``pick`` decides which fire for one request."""

    supported: frozenset[str] = ALL_KINDS
    _faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _rng: random.Random = field(default_factory=random.Random)

    def seed(self, n: int) -> None:
        with self._lock:
            self._rng.seed(n)

    def add(
        self,
        kind: str,
        *,
        times: int | None = None,
        rate: float | None = None,
        path_prefix: str = "",
        method: str | None = None,
        phase: str = "before",
        status: int | None = None,
        latency_ms: float = 0,
        jitter_ms: float = 0,
    ) -> str:
        """Register a fault and return its id (``flt_N``)."""
        _validate(kind, self.supported, times, rate, phase)
        if kind == "timeout" and not latency_ms:
            latency_ms = DEFAULT_TIMEOUT_HOLD_MS
        with self._lock:
            fault = Fault(
                id=f"flt_{next(self._ids)}",
                kind=kind,
                times=times,
                rate=rate,
                path_prefix=path_prefix,
                method=method.upper() if method else None,
                phase=phase,
                status=_default_status(kind, status),
                latency_ms=float(latency_ms),
                jitter_ms=float(jitter_ms),
            )
            self._faults.append(fault)
        return fault.id

    def remove(self, fault_id: str) -> bool:
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if f.id != fault_id]
            return len(self._faults) != before

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list_faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.as_dict() for f in self._faults]

    def pick(self, method: str, path: str) -> list[Fault]:
        """Faults firing for this request: every latency fault plus at most one terminal fault.

        Firing is decided and counted under the lock so ``times=N`` is exact under concurrency.
        """
        fired: list[Fault] = []
        terminal_taken = False
        with self._lock:
            for fault in self._faults:
                if fault.exhausted or not fault.matches(method, path):
                    continue
                terminal = fault.kind in TERMINAL_KINDS
                if terminal and terminal_taken:
                    continue
                if fault.rate is not None and self._rng.random() >= fault.rate:
                    continue
                fault.fired += 1
                fired.append(_snapshot(fault))
                terminal_taken = terminal_taken or terminal
        return fired

    def delay_ms(self, mean_ms: float, jitter_ms: float) -> float:
        """Seeded latency sample: uniform within mean ± jitter, never negative."""
        if jitter_ms <= 0:
            return max(0.0, mean_ms)
        with self._lock:
            offset = self._rng.uniform(-jitter_ms, jitter_ms)
        return max(0.0, mean_ms + offset)


def _snapshot(fault: Fault) -> Fault:
    # Callers act on a copy so later mutation (fired counts) cannot race with them.
    return Fault(**fault.as_dict())
