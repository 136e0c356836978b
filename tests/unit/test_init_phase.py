"""INIT without the garbage collector, on Lambda only (donations.init_phase)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from donations import init_phase

pytestmark = pytest.mark.unit


@pytest.fixture
def collector_restored() -> Iterator[None]:
    yield
    if gc.get_freeze_count():
        gc.unfreeze()
    gc.enable()


@pytest.mark.usefixtures("collector_restored")
def test_off_lambda_the_collector_stays_on_and_nothing_is_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a process that is not a Lambda environment (tests, the local stack reloading handlers)
    monkeypatch.delenv("LAMBDA_TASK_ROOT", raising=False)
    frozen = gc.get_freeze_count()

    # When a handler's INIT begins and ends
    init_phase.begin()
    running = gc.isenabled()
    init_phase.end()

    # Then the collector ran throughout, and no object was put out of its reach
    assert running
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen


@pytest.mark.usefixtures("collector_restored")
def test_on_lambda_the_collector_is_off_during_init_and_on_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a Lambda environment
    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")

    # When INIT begins, then ends
    init_phase.begin()
    during = gc.isenabled()
    init_phase.end()

    # Then the collector was off during it, and is on after it with what INIT built frozen
    assert not during
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0
