"""The stack's CloudWatch alarms and their states."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from donations_ops.aws import Clients
from donations_ops.stack_resources import Stack

ALARM = "ALARM"


@dataclass(frozen=True)
class AlarmState:
    name: str
    state: str
    """OK, ALARM or INSUFFICIENT_DATA."""
    reason: str
    updated_at: datetime | None

    @property
    def firing(self) -> bool:
        return self.state == ALARM


def stack_alarms(clients: Clients, stack: Stack) -> list[AlarmState]:
    """The stack's alarms, sorted by name.

    On AWS they are stack resources. moto skips ``AWS::CloudWatch::Alarm`` and the local stack
    creates them through the CloudWatch API, named ``<stack>-...``: so also every alarm with that
    prefix, and when neither finds any, every alarm that notifies one of the stack's topics.
    """
    return sorted((_state(alarm) for alarm in _stack_alarms(clients, stack)), key=lambda a: a.name)


def firing_for_service(clients: Clients, stack: Stack, service: str) -> list[AlarmState]:
    """The stack's alarms in ALARM about one function's own metrics (their ``service`` dimension, as
    the template's step-failing and provider alarms have it): while one fires, the step still fails."""
    return sorted(
        (
            _state(alarm)
            for alarm in _stack_alarms(clients, stack)
            if alarm.get("StateValue") == ALARM and {"Name": "service", "Value": service} in alarm.get("Dimensions", [])
        ),
        key=lambda a: a.name,
    )


def _stack_alarms(clients: Clients, stack: Stack) -> list[dict[str, Any]]:
    cloudwatch = clients("cloudwatch")
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(stack.alarm_names), 100):  # AlarmNames takes at most 100
        found.update(_by_name(_describe(cloudwatch, AlarmNames=list(stack.alarm_names[start : start + 100]))))
    # The trailing dash keeps "donations" from matching "donations-test-..." alarms of another stack.
    found.update(_by_name(_describe(cloudwatch, AlarmNamePrefix=f"{stack.name}-")))
    if not found and stack.topics:
        topics = set(stack.topics.values())
        found.update(_by_name(a for a in _describe(cloudwatch) if topics & set(_actions(a))))
    return list(found.values())


def _describe(cloudwatch: Any, **filters: Any) -> list[dict[str, Any]]:
    alarms: list[dict[str, Any]] = []
    for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"], **filters):
        alarms.extend(page.get("MetricAlarms", []))
    return alarms


def _by_name(alarms: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {alarm["AlarmName"]: alarm for alarm in alarms}


def _actions(alarm: dict[str, Any]) -> list[str]:
    return [*alarm.get("AlarmActions", []), *alarm.get("OKActions", []), *alarm.get("InsufficientDataActions", [])]


def _state(alarm: dict[str, Any]) -> AlarmState:
    return AlarmState(
        name=alarm["AlarmName"],
        state=alarm.get("StateValue", "INSUFFICIENT_DATA"),
        reason=alarm.get("StateReason", ""),
        updated_at=alarm.get("StateUpdatedTimestamp"),
    )
