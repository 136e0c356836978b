"""The emulator's clock: wall time plus an offset tests can advance.

Stripe-side time matters for idempotency keys (pruned after 24 h), objects' ``created`` and list
filters, and search lag. Advancing the clock lets a test cross those lines without waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Clock:
    def __init__(self, source: Callable[[], float] = time.time) -> None:
        self._source = source
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._source() + self._offset

    def timestamp(self) -> int:
        """Unix seconds, as Stripe's ``created`` fields carry them."""
        return int(self.now())

    @property
    def offset(self) -> float:
        with self._lock:
            return self._offset

    def advance(self, seconds: float) -> float:
        """Move emulator time forward (never back: Stripe's clock does not rewind); returns now."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += float(seconds)
        return self.now()

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0
