"""The resources moto's CloudFormation skips, created through their APIs: CloudWatch alarms, SNS
subscriptions, WAF web ACLs (moto implements the WAFv2 API; botocore checks the rules against the
service model, so a rule WAF would refuse, a rate limit below 10 for one, fails here too) and Lambda
aliases.

Their properties were resolved by moto itself against the created stack (each travels as a
``Fn::ToJsonString`` output, see infra.deploy.plan), so ``Ref``/``GetAtt``/``Sub``/``If`` and
conditions mean exactly what they mean for the other resources.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.deploy.plan import ALARM, ALIAS, IP_SET, IP_SET_ARN, POST_CREATE_OUTPUT, WEB_ACL, MotoPlan


@dataclass(frozen=True)
class SnsSourceSpec:
    """A Lambda function subscribed to a topic (SAM's SNS event), NOT subscribed in moto: moto would invoke
    the function through Docker. The local stack delivers the topic's messages to it (simulator.local.sns)."""

    logical_id: str
    topic_arn: str
    function_arn: str


@dataclass(frozen=True)
class PostCreated:
    """Logical id -> alarm name, subscription ARN, Lambda subscription to deliver, web ACL ARN, alias ARN."""

    alarms: dict[str, str] = field(default_factory=dict)
    subscriptions: dict[str, str] = field(default_factory=dict)
    sns_sources: dict[str, SnsSourceSpec] = field(default_factory=dict)
    web_acls: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)


def create_post_create(
    client: Callable[[str], Any], plan: MotoPlan, raw_outputs: Mapping[str, str], stack_name: str
) -> PostCreated:
    created = PostCreated()
    ip_sets: dict[str, str] = {}
    # IP sets first: a web ACL names them (infra.deploy.plan.IP_SET_ARN).
    ordered = sorted(plan.post_create.items(), key=lambda item: item[1]["Type"] != IP_SET)
    for logical_id, resource in ordered:
        resolved = raw_outputs.get(f"{POST_CREATE_OUTPUT}{logical_id}")
        if resolved is None:  # its Condition is false
            continue
        properties: dict[str, Any] = json.loads(resolved)
        if resource["Type"] == ALARM:
            created.alarms[logical_id] = _put_alarm(client("cloudwatch"), logical_id, properties, stack_name)
        elif resource["Type"] == IP_SET:
            ip_sets[logical_id] = _create_ip_set(client("wafv2"), logical_id, properties, stack_name)
        elif resource["Type"] == WEB_ACL:
            properties = json.loads(_with_ip_set_arns(json.dumps(properties), ip_sets))
            created.web_acls[logical_id] = _create_web_acl(client("wafv2"), logical_id, properties, stack_name)
        elif resource["Type"] == ALIAS:
            created.aliases[logical_id] = _create_alias(client("lambda"), properties)
        elif properties.get("Protocol") == "lambda":
            created.sns_sources[logical_id] = SnsSourceSpec(logical_id, properties["TopicArn"], properties["Endpoint"])
        else:
            created.subscriptions[logical_id] = _subscribe(client("sns"), properties)
    return created


ALARM_FIELDS = (
    "AlarmName", "AlarmDescription", "ActionsEnabled", "OKActions", "AlarmActions",
    "InsufficientDataActions", "MetricName", "Namespace", "Statistic", "ExtendedStatistic",
    "Dimensions", "Period", "Unit", "EvaluationPeriods", "DatapointsToAlarm", "Threshold",
    "ComparisonOperator", "TreatMissingData", "EvaluateLowSampleCountPercentile", "Metrics",
    "Tags", "ThresholdMetricId",
)  # fmt: skip
_INT_FIELDS = ("Period", "EvaluationPeriods", "DatapointsToAlarm")


def _put_alarm(cloudwatch: Any, logical_id: str, properties: Mapping[str, Any], stack_name: str) -> str:
    args = {k: v for k, v in properties.items() if k in ALARM_FIELDS}
    # Parameters arrive as strings; the API wants numbers and booleans.
    args["AlarmName"] = args.get("AlarmName") or _generated_name(stack_name, logical_id)
    for name in _INT_FIELDS:
        if name in args:
            args[name] = int(args[name])
    if "Threshold" in args:
        args["Threshold"] = float(args["Threshold"])
    if "ActionsEnabled" in args:
        args["ActionsEnabled"] = as_bool(args["ActionsEnabled"])
    if "Metrics" in args:
        args["Metrics"] = [_metric_query(query) for query in args["Metrics"]]
    cloudwatch.put_metric_alarm(**args)
    return str(args["AlarmName"])


def _metric_query(query: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(query)
    if "Period" in result:
        result["Period"] = int(result["Period"])
    if "ReturnData" in result:
        result["ReturnData"] = as_bool(result["ReturnData"])
    if "MetricStat" in result:
        result["MetricStat"] = {**result["MetricStat"], "Period": int(result["MetricStat"]["Period"])}
    return result


def as_bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() == "true"


def _generated_name(stack_name: str, logical_id: str) -> str:
    # CloudFormation's pattern for unnamed resources: <stack>-<LogicalId>-<13 random characters>.
    alphabet = string.ascii_uppercase + string.digits
    return f"{stack_name}-{logical_id}-{''.join(secrets.choice(alphabet) for _ in range(13))}"


_SUBSCRIPTION_ATTRIBUTES = (
    "DeliveryPolicy", "FilterPolicy", "FilterPolicyScope", "RawMessageDelivery",
    "RedrivePolicy", "ReplayPolicy", "SubscriptionRoleArn",
)  # fmt: skip


def _subscribe(sns: Any, properties: Mapping[str, Any]) -> str:
    attributes = {name: _attribute_value(v) for name, v in properties.items() if name in _SUBSCRIPTION_ATTRIBUTES}
    response = sns.subscribe(
        TopicArn=properties["TopicArn"],
        Protocol=properties["Protocol"],
        Endpoint=properties.get("Endpoint", ""),
        Attributes=attributes,
        ReturnSubscriptionArn=True,
    )
    return str(response["SubscriptionArn"])


def _attribute_value(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


# WAFv2's API takes the CloudFormation properties' shapes; parameters arrive as strings.
_WAF_INTEGERS = frozenset({"Priority", "Limit", "EvaluationWindowSec", "ResponseCode"})
_WAF_BOOLEANS = frozenset({"SampledRequestsEnabled", "CloudWatchMetricsEnabled"})


def _create_web_acl(wafv2: Any, logical_id: str, properties: Mapping[str, Any], stack_name: str) -> str:
    args = _waf_value(dict(properties))
    args["Name"] = args.get("Name") or f"{stack_name}-{logical_id}"
    return str(wafv2.create_web_acl(**args)["Summary"]["ARN"])


def _create_ip_set(wafv2: Any, logical_id: str, properties: Mapping[str, Any], stack_name: str) -> str:
    args = dict(properties)
    args["Name"] = args.get("Name") or f"{stack_name}-{logical_id}"
    return str(wafv2.create_ip_set(**args)["Summary"]["ARN"])


def _with_ip_set_arns(text: str, ip_sets: Mapping[str, str]) -> str:
    for logical_id, arn in ip_sets.items():
        text = text.replace(json.dumps(IP_SET_ARN + logical_id), json.dumps(arn))
    return text


def _waf_value(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        if key == "IPSetReferenceStatement":  # CloudFormation spells it Arn, the WAFv2 API ARN
            value = {("ARN" if name == "Arn" else name): item for name, item in value.items()}
        return {name: _waf_value(item, name) for name, item in value.items()}
    if isinstance(value, list):
        return [_waf_value(item, key) for item in value]
    if key in _WAF_INTEGERS:
        return int(value)
    if key in _WAF_BOOLEANS:
        return as_bool(value)
    return value


def _create_alias(lambda_client: Any, properties: Mapping[str, Any]) -> str:
    """The alias, on the newest version of its function: the one the stack's AWS::Lambda::Version published
    (SAM's AutoPublishAlias makes exactly one per function and points the alias at it)."""
    function = str(properties["FunctionName"])
    versions = lambda_client.list_versions_by_function(FunctionName=function)["Versions"]
    published = [int(v["Version"]) for v in versions if v["Version"] != "$LATEST"]
    if not published:
        raise ValueError(f"alias {properties['Name']} of {function}: the function has no published version")
    response = lambda_client.create_alias(
        FunctionName=function, Name=properties["Name"], FunctionVersion=str(max(published))
    )
    return str(response["AliasArn"])
