"""The order `make test` hands test files to pytest-xdist's workers (tests/support/scheduling.py), driven as
xdist's controller drives a scheduler, against workers simulated on a clock: a worker runs a test only once it
has the next one or has been told to shut down, as xdist's worker loop does (xdist/remote.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from xdist.scheduler import LoadScopeScheduling

from tests.support.scheduling import Durations, Kind, LongestFirst, kind_of, work_unit_of

pytestmark = pytest.mark.unit


@dataclass(eq=False)
class SimulatedWorker:
    name: str
    queue: list[int] = field(default_factory=list)
    shutting_down: bool = False
    clock: float = 0.0
    ran: list[str] = field(default_factory=list)
    started: dict[str, float] = field(default_factory=dict)

    @property
    def gateway(self) -> SimpleNamespace:
        return SimpleNamespace(id=self.name)

    def send_runtest_some(self, indices: list[int]) -> None:
        self.queue.extend(indices)

    def shutdown(self) -> None:
        self.shutting_down = True

    def can_run(self) -> bool:
        return len(self.queue) >= 2 or (len(self.queue) == 1 and self.shutting_down)


def config_for(workers: int) -> SimpleNamespace:
    values = {"tx": [f"{workers}*popen"], "dist": "loadfile"}
    return SimpleNamespace(getvalue=values.__getitem__, option=SimpleNamespace(loadscopereorder=True))


def run(scheduler: LoadScopeScheduling, seconds: dict[str, float], workers: int) -> list[SimulatedWorker]:
    """Every test of ``seconds`` (in collection order) run to the end; each worker's clock is when it ended."""
    collection = list(seconds)
    nodes = [SimulatedWorker(f"gw{n}") for n in range(workers)]
    for node in nodes:
        scheduler.add_node(node)  # type: ignore[arg-type]
        scheduler.add_node_collection(node, collection)  # type: ignore[arg-type]
    scheduler.schedule()
    for _ in range(len(collection)):
        ready = [node for node in nodes if node.can_run()]
        assert ready, f"no worker can run a test: {[(n.name, n.queue, n.shutting_down) for n in nodes]}"
        node = min(ready, key=lambda n: n.clock)
        index = node.queue.pop(0)
        node.started[collection[index]] = node.clock
        node.clock += seconds[collection[index]]
        node.ran.append(collection[index])
        scheduler.mark_test_complete(node, index)  # type: ignore[arg-type]
    assert all(not node.queue for node in nodes)
    return nodes


# A suite shaped like ours: few long files, one long chaos test and a short one, many short files, the
# unit tier last. Seconds per test.
SUITE = (
    {f"tests/e2e/test_attack.py::test_{n}": 80.0 for n in range(2)}
    | {f"tests/e2e/test_ctrl_c.py::test_cycles_{n}": 70.0 for n in range(2)}
    | {f"tests/integration/test_statements.py::test_{n}": 8.0 for n in range(10)}
    | {f"tests/integration/test_file_{f}.py::test_{n}": 1.5 for f in range(40) for n in range(10)}
    | {"tests/chaos/test_chaos.py::test_nothing_is_lost": 100.0, "tests/chaos/test_chaos.py::test_renewals": 25.0}
    | {f"tests/unit/test_unit_{f}.py::test_{n}": 0.05 for f in range(20) for n in range(30)}
)


def spread_as_ours(nodeid: str) -> str:
    test_file = nodeid.split("::", 1)[0]
    return nodeid if test_file in {"tests/e2e/test_ctrl_c.py", "tests/chaos/test_chaos.py"} else test_file


class XdistOrder(LoadScopeScheduling):
    """What `make test` did before: xdist's loadfile order, the same files spread."""

    def _split_scope(self, nodeid: str) -> str:
        return spread_as_ours(nodeid)


def longest_first(workers: int) -> LongestFirst:
    durations = Durations.measured(SUITE)
    scheduler = LongestFirst(config_for(workers), durations=durations)  # type: ignore[arg-type]
    scheduler._split_scope = spread_as_ours  # type: ignore[method-assign]
    return scheduler


def test_every_test_runs_once_and_the_suite_ends_sooner_than_in_xdists_order():
    # Given the same suite on three workers, in xdist's order and longest first
    before = run(XdistOrder(config_for(3)), SUITE, workers=3)  # type: ignore[arg-type]
    after = run(longest_first(3), SUITE, workers=3)

    # Then every test ran once...
    assert sorted(test for node in after for test in node.ran) == sorted(SUITE)
    # ...and the last worker ends near the ideal (the work spread evenly) and sooner than before
    ideal = sum(SUITE.values()) / 3
    ends_after, ends_before = max(n.clock for n in after), max(n.clock for n in before)
    assert ends_after <= ideal * 1.05 < ends_before, (ends_after, ideal, ends_before)


class RecordingLongestFirst(LongestFirst):
    """Notes the moto work not yet handed out when each chaos test is."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.chaos_handed_out_with_moto_left: list[float] = []

    def _assign_work_unit(self, node):
        before = set(self.workqueue)
        super()._assign_work_unit(node)
        for unit in before - set(self.workqueue):
            if kind_of(unit) is Kind.CHAOS:
                moto_left = sum(self._seconds(u) for u in self.workqueue if kind_of(u) is Kind.READS_MOTO)
                self.chaos_handed_out_with_moto_left.append(moto_left)


@pytest.mark.parametrize("workers", [1, 2, 3, 4])
def test_chaos_runs_on_one_worker_after_its_moto_tests_and_only_once_the_rest_fits_beside_it(workers):
    scheduler = RecordingLongestFirst(config_for(workers), durations=Durations.measured(SUITE))  # type: ignore[arg-type]
    scheduler._split_scope = spread_as_ours  # type: ignore[method-assign]
    nodes = run(scheduler, SUITE, workers=workers)

    chaos_workers = [node for node in nodes if any(kind_of(test) is Kind.CHAOS for test in node.ran)]
    assert len(chaos_workers) == 1
    ran = chaos_workers[0].ran
    first_chaos = min(i for i, test in enumerate(ran) if kind_of(test) is Kind.CHAOS)
    # No test that reads moto after chaos on its worker (chaos leaves metrics and alarms in that moto)...
    assert all(kind_of(test) is not Kind.READS_MOTO for test in ran[first_chaos:])
    # ...and chaos was handed out once the other workers could run the moto work left while it runs
    chaos_seconds = sum(s for test, s in SUITE.items() if kind_of(test) is Kind.CHAOS)
    assert max(scheduler.chaos_handed_out_with_moto_left) <= (workers - 1) * chaos_seconds
    if workers > 1:  # not at the very end either: other workers still started moto tests after it had
        chaos_start = chaos_workers[0].started[ran[first_chaos]]
        assert any(
            start > chaos_start and kind_of(test) is Kind.READS_MOTO
            for node in nodes
            for test, start in node.started.items()
        )


def test_the_longest_files_go_out_first_and_a_worker_is_not_handed_a_file_it_cannot_start():
    nodes = run(longest_first(3), SUITE, workers=3)

    first_units = {work_unit_of(node.ran[0]) for node in nodes}
    assert first_units == {
        "tests/e2e/test_attack.py",  # 160 s
        "tests/integration/test_statements.py",  # 80 s
        "tests/e2e/test_ctrl_c.py::test_cycles_0",  # 70 s
    }
    # The two 70 s Ctrl-C halves, one test each, are not queued behind each other on one worker
    halves = [node.name for node in nodes for test in node.ran if "test_ctrl_c" in test]
    assert len(set(halves)) == 2


def test_the_durations_file_keeps_slow_tests_one_by_one_and_the_others_per_file(tmp_path):
    measured = Durations.measured(
        {"tests/a.py::test_slow": 12.34, "tests/a.py::test_quick": 0.2, "tests/a.py::test_quicker": 0.1}
    )
    path = tmp_path / "durations.json"
    path.write_text(measured.as_json())

    loaded = Durations.load(path)

    assert loaded.seconds("tests/a.py::test_slow") == 12.3
    assert loaded.seconds("tests/a.py::test_new") == pytest.approx(0.15)  # the file's other tests, on average
    assert loaded.seconds("tests/new.py::test_any") == 0.5  # a file the run did not have
    assert path.read_text().count("\n") == 8  # one line a test or a file


def test_a_run_of_some_tests_keeps_the_other_tests_durations():
    before = Durations.measured(
        {"tests/a.py::test_slow": 12.0, "tests/b.py::test_slow": 30.0, "tests/b.py::test_now_quick": 5.0}
    )

    after = before.updated({"tests/b.py::test_now_quick": 0.4, "tests/b.py::test_quick": 0.2})

    assert after.seconds("tests/a.py::test_slow") == 12.0  # not run (another file): kept
    assert after.seconds("tests/b.py::test_slow") == 30.0  # not run (deselected in a file that ran): kept
    assert after.seconds("tests/b.py::test_now_quick") == pytest.approx(0.3)  # one of its file's quick tests now


def test_behind_a_long_test_a_worker_gets_a_short_file_of_the_same_folder_so_its_package_fixtures_stay_up():
    # Given a long spread e2e test, short e2e files (which share the tier's local stack, a package fixture)
    # and shorter integration files
    suite = (
        {"tests/e2e/test_ctrl_c.py::test_cycles_0": 70.0, "tests/e2e/test_ctrl_c.py::test_cycles_1": 70.0}
        | {f"tests/e2e/test_page_{f}.py::test_{n}": 2.0 for f in range(3) for n in range(2)}
        | {f"tests/integration/test_file_{f}.py::test_{n}": 0.5 for f in range(30) for n in range(2)}
    )
    scheduler = LongestFirst(config_for(2), durations=Durations.measured(suite))  # type: ignore[arg-type]
    scheduler._split_scope = spread_as_ours  # type: ignore[method-assign]

    nodes = run(scheduler, suite, workers=2)

    # Then what each worker runs right after a Ctrl-C half is an e2e file, not an integration one
    for node in nodes:
        for i, test in enumerate(node.ran[:-1]):
            if "test_ctrl_c" in test:
                assert node.ran[i + 1].startswith("tests/e2e/"), node.ran[i : i + 2]
