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
class Transition:
    alarm_name: str
    old_state: str
    new_state: str
    reason: str


class AlarmEvaluator:
    def __init__(
        self, cloudwatch: Any, sns: Any, *, time_scale: float = 1.0, region: str = "us-east-1", alarm_prefix: str = ""
    ) -> None:
        self._cloudwatch = cloudwatch
        self._sns = sns
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
        """Evaluate every alarm (``stopping``: give up between alarms once it is set)."""
        now = now or datetime.now(UTC)
        transitions = []
        for alarm in self._alarms():
            if stopping is not None and stopping.is_set():
                break
            new_state, reason = self._state_for(alarm, now)
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

    def _state_for(self, alarm: dict[str, Any], now: datetime) -> tuple[str | None, str]:
        if alarm.get("Metrics"):
            return self._math_state_for(alarm, now)
        period = max(1, int(alarm["Period"] / self._time_scale))
        periods = int(alarm["EvaluationPeriods"])
        needed = int(alarm.get("DatapointsToAlarm") or periods)
        statistic = alarm.get("Statistic") or "Maximum"
        datapoints = self._cloudwatch.get_metric_statistics(
            Namespace=alarm["Namespace"],
            MetricName=alarm["MetricName"],
            Dimensions=alarm.get("Dimensions", []),
            StartTime=now - timedelta(seconds=period * periods),
            EndTime=now + timedelta(seconds=1),
            Period=period,
            Statistics=[statistic],
        )["Datapoints"]
        compare = _COMPARE[alarm["ComparisonOperator"]]
        threshold = float(alarm["Threshold"])
        values = [float(point[statistic]) for point in sorted(datapoints, key=lambda p: p["Timestamp"])][-periods:]
        if not values:
            return _missing(alarm.get("TreatMissingData") or "missing", alarm["StateValue"])
        breaching = sum(1 for value in values if compare(value, threshold))
        return _verdict(breaching, needed, [f"{value:g}" for value in values], threshold)

    def _math_state_for(self, alarm: dict[str, Any], now: datetime) -> tuple[str | None, str]:
        """A metric math alarm: the expression per period of the window, missing periods as TreatMissingData says."""
        queries = {query["Id"]: query for query in alarm["Metrics"]}
        [watched] = [query for query in queries.values() if query.get("ReturnData", True) and "Expression" in query]
        period = max(
            1, int(max(q["MetricStat"]["Period"] for q in queries.values() if "MetricStat" in q) / self._time_scale)
        )
        periods = int(alarm["EvaluationPeriods"])
        slots = [now + timedelta(seconds=1) - timedelta(seconds=period * (periods - i)) for i in range(periods)]
        fetched = {
            query_id: [self._stat_in(query["MetricStat"], start, start + timedelta(seconds=period)) for start in slots]
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

    def _stat_in(self, stat: dict[str, Any], start: datetime, end: datetime) -> float | None:
        """One MetricStat's statistic over [start, end): None when the metric has no data there."""
        metric = stat["Metric"]
        datapoints = self._cloudwatch.get_metric_statistics(
            Namespace=metric["Namespace"],
            MetricName=metric["MetricName"],
            Dimensions=metric.get("Dimensions", []),
            StartTime=start,
            EndTime=end,
            Period=max(1, int((end - start).total_seconds())),
            Statistics=[stat["Stat"]],
        )["Datapoints"]
        # One period spanning [start, end): at most one datapoint.
        return float(datapoints[0][stat["Stat"]]) if datapoints else None

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
