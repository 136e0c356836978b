"""The local alarm evaluator's metric math, as PutMetricAlarm's Metrics describe it (AWS docs, MetricDataQuery:
MetricStat queries, and the one Expression with ReturnData true whose time series the alarm watches)."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.local.alarms import _expression_values

pytestmark = pytest.mark.unit

QUERIES: dict[str, dict[str, Any]] = {
    "invocations": {"Id": "invocations", "MetricStat": {}, "ReturnData": False},
    "errors": {"Id": "errors", "MetricStat": {}, "ReturnData": False},
    "finished": {"Id": "finished", "Expression": "invocations - FILL(errors, 0)", "ReturnData": True},
}


def test_runs_finished_are_invocations_less_errors_and_a_period_without_invocations_has_no_value() -> None:
    # Given three periods: a run that finished, a run that failed, and no run at all
    fetched: dict[str, list[float | None]] = {"invocations": [1.0, 1.0, None], "errors": [0.0, 1.0, None]}

    # When the template's expression is computed
    values = _expression_values("invocations - FILL(errors, 0)", QUERIES, fetched)

    # Then 1 finished, 0 finished, and missing data (which the alarm treats as breaching)
    assert values == [1.0, 0.0, None]


def test_fill_gives_a_missing_period_its_value_and_expressions_can_use_other_expressions() -> None:
    queries = {**QUERIES, "doubled": {"Id": "doubled", "Expression": "finished * 2"}}
    fetched: dict[str, list[float | None]] = {"invocations": [2.0, 3.0], "errors": [None, 1.0]}
    assert _expression_values("doubled", queries, fetched) == [4.0, 4.0]


def test_an_expression_the_evaluator_does_not_know_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="METRICS"):
        _expression_values("SUM(METRICS())", QUERIES, {"invocations": [1.0]})
