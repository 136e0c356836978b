"""What moto's CloudFormation is given, and what deploy_to_moto does itself (see infra.deploy)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.deploy.references import references
from infra.deploy.template import Template

_API_TYPE_PREFIXES = ("AWS::ApiGateway::", "AWS::ApiGatewayV2::")
EVENT_SOURCE_MAPPING = "AWS::Lambda::EventSourceMapping"
ALARM = "AWS::CloudWatch::Alarm"
WEB_ACL = "AWS::WAFv2::WebACL"  # moto has the WAFv2 API but no CloudFormation support for it
IP_SET = "AWS::WAFv2::IPSet"  # likewise
_SUBSCRIPTION = "AWS::SNS::Subscription"
ALIAS = "AWS::Lambda::Alias"
_POST_CREATE_TYPES = (ALARM, _SUBSCRIPTION, IP_SET, WEB_ACL, ALIAS)
IP_SET_ARN = "moto-ip-set-arn:"
"""A web ACL's ``GetAtt <IPSet>.Arn`` travels as this prefix + the IP set's logical id; post_create
puts the ARN of the IP set it created there (moto cannot resolve an attribute of what it skipped)."""
POST_CREATE_OUTPUT = "MotoPostCreate"
"""Prefix of the outputs through which moto resolves the properties of what it skips."""
SNAP_START_OUTPUT = "MotoSnapStart"
"""Prefix of the outputs through which moto resolves each function's SnapStart (which it ignores)."""


@dataclass(frozen=True)
class MotoPlan:
    """The translated template split into what moto creates and what deploy_to_moto handles."""

    template: Template
    """What moto's CloudFormation is given."""
    stripped: dict[str, str]
    """Logical id -> why the resource is not created in moto."""
    stripped_outputs: tuple[str, ...]
    event_source_mappings: dict[str, Template]
    """Logical id -> the mapping resource from the translated template (unresolved)."""
    post_create: dict[str, Template]
    """Logical id -> resource created through its API after the stack (alarms, subscriptions)."""


def prepare_for_moto(cfn_template: Template) -> MotoPlan:
    """Split a translated template into the part moto can create and the rest (see module doc)."""
    template = copy.deepcopy(cfn_template)
    resources: dict[str, Template] = template.get("Resources", {})
    stripped = _stripped_resources(resources)
    mappings = {lid: resources[lid] for lid, r in resources.items() if r.get("Type") == EVENT_SOURCE_MAPPING}
    post_create = {
        lid: r for lid, r in resources.items() if lid not in stripped and r.get("Type") in _POST_CREATE_TYPES
    }
    for logical_id in [*stripped, *post_create]:
        resources.pop(logical_id, None)
    outputs: dict[str, Template] = template.setdefault("Outputs", {})
    # Outputs naming what moto does not create (stripped, or created after the stack) are left out.
    unresolvable = stripped.keys() | post_create.keys()
    stripped_outputs = tuple(key for key, out in outputs.items() if references(out) & unresolvable)
    for key in stripped_outputs:
        del outputs[key]
    for logical_id, resource in post_create.items():
        outputs[f"{POST_CREATE_OUTPUT}{logical_id}"] = _resolving_output(resource)
    for logical_id, resource in resources.items():
        snap_start = resource.get("Properties", {}).get("SnapStart")
        if resource.get("Type") == "AWS::Lambda::Function" and snap_start is not None:
            outputs[f"{SNAP_START_OUTPUT}{logical_id}"] = {"Value": {"Fn::ToJsonString": snap_start}}
    return MotoPlan(template, stripped, stripped_outputs, mappings, post_create)


def _stripped_resources(resources: Mapping[str, Template]) -> dict[str, str]:
    stripped: dict[str, str] = {}
    for logical_id, resource in resources.items():
        kind = str(resource.get("Type", ""))
        if kind.startswith(_API_TYPE_PREFIXES):
            stripped[logical_id] = "API Gateway: moto cannot create SAM's REST API; the local stack serves it"
        elif kind == EVENT_SOURCE_MAPPING:
            stripped[logical_id] = "moto's mappings would consume messages without running code"
    # Then everything that refers to or depends on a stripped resource, transitively.
    changed = True
    while changed:
        changed = False
        for logical_id, resource in resources.items():
            if logical_id in stripped:
                continue
            needs = references(resource) & stripped.keys()
            if needs:
                stripped[logical_id] = f"refers to stripped {', '.join(sorted(needs))}"
                changed = True
    return stripped


def _resolving_output(resource: Template) -> Template:
    # moto resolves outputs (and their Condition) against the stack it created.
    properties = dict(resource.get("Properties", {}))
    if resource.get("Type") == WEB_ACL:
        properties = _ip_set_placeholders(properties)
    if resource.get("Type") == ALIAS:
        # moto's versions have no Version attribute to GetAtt: post_create aliases the version moto published.
        properties.pop("FunctionVersion", None)
    output: Template = {"Value": {"Fn::ToJsonString": properties}}
    if "Condition" in resource:
        output["Condition"] = resource["Condition"]
    return output


def _ip_set_placeholders(value: Any) -> Any:
    """The web ACL's properties with each ``IPSetReferenceStatement``'s ``GetAtt <IPSet>.Arn`` as IP_SET_ARN."""
    if isinstance(value, list):
        return [_ip_set_placeholders(item) for item in value]
    if not isinstance(value, dict):
        return value
    reference = value.get("IPSetReferenceStatement")
    if isinstance(reference, dict) and isinstance(target := reference.get("Arn", {}).get("Fn::GetAtt"), list):
        return {**value, "IPSetReferenceStatement": {**reference, "Arn": IP_SET_ARN + str(target[0])}}
    return {key: _ip_set_placeholders(item) for key, item in value.items()}
