"""Evaluate the template's alarms locally and notify their SNS actions the way CloudWatch does.

moto stores alarms but never evaluates them and never notifies. This evaluator reads the
alarm's metric from moto's CloudWatch over its EvaluationPeriods x Period window (optionally
compressed by ``time_scale`` so tests need not wait minutes), applies DatapointsToAlarm and
TreatMissingData, sets the state, and on a change publishes CloudWatch's notification JSON to
the AlarmActions (to ALARM) or OKActions (to OK).
"""

from __future__ import annotations

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
        breaching = [value for value in values if compare(value, threshold)]
        shown = ", ".join(f"{value:g}" for value in values)
        if len(breaching) >= needed:
            count = f"{len(breaching)} of the last {len(values)} datapoints"
            return "ALARM", f"Threshold Crossed: {count} [{shown}] crossed the threshold ({threshold:g})."
        return "OK", f"Threshold Crossed: no datapoint in [{shown}] crossed the threshold ({threshold:g})."

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
            "MetricName": alarm["MetricName"],
            "Namespace": alarm["Namespace"],
            "StatisticType": "Statistic",
            "Statistic": (alarm.get("Statistic") or "").upper(),
            "Unit": None,
            "Dimensions": [{"value": d["Value"], "name": d["Name"]} for d in alarm.get("Dimensions", [])],
            "Period": alarm["Period"],
            "EvaluationPeriods": alarm["EvaluationPeriods"],
            "ComparisonOperator": alarm["ComparisonOperator"],
            "Threshold": alarm["Threshold"],
            "TreatMissingData": alarm.get("TreatMissingData", "missing"),
            "EvaluateLowSampleCountPercentile": "",
        },
    }
