"""How `make test` hands the test files out to pytest-xdist's workers: the longest first, from the durations
of a past run (``tests/durations.json``), with the chaos tests held back until the other workers have about
as much work left as the chaos tests take.

On two cores the suite is CPU-bound, so its time is its CPU time spread over both cores, plus whatever the
last worker runs alone at the end. xdist's own order (the files with the most tests first) left the chaos
test of 100 s, which must follow every test of its worker that reads moto, to start when the others were
almost done, and it ran alone for a minute.

``make durations`` writes ``tests/durations.json`` (``--store-durations``). A test it does not know counts
as ``UNKNOWN_TEST_SECONDS``: a stale file only makes the order less good, never a test less run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

DURATIONS_FILE = Path(__file__).resolve().parents[1] / "durations.json"
SLOW_TEST_SECONDS = 1.0
"""Tests that took this long or more are kept one by one; the others as a total per file."""
UNKNOWN_TEST_SECONDS = 0.5
LONG_TEST_SECONDS = 10.0

# Files whose tests are independent of each other and long enough to be worth spreading over the workers
# one test at a time; every other file goes to one worker whole, so its module fixtures (a SAM build, a
# browser, a local stack of its own) are built once.
SPREAD_OVER_WORKERS = frozenset(
    {
        "tests/integration/test_hostile_properties.py",
        "tests/chaos/test_chaos.py",
        "tests/e2e/test_ctrl_c.py",
        "tests/e2e/test_hostile_schema.py",
    }
)


class Kind(Enum):
    READS_MOTO = "reads moto"
    CHAOS = "chaos"
    """Leaves metrics and alarm history in its worker's moto, which the tests that read moto would see."""
    NEVER_TOUCHES_MOTO = "never touches moto"
    """The unit tier (no sockets at all) and the emulators' own tests (emulators of their own)."""


def kind_of(work_unit: str) -> Kind:
    """By folder: the controller that schedules sees node ids, not markers (tests/conftest.py keeps the
    markers and these folders in step)."""
    if work_unit.startswith("tests/chaos/"):
        return Kind.CHAOS
    if work_unit.startswith(("tests/unit/", "tests/emulators/")):
        return Kind.NEVER_TOUCHES_MOTO
    return Kind.READS_MOTO


def _folder_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0].rsplit("/", 1)[0]


def work_unit_of(nodeid: str) -> str:
    test_file = nodeid.split("::", 1)[0]
    return nodeid if test_file in SPREAD_OVER_WORKERS else test_file


class Durations:
    """Seconds each test took (setup, call and teardown) in the run that wrote the file."""

    def __init__(self, slow_tests: Mapping[str, float], other_tests_by_file: Mapping[str, tuple[float, int]]):
        self.slow_tests = dict(slow_tests)
        self.other_tests_by_file = dict(other_tests_by_file)

    @classmethod
    def load(cls, path: Path = DURATIONS_FILE) -> Durations:
        if not path.exists():
            return cls({}, {})
        stored = json.loads(path.read_text())
        others = {test_file: (seconds, count) for test_file, (seconds, count) in stored["other_tests_by_file"].items()}
        return cls(stored["slow_tests"], others)

    @classmethod
    def measured(cls, seconds_by_test: Mapping[str, float]) -> Durations:
        slow = {nodeid: round(s, 1) for nodeid, s in seconds_by_test.items() if s >= SLOW_TEST_SECONDS}
        others: dict[str, tuple[float, int]] = {}
        for nodeid, seconds in seconds_by_test.items():
            if nodeid not in slow:
                test_file = nodeid.split("::", 1)[0]
                total, count = others.get(test_file, (0.0, 0))
                others[test_file] = (total + seconds, count + 1)
        return cls(slow, {test_file: (round(total, 2), count) for test_file, (total, count) in others.items()})

    def updated(self, seconds_by_test: Mapping[str, float]) -> Durations:
        """These durations, with the tests of a new run (a run of some tests keeps the others' times)."""
        new = Durations.measured(seconds_by_test)
        files_run = {nodeid.split("::", 1)[0] for nodeid in seconds_by_test}
        slow = {nodeid: s for nodeid, s in self.slow_tests.items() if nodeid not in seconds_by_test}
        others = {name: pair for name, pair in self.other_tests_by_file.items() if name not in files_run}
        return Durations(slow | new.slow_tests, others | new.other_tests_by_file)

    def as_json(self) -> str:
        stored = {
            "slow_tests": dict(sorted(self.slow_tests.items())),
            "other_tests_by_file": {name: list(pair) for name, pair in sorted(self.other_tests_by_file.items())},
        }
        # One line a test or a file: a new run's file differs from the last one line by line.
        return re.sub(r"\[\s+([^,\]]+),\s+([^\]]+?)\s+\]", r"[\1, \2]", json.dumps(stored, indent=1)) + "\n"

    def seconds(self, nodeid: str) -> float:
        if nodeid in self.slow_tests:
            return self.slow_tests[nodeid]
        total, count = self.other_tests_by_file.get(nodeid.split("::", 1)[0], (0.0, 0))
        return total / count if count else UNKNOWN_TEST_SECONDS


class LongestFirst(LoadScopeScheduling):
    """pytest-xdist's loadfile, whole files per worker (but ``SPREAD_OVER_WORKERS``), handed out longest
    first. The chaos tests all go to one worker, once the work left that reads moto is at most what the
    other workers can run while it runs them; that worker then takes only files that never touch moto."""

    def __init__(self, config: pytest.Config, log: Any = None, durations: Durations | None = None) -> None:
        super().__init__(config, log)
        self._durations = durations or Durations.load()
        self._chaos_worker: Any = None
        self._unit_seconds: dict[str, float] = {}

    def _split_scope(self, nodeid: str) -> str:
        return work_unit_of(nodeid)

    def _seconds(self, work_unit: str) -> float:
        if work_unit not in self._unit_seconds:
            self._unit_seconds[work_unit] = sum(self._durations.seconds(nodeid) for nodeid in self.workqueue[work_unit])
        return self._unit_seconds[work_unit]

    def _next_work_unit(self, node: Any) -> str | None:
        left = {kind: [unit for unit in self.workqueue if kind_of(unit) is kind] for kind in Kind}
        chaos_seconds = sum(self._seconds(unit) for unit in left[Kind.CHAOS])
        # The other workers run what is left of the moto tests while this one runs chaos (one worker of
        # many: with one worker, chaos comes after every moto test).
        others_can_cover = (self.numnodes - 1) * chaos_seconds
        if (
            self._chaos_worker in (None, node)
            and left[Kind.CHAOS]
            and (sum(self._seconds(unit) for unit in left[Kind.READS_MOTO]) <= others_can_cover)
        ):
            self._chaos_worker = node
            candidates = left[Kind.CHAOS]
        elif node is not self._chaos_worker and left[Kind.READS_MOTO]:
            candidates = left[Kind.READS_MOTO]
        else:
            candidates = left[Kind.NEVER_TOUCHES_MOTO]
        if not candidates:
            return None
        # Handed out now, the unit starts only after the test this worker has yet to run: behind a long one,
        # a short unit, so that the long units go to workers as they come free: a short one of its folder if
        # there is one, as a folder's package fixtures (the e2e tier's shared local stack) stop when a worker
        # leaves it, else the shortest.
        pending = self._pending_tests(node)
        if sum(self._durations.seconds(nodeid) for nodeid in pending) >= LONG_TEST_SECONDS:
            folder = _folder_of(pending[-1])

            def elsewhere_or_long(unit: str) -> tuple[bool, float]:
                short_here = _folder_of(unit) == folder and self._seconds(unit) < LONG_TEST_SECONDS
                return (not short_here, self._seconds(unit))

            return min(candidates, key=elsewhere_or_long)
        return max(candidates, key=self._seconds)

    def _pending_tests(self, node: Any) -> list[str]:
        return [nodeid for unit in self.assigned_work[node].values() for nodeid, done in unit.items() if not done]

    def _assign_work_unit(self, node: Any) -> None:
        work_unit = self._next_work_unit(node)
        if work_unit is None:
            return
        self.workqueue.move_to_end(work_unit, last=False)
        super()._assign_work_unit(node)

    def _reschedule(self, node: Any) -> None:
        # A worker runs a test only once it knows the next one (or that there is none), so it gets more
        # work when it is down to one test: no sooner, so that a long test does not hold the next unit
        # back from a worker that is free.
        if node.shutting_down:
            return
        if self._pending_of(self.assigned_work[node]) > 1:
            return
        before = len(self.workqueue)
        if self.workqueue:
            self._assign_work_unit(node)
        if len(self.workqueue) == before:  # nothing left that this worker may run
            node.shutdown()


class DurationRecorder:
    """``--store-durations``: the controller adds up each test's phases and writes tests/durations.json."""

    def __init__(self, path: Path = DURATIONS_FILE) -> None:
        self._path = path
        self._seconds: dict[str, float] = {}

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._seconds[report.nodeid] = self._seconds.get(report.nodeid, 0.0) + report.duration

    @pytest.hookimpl
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if exitstatus == 0 and self._seconds:
            self._path.write_text(Durations.load(self._path).updated(self._seconds).as_json())
