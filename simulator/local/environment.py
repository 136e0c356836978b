"""A Lambda execution environment per function: one invocation at a time, abandoned at its Timeout.

Lambda runs one invocation at a time in an execution environment and stops waiting for it when
the function's Timeout (template.yaml) has passed: the caller gets "Task timed out after N
seconds" (API Gateway answers 502; an SQS event source mapping fails the whole batch, whose
messages return after their visibility timeout).

Python threads cannot be killed, so locally an abandoned invocation runs on until it returns by
itself. What it can still do then, which Lambda's frozen and reset environment would not: finish
the provider call it was making (Stripe may charge, SendGrid may send), write DynamoDB, publish
messages, change a message's visibility, print log lines and metrics. The environment stays busy
until it has returned, as Lambda's would stay unavailable until reset, so no second invocation of
the function runs beside it. ``abandoned`` counts such invocations.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulator.local.events import LambdaContext

Handler = Callable[[dict[str, Any], Any], Any]


class FunctionTimedOut(Exception):
    """The invocation outlived the function's Timeout; it was abandoned (and may still be running)."""


class CallerGaveUp(Exception):
    """The caller's own deadline (API Gateway's integration timeout) passed first."""


@dataclass
class ExecutionEnvironment:
    name: str
    handler: Handler
    timeout_seconds: float
    memory_size: int = 256
    turn: threading.Lock = field(default_factory=threading.Lock)
    """Held while an invocation runs; environments that must not overlap share one (see Pipeline)."""
    abandoned: int = 0

    @property
    def busy(self) -> bool:
        return self.turn.locked()

    def invoke(self, event: dict[str, Any], *, deadline: float | None = None) -> Any:
        """Run one invocation; its context (and clock) starts when the environment is free.

        Raises FunctionTimedOut at the Timeout, CallerGaveUp at ``deadline`` (time.monotonic()),
        whichever comes first; otherwise returns (or raises) what the handler did.
        """
        if not self.turn.acquire(timeout=-1 if deadline is None else max(0.0, deadline - time.monotonic())):
            raise CallerGaveUp(f"{self.name}: still busy with an earlier invocation")
        context = LambdaContext(self.name, self.memory_size, self.timeout_seconds)
        outcome: dict[str, Any] = {}
        finished = threading.Event()

        def run() -> None:
            try:
                outcome["result"] = self.handler(event, context)
            except BaseException as error:  # handed to the caller, as Lambda reports it
                outcome["error"] = error
            finally:
                finished.set()
                self.turn.release()

        # The invocation runs in a thread of its own (with the caller's context variables, which tag
        # its output) so that the caller can stop waiting for it, as Lambda does.
        invocation = contextvars.copy_context()
        threading.Thread(target=invocation.run, args=(run,), name=f"{self.name}-invocation", daemon=True).start()
        caller_waits = float("inf") if deadline is None else deadline - time.monotonic()
        if not finished.wait(max(0.0, min(self.timeout_seconds, caller_waits))):
            if caller_waits < self.timeout_seconds:
                raise CallerGaveUp(f"{self.name}: no answer within the caller's deadline")
            self.abandoned += 1
            raise FunctionTimedOut(f"{self.name}: Task timed out after {self.timeout_seconds:.2f} seconds")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    def wait_until_idle(self, timeout: float) -> bool:
        """True once no invocation (abandoned or not) runs here; False if still busy after ``timeout``."""
        if not self.turn.acquire(timeout=timeout):
            return False
        self.turn.release()
        return True
