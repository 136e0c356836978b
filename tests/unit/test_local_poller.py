"""The local stack's queue pollers at Ctrl-C: a delivery cut off by the stop ends the poller quietly.

Found by the 20-cycle Ctrl-C test (tests/e2e/test_ctrl_c.py) on a loaded machine: a tokenize batch still
running when the stack stopped moto failed to delete its message ("Connection refused"), and the poller
printed a traceback and would have retried against a moto that was gone.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from simulator.local.delivery import EventSource, Poller

pytestmark = pytest.mark.unit


class MotoGoneAtStop:
    """An SQS client whose moto stops while the poller waits on it: Ctrl-C, then connection refused."""

    def __init__(self) -> None:
        self.poller: Poller | None = None
        self.calls = 0

    def receive_message(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        if self.poller is not None:
            self.poller.stop()  # the user pressed Ctrl-C while this call was on its way
        raise ConnectionRefusedError(111, "Connection refused")


def a_source() -> EventSource:
    return EventSource("TokenizeFunction", "http://127.0.0.1:1/q", "arn:aws:sqs:us-east-1:1:q", lambda *_: None)


def test_a_delivery_cut_off_by_the_stop_ends_the_poller_without_a_traceback_or_a_retry(caplog):
    # Given a poller whose SQS call fails because the stack stopped moto under it
    sqs = MotoGoneAtStop()
    poller = Poller(sqs, a_source())
    sqs.poller = poller

    # When it runs
    with caplog.at_level(logging.DEBUG, logger="donations.local.delivery"):
        poller.start()
        poller.join(timeout=5)

    # Then it ends at once, tried once, and logged nothing at ERROR (no traceback in the run command's output)
    assert not poller.is_alive()
    assert sqs.calls == 1
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_delivery_that_fails_while_the_stack_runs_is_logged_and_retried(caplog):
    # Given a poller whose SQS calls fail while nobody stops it (moto restarting, say)
    sqs = MotoGoneAtStop()
    poller = Poller(sqs, a_source())

    # When it runs for a moment and is then stopped
    with caplog.at_level(logging.ERROR, logger="donations.local.delivery"):
        poller.start()
        poller.join(timeout=0.5)
        poller.stop()
        poller.join(timeout=5)

    # Then the failure was reported with its traceback, and retried until the stop
    assert any(r.exc_info for r in caplog.records if r.levelno == logging.ERROR)
    assert not poller.is_alive()
