"""Webhook delivery settings, their validation, and one queued delivery attempt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
DEFAULT_TIMEOUT = 10.0
DEFAULT_REORDER_WINDOW = 0.25
MAX_WAIT_SECONDS = 300.0


# Per-event delivery state: queued (or being retried), answered 2xx, retries exhausted, lost by drop_next.
PENDING, DELIVERED, FAILED, DROPPED = "pending", "delivered", "failed", "dropped"


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"webhook url must be an absolute http(s) URL, got {url!r}")
    return url


def check_schedule(schedule: Sequence[float]) -> tuple[float, ...]:
    out = tuple(float(s) for s in schedule)
    if any(s < 0 for s in out):
        raise ValueError("retry delays must be >= 0")
    return out


def check_timeout(timeout: float) -> float:
    if not 0 < float(timeout) <= MAX_WAIT_SECONDS:
        raise ValueError(f"timeout must be within (0, {MAX_WAIT_SECONDS}] seconds")
    return float(timeout)


def check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0")
    return value


@dataclass
class Job:
    event_id: str
    type: str
    payload: bytes
    attempt: int
    generation: int
    duplicate: bool = False
    manual: bool = False


@dataclass
class DeliveryModes:
    """Test switches of the dispatcher (see ``WebhookDispatcher.set_mode``)."""

    paused: bool = False
    duplicates: int = 0
    duplicate_rate: float = 0.0
    reorder: bool = False
    reorder_window: float = DEFAULT_REORDER_WINDOW
    drop_next: int = 0

    def update(self, **changes: Any) -> None:
        """Validate every change first, then apply them all (unknown names are a TypeError)."""
        unknown = set(changes) - set(self.as_dict())
        if unknown:
            raise TypeError(f"unknown webhook modes: {sorted(unknown)}")
        for name in ("duplicates", "drop_next"):
            if name in changes:
                check_count(name, changes[name])
        if "duplicate_rate" in changes and not 0.0 <= float(changes["duplicate_rate"]) <= 1.0:
            raise ValueError("duplicate_rate must be within [0, 1]")
        if "reorder_window" in changes and not 0 < float(changes["reorder_window"]) <= 10:
            raise ValueError("reorder_window must be within (0, 10] seconds")
        casts = {"paused": bool, "reorder": bool, "duplicate_rate": float, "reorder_window": float}
        for name, value in changes.items():
            setattr(self, name, casts.get(name, lambda v: v)(value))

    def as_dict(self) -> dict[str, Any]:
        return {
            "paused": self.paused,
            "duplicates": self.duplicates,
            "duplicate_rate": self.duplicate_rate,
            "reorder": self.reorder,
            "reorder_window": self.reorder_window,
            "drop_next": self.drop_next,
        }
