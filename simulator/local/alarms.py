"""Evaluate the template's alarms locally and notify their SNS actions the way CloudWatch does.

moto stores alarms but never evaluates them and never notifies. This evaluator reads the
alarm's metric from moto's CloudWatch over its EvaluationPeriods x Period window (optionally
compressed by ``time_scale`` so tests need not wait minutes), applies DatapointsToAlarm and
TreatMissingData, sets the state, and on a change publishes CloudWatch's notification JSON to
the AlarmActions (to ALARM) or OKActions (to OK).

A metric math alarm (``Metrics``: MetricStat queries and the one expression with ReturnData true,
as PutMetricAlarm takes them) is evaluated period by period over the same window: each MetricStat
is read per period, the expression computed with +, -, *, / and FILL(series, value), and a period
the expression has no value for is missing data, treated as TreatMissingData says.
"""

from __future__ import annotations

import ast
import json
import logging
import operator
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger("donations.local.alarms")

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}


@dataclass(frozen=True)
class StatisticsQuery:
    """One GetMetricStatistics question: a metric's statistic per period over [start, end)."""

    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, str], ...]
    start: datetime
    end: datetime
    period: int
    statistic: str

    def as_request(self) -> dict[str, Any]:
        return {
            "Namespace": self.namespace,
            "MetricName": self.metric_name,
            "Dimensions": [{"Name": name, "Value": value} for name, value in self.dimensions],
            "StartTime": self.start,
            "EndTime": self.end,
            "Period": self.period,
            "Statistics": [self.statistic],
        }


Datapoints = list[dict[str, Any]]
"""GetMetricStatistics' datapoints: each with its Timestamp and the asked statistic."""


@dataclass(frozen=True)
class Transition:
    alarm_name: str
    old_state: str
    new_state: str
    reason: str


class AlarmEvaluator:
    def __init__(
        self,
        cloudwatch: Any,
        sns: Any,
        *,
        time_scale: float = 1.0,
        region: str = "us-east-1",
        alarm_prefix: str = "",
        read_statistics: Callable[[list[StatisticsQuery]], list[Datapoints]] | None = None,
    ) -> None:
        """``read_statistics``: the answers to many GetMetricStatistics questions at once; by default one
        call each (the local stack asks its moto process for all of a tick's in one request)."""
        self._cloudwatch = cloudwatch
        self._sns = sns
        self._read_statistics = read_statistics or self._one_call_each
        self._time_scale = max(time_scale, 1.0)
        self._region = region
        self._prefix = alarm_prefix

    def start_like_aws(self) -> None:
        """New alarms start in INSUFFICIENT_DATA on AWS (moto starts them OK)."""
        for alarm in self._alarms():
            self._cloudwatch.set_alarm_state(
                AlarmName=alarm["AlarmName"],
                StateValue="INSUFFICIENT_DATA",
                StateReason="Unchecked: Initial alarm creation",
            )

    def evaluate(self, now: datetime | None = None, stopping: threading.Event | None = None) -> list[Transition]:
        """Evaluate every alarm (``stopping``: give up between alarms once it is set). Every alarm's data is
        read first, in one ``read_statistics``, then each alarm is judged on it."""
        now = now or datetime.now(UTC)
        alarms = self._alarms()
        questions = [self._questions_for(alarm, now) for alarm in alarms]
        answers = iter(self._read_statistics([query for asked in questions for query in asked]))
        transitions = []
        for alarm, asked in zip(alarms, questions, strict=True):
            answered = [next(answers) for _ in asked]
            if stopping is not None and stopping.is_set():
                break
            new_state, reason = self._state_for(alarm, answered)
            if new_state is None or new_state == alarm["StateValue"]:
                continue
            self._cloudwatch.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue=new_state, StateReason=reason)
            transition = Transition(alarm["AlarmName"], alarm["StateValue"], new_state, reason)
            self._notify(alarm, transition, now)
            transitions.append(transition)
        return transitions

    def _alarms(self) -> list[dict[str, Any]]:
        filters = {"AlarmNamePrefix": self._prefix} if self._prefix else {}
        pages = self._cloudwatch.get_paginator("describe_alarms").paginate(**filters)
        return [alarm for page in pages for alarm in page["MetricAlarms"]]

    def _one_call_each(self, queries: list[StatisticsQuery]) -> list[Datapoints]:
        return [self._cloudwatch.get_metric_statistics(**query.as_request())["Datapoints"] for query in queries]

    def _questions_for(self, alarm: dict[str, Any], now: datetime) -> list[StatisticsQuery]:
        """A metric alarm: its metric per period over the window. A metric math alarm: each MetricStat per
        period of the window, one question a period (one period spanning [start, end): one datapoint)."""
        if not alarm.get("Metrics"):
            period = max(1, int(alarm["Period"] / self._time_scale))
            periods = int(alarm["EvaluationPeriods"])
            return [
                _query(
                    alarm,
                    now - timedelta(seconds=period * periods),
                    now + timedelta(seconds=1),
                    period,
                    alarm.get("Statistic") or "Maximum",
                )
            ]
        period, slots = self._math_slots(alarm, now)
        return [
            _query(
                query["MetricStat"]["Metric"],
                start,
                start + timedelta(seconds=period),
                period,
                query["MetricStat"]["Stat"],
            )
            for query in alarm["Metrics"]
            if "MetricStat" in query
            for start in slots
        ]

    def _math_slots(self, alarm: dict[str, Any], now: datetime) -> tuple[int, list[datetime]]:
        """The scaled period of a metric math alarm and the starts of its window's periods."""
        period = max(
            1, int(max(q["MetricStat"]["Period"] for q in alarm["Metrics"] if "MetricStat" in q) / self._time_scale)
        )
        periods = int(alarm["EvaluationPeriods"])
        return period, [now + timedelta(seconds=1) - timedelta(seconds=period * (periods - i)) for i in range(periods)]

    def _state_for(self, alarm: dict[str, Any], answered: list[Datapoints]) -> tuple[str | None, str]:
        if alarm.get("Metrics"):
            return self._math_state_for(alarm, answered)
        periods = int(alarm["EvaluationPeriods"])
        needed = int(alarm.get("DatapointsToAlarm") or periods)
        statistic = alarm.get("Statistic") or "Maximum"
        [datapoints] = answered
        compare = _COMPARE[alarm["ComparisonOperator"]]
        threshold = float(alarm["Threshold"])
        values = [float(point[statistic]) for point in sorted(datapoints, key=lambda p: p["Timestamp"])][-periods:]
        if not values:
            return _missing(alarm.get("TreatMissingData") or "missing", alarm["StateValue"])
        breaching = sum(1 for value in values if compare(value, threshold))
        return _verdict(breaching, needed, [f"{value:g}" for value in values], threshold)

    def _math_state_for(self, alarm: dict[str, Any], answered: list[Datapoints]) -> tuple[str | None, str]:
        """A metric math alarm: the expression per period of the window, missing periods as TreatMissingData says."""
        queries = {query["Id"]: query for query in alarm["Metrics"]}
        [watched] = [query for query in queries.values() if query.get("ReturnData", True) and "Expression" in query]
        periods = int(alarm["EvaluationPeriods"])
        answers = iter(answered)
        fetched = {
            query_id: [_one_value(next(answers), query["MetricStat"]["Stat"]) for _ in range(periods)]
            for query_id, query in queries.items()
            if "MetricStat" in query
        }
        values = _expression_values(watched["Expression"], queries, fetched)
        treat = alarm.get("TreatMissingData") or "missing"
        if all(value is None for value in values):
            return _missing(treat, alarm["StateValue"])
        compare = _COMPARE[alarm["ComparisonOperator"]]
        threshold = float(alarm["Threshold"])
        breaching = sum(1 for v in values if (treat == "breaching" if v is None else compare(v, threshold)))
        shown = ["missing" if value is None else f"{value:g}" for value in values]
        return _verdict(breaching, int(alarm.get("DatapointsToAlarm") or periods), shown, threshold)

    def _notify(self, alarm: dict[str, Any], transition: Transition, now: datetime) -> None:
        actions = {"ALARM": alarm.get("AlarmActions", []), "OK": alarm.get("OKActions", [])}.get(
            transition.new_state, []
        )
        actions = actions if alarm.get("ActionsEnabled", True) else []
        message = notification(alarm, transition, now, self._region)
        for topic_arn in actions:
            if topic_arn.startswith("arn:aws:sns:"):
                self._sns.publish(
                    TopicArn=topic_arn,
                    Subject=f'{transition.new_state}: "{alarm["AlarmName"]}" in {self._region}'[:100],
                    Message=json.dumps(message),
                )
        log.info("alarm %s: %s -> %s", alarm["AlarmName"], transition.old_state, transition.new_state)


def _query(metric: dict[str, Any], start: datetime, end: datetime, period: int, statistic: str) -> StatisticsQuery:
    """The question for a metric (an alarm's, or a MetricStat's Metric: both name it the same way)."""
    dimensions = tuple((d["Name"], d["Value"]) for d in metric.get("Dimensions", []))
    return StatisticsQuery(metric["Namespace"], metric["MetricName"], dimensions, start, end, period, statistic)


def _one_value(datapoints: Datapoints, statistic: str) -> float | None:
    """The statistic of a one-period answer: None when the metric has no data there."""
    return float(datapoints[0][statistic]) if datapoints else None


_ARITHMETIC: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}

Series = list[float | None]


def _expression_values(expression: str, queries: dict[str, Any], fetched: dict[str, Series]) -> Series:
    """A metric math expression over per-period series (None: no value in that period).

    The forms alarms here use: query ids, numbers, + - * / and FILL(series, number). Arithmetic on two
    series has a value only where both have one; FILL gives the missing periods a value.
    """
    width = len(next(iter(fetched.values())))

    def value_of(node: ast.expr) -> Series:
        if isinstance(node, ast.Name):
            if node.id in fetched:
                return fetched[node.id]
            return _expression_values(queries[node.id]["Expression"], queries, fetched)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return [float(node.value)] * width
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return [None if v is None else -v for v in value_of(node.operand)]
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
            apply = _ARITHMETIC[type(node.op)]
            pairs = zip(value_of(node.left), value_of(node.right), strict=True)
            return [None if a is None or b is None else apply(a, b) for a, b in pairs]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "FILL":
            series, fill = (value_of(arg) for arg in node.args)
            return [f if v is None else v for v, f in zip(series, fill, strict=True)]
        raise ValueError(f"metric math the local evaluator does not know: {ast.unparse(node)!r} in {expression!r}")

    return value_of(ast.parse(expression, mode="eval").body)


def _verdict(breaching: int, needed: int, shown: list[str], threshold: float) -> tuple[str, str]:
    """ALARM when ``needed`` of the window's datapoints (``shown``) breach, else OK; CloudWatch's reason."""
    listed = ", ".join(shown)
    if breaching >= needed:
        count = f"{breaching} of the last {len(shown)} datapoints"
        return "ALARM", f"Threshold Crossed: {count} [{listed}] crossed the threshold ({threshold:g})."
    return "OK", f"Threshold Crossed: no datapoint in [{listed}] crossed the threshold ({threshold:g})."


def _missing(treat: str, current: str) -> tuple[str | None, str]:
    if treat == "breaching":
        return "ALARM", "Missing data treated as breaching."
    if treat == "notBreaching":
        return "OK", "Missing data treated as not breaching."
    if treat == "ignore":
        return None, ""
    return "INSUFFICIENT_DATA", "Insufficient Data: no datapoints were received."


def notification(alarm: dict[str, Any], transition: Transition, now: datetime, region: str) -> dict[str, Any]:
    """The JSON body CloudWatch sends to SNS for an alarm state change."""
    return {
        "AlarmName": alarm["AlarmName"],
        "AlarmDescription": alarm.get("AlarmDescription"),
        "AWSAccountId": alarm["AlarmArn"].split(":")[4],
        "AlarmConfigurationUpdatedTimestamp": str(alarm.get("AlarmConfigurationUpdatedTimestamp", "")),
        "NewStateValue": transition.new_state,
        "NewStateReason": transition.reason,
        "StateChangeTime": now.isoformat(timespec="milliseconds"),
        "Region": region,
        "AlarmArn": alarm["AlarmArn"],
        "OldStateValue": transition.old_state,
        "OKActions": alarm.get("OKActions", []),
        "AlarmActions": alarm.get("AlarmActions", []),
        "InsufficientDataActions": alarm.get("InsufficientDataActions", []),
        "Trigger": {
            **_watched(alarm),
            "EvaluationPeriods": alarm["EvaluationPeriods"],
            "ComparisonOperator": alarm["ComparisonOperator"],
            "Threshold": alarm["Threshold"],
            "TreatMissingData": alarm.get("TreatMissingData", "missing"),
            "EvaluateLowSampleCountPercentile": "",
        },
    }


def _watched(alarm: dict[str, Any]) -> dict[str, Any]:
    """The notification's description of what the alarm watches: one metric, or its metric math queries."""
    if alarm.get("Metrics"):
        return {"Metrics": alarm["Metrics"]}
    return {
        "MetricName": alarm["MetricName"],
        "Namespace": alarm["Namespace"],
        "StatisticType": "Statistic",
        "Statistic": (alarm.get("Statistic") or "").upper(),
        "Unit": None,
        "Dimensions": [{"value": d["Value"], "name": d["Name"]} for d in alarm.get("Dimensions", [])],
        "Period": alarm["Period"],
    }
