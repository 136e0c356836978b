"""Cost model, what the template itself bills each month: every fixed line read from template.yaml.

Counted from the template, never by hand, so the model cannot drift from what is deployed: alarms
(and the metrics each one evaluates), dashboards, customer managed KMS keys, secrets, tables with
point-in-time recovery, SQS event source mappings, schedules, log groups and their retention, the
web ACL's rules, the functions with SnapStart. Conditions are resolved for the parameters given
(defaults otherwise), so ``EnableDashboard=true`` or ``SnapStart=true`` price what they create.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SECONDS_PER_MONTH = 30 * 24 * 3600
_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class TemplateFacts:
    """The billable resources of template.yaml, for one set of parameter values."""

    parameters: dict[str, str]
    alarm_metrics: dict[str, int]
    """Alarm logical id -> metrics it evaluates (a metric math alarm is billed per metric)."""
    dashboards: int
    kms_keys: int
    secrets: int
    """Secrets Manager secrets the functions' roles may read ($0.40 a month each)."""
    secure_parameters: int
    """SSM SecureString parameters the roles may read (standard tier: no monthly fee)."""
    pitr_tables: list[str]
    sqs_event_sources: list[str]
    """Functions with an SQS event source mapping (each long-polls its queue all month)."""
    schedules: dict[str, float]
    """Function logical id -> scheduled runs per month."""
    memory_mb: dict[str, int]
    log_retention_days: dict[str, int]
    """Log group logical id -> RetentionInDays."""
    waf_rules: int
    """Rules of the web ACL (0 when EnableWaf=false)."""
    snapstart_functions: list[str]

    @property
    def alarms(self) -> int:
        return len(self.alarm_metrics)


def template_facts(template: Mapping[str, Any], overrides: Mapping[str, str] | None = None) -> TemplateFacts:
    """The SAM template's billable resources, its Conditions resolved for ``overrides`` over the defaults."""
    parameters = {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}
    parameters.update(overrides or {})
    conditions = _Conditions(template.get("Conditions", {}), parameters)
    resources = {
        lid: r for lid, r in template["Resources"].items() if "Condition" not in r or conditions.holds(r["Condition"])
    }
    by_type: dict[str, dict[str, dict[str, Any]]] = {}
    for lid, resource in resources.items():
        by_type.setdefault(resource["Type"], {})[lid] = resource.get("Properties", {})
    functions = by_type.get("AWS::Serverless::Function", {})
    default_memory = int(template.get("Globals", {}).get("Function", {}).get("MemorySize", 128))
    return TemplateFacts(
        parameters=parameters,
        alarm_metrics={lid: _alarm_metrics(p) for lid, p in by_type.get("AWS::CloudWatch::Alarm", {}).items()},
        dashboards=len(by_type.get("AWS::CloudWatch::Dashboard", {})),
        kms_keys=len(by_type.get("AWS::KMS::Key", {})),
        secrets=len(_readable(resources, "secretsmanager:GetSecretValue")),
        secure_parameters=len(_readable(resources, "ssm:GetParameter")),
        pitr_tables=_pitr_tables(by_type.get("AWS::DynamoDB::Table", {}), conditions),
        sqs_event_sources=[lid for lid, p in functions.items() if _events(p, "SQS")],
        schedules=_schedules(functions),
        memory_mb={lid: int(p.get("MemorySize", default_memory)) for lid, p in functions.items()},
        log_retention_days=_log_retention_days(by_type.get("AWS::Logs::LogGroup", {}), conditions),
        waf_rules=sum(len(p.get("Rules", [])) for p in by_type.get("AWS::WAFv2::WebACL", {}).values()),
        snapstart_functions=_snapstart_functions(functions, conditions),
    )


Properties = Mapping[str, Mapping[str, Any]]
"""Logical id -> Properties, of the resources of one type."""


def _pitr_tables(tables: Properties, conditions: _Conditions) -> list[str]:
    """The tables with point-in-time recovery on (billed per GB)."""
    return [
        lid
        for lid, p in tables.items()
        if conditions.value(p.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled")) is True
    ]


def _schedules(functions: Properties) -> dict[str, float]:
    """Function -> runs a month of its Schedule events."""
    return {
        lid: sum(_runs_per_month(e["Properties"]["Schedule"]) for e in _events(p, "Schedule"))
        for lid, p in functions.items()
        if _events(p, "Schedule")
    }


def _log_retention_days(log_groups: Properties, conditions: _Conditions) -> dict[str, int]:
    return {lid: int(conditions.value(p.get("RetentionInDays", 0)) or 0) for lid, p in log_groups.items()}


def _snapstart_functions(functions: Properties, conditions: _Conditions) -> list[str]:
    return [
        lid
        for lid, p in functions.items()
        if conditions.value(p.get("SnapStart", {}).get("ApplyOn", "None")) == "PublishedVersions"
    ]


def _readable(resources: Mapping[str, Any], action: str) -> set[str]:
    """The resources (as written in the template) that some role's policy allows ``action`` on."""
    found: set[str] = set()
    for resource in resources.values():
        if resource["Type"] not in ("AWS::IAM::Role", "AWS::IAM::Policy"):
            continue
        properties = resource.get("Properties", {})
        documents = [p["PolicyDocument"] for p in properties.get("Policies", [])]
        documents += [properties["PolicyDocument"]] if "PolicyDocument" in properties else []
        for statement in (st for document in documents for st in document.get("Statement", [])):
            actions = statement.get("Action", [])
            if action in ([actions] if isinstance(actions, str) else actions):
                targets = statement.get("Resource", [])
                found |= {repr(t) for t in (targets if isinstance(targets, list) else [targets])}
    return found


def _alarm_metrics(properties: Mapping[str, Any]) -> int:
    """CloudWatch bills an alarm per metric it evaluates: 1 for a plain alarm; for metric math, each
    MetricStat in its Metrics (the expressions themselves are not metrics)."""
    if "Metrics" not in properties:
        return 1
    return sum(1 for query in properties["Metrics"] if "MetricStat" in query)


def _events(function: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in function.get("Events", {}).values() if e.get("Type") == kind]


def _runs_per_month(expression: str) -> float:
    match = _RATE.fullmatch(expression.strip())
    if not match:
        raise ValueError(f"schedule {expression!r}: only rate(N unit) is modelled")
    return SECONDS_PER_MONTH / (int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")])


class _Conditions:
    """Fn::Equals / Not / And / Or / Condition over parameter Refs, and Fn::If on values."""

    def __init__(self, definitions: Mapping[str, Any], parameters: Mapping[str, str]) -> None:
        self._definitions = definitions
        self._parameters = parameters

    def holds(self, name: str) -> bool:
        return bool(self._evaluate(self._definitions[name]))

    def value(self, node: Any) -> Any:
        """A property value with its Ref and Fn::If resolved (anything else returned as it is)."""
        if isinstance(node, dict) and "Fn::If" in node:
            name, then, otherwise = node["Fn::If"]
            return self.value(then if self.holds(name) else otherwise)
        if isinstance(node, dict) and "Ref" in node and node["Ref"] in self._parameters:
            return self._parameters[node["Ref"]]
        return node

    def _evaluate(self, node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        [(function, argument)] = node.items()
        if function == "Ref":
            return self._parameters[argument]
        if function == "Condition":
            return self.holds(argument)
        if function == "Fn::Equals":
            left, right = (str(self._evaluate(a)) for a in argument)
            return left == right
        if function == "Fn::Not":
            return not self._evaluate(argument[0])
        if function == "Fn::And":
            return all(self._evaluate(a) for a in argument)
        if function == "Fn::Or":
            return any(self._evaluate(a) for a in argument)
        raise ValueError(f"condition function {function} is not modelled")
