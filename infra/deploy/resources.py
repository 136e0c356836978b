"""What deploy_to_moto created, read back by logical id: functions, event sources, queues, tables, topics."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.deploy.plan import MotoPlan
from infra.deploy.post_create import SnsSourceSpec, as_bool
from infra.deploy.references import references
from infra.deploy.template import LOCAL_URI_KEY, Template


class DeployError(Exception):
    """The stack could not be created in moto."""


@dataclass(frozen=True)
class FunctionSpec:
    """A Lambda function as created in moto, plus where its code lives locally."""

    logical_id: str
    name: str
    arn: str
    handler: str
    runtime: str
    timeout: int
    memory_size: int
    environment: dict[str, str]
    """Resolved by moto (queue URLs, table names...)."""
    role_arn: str
    code_uri: str | None
    """Local path from the SAM template, e.g. "functions/charge/" (None if not a local path)."""
    layer_uris: tuple[str, ...]
    """Local paths of the function's layers from the SAM template, e.g. ("src/",)."""
    snap_start: str = "None"
    """SnapStart's ApplyOn as the stack resolved it ("PublishedVersions" or "None"); moto itself reports it off."""


@dataclass(frozen=True)
class EventSourceSpec:
    """An event source mapping that was NOT created in moto, for a local poller to mimic."""

    logical_id: str
    function_logical_id: str
    function_name: str
    source_logical_id: str
    """The queue (or stream owner) logical id, e.g. "TokenizeQueue"."""
    source_type: str
    queue_url: str | None
    """SQS sources only."""
    queue_arn: str | None
    batch_size: int
    maximum_batching_window_seconds: int
    function_response_types: tuple[str, ...]
    maximum_concurrency: int | None
    enabled: bool
    properties: dict[str, Any] = field(repr=False)
    """The mapping's properties from the translated template (unresolved intrinsics)."""

    @property
    def report_batch_item_failures(self) -> bool:
        return "ReportBatchItemFailures" in self.function_response_types

    @property
    def queue_logical_id(self) -> str:
        return self.source_logical_id


@dataclass(frozen=True)
class StackResources:
    """What deploy_to_moto created, by logical id."""

    stack_name: str
    stack_id: str
    region: str
    physical_ids: dict[str, str]
    """Every resource moto created: logical id -> physical id (as list_stack_resources reports it)."""
    queues: dict[str, str]
    """Logical id -> queue URL."""
    tables: dict[str, str]
    """Logical id -> table name."""
    topics: dict[str, str]
    """Logical id -> topic ARN."""
    functions: dict[str, FunctionSpec]
    event_sources: dict[str, EventSourceSpec]
    alarms: dict[str, str]
    """Logical id -> alarm name (created by deploy_to_moto, not by moto's CloudFormation)."""
    subscriptions: dict[str, str]
    """Logical id -> subscription ARN (created by deploy_to_moto)."""
    web_acls: dict[str, str]
    """Logical id -> WAF web ACL ARN (created by deploy_to_moto through the WAFv2 API)."""
    aliases: dict[str, str]
    """Logical id -> Lambda alias ARN (created by deploy_to_moto, on the version the stack published)."""
    outputs: dict[str, str]
    """The stack's Outputs, except those referring to stripped resources."""
    stripped: dict[str, str]
    """Logical id -> why the resource was not created in moto (API Gateway, event source mappings)."""
    sns_sources: dict[str, SnsSourceSpec] = field(default_factory=dict)
    """Subscription logical id -> a function subscribed to a topic, for the local stack to deliver to."""

    def sns_function(self, source: SnsSourceSpec) -> str:
        """The logical id of the function an SNS source delivers to."""
        return next(lid for lid, f in self.functions.items() if f.arn == source.function_arn)


def physical_ids(cfn: Any, stack_name: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        for summary in page["StackResourceSummaries"]:
            found[summary["LogicalResourceId"]] = summary["PhysicalResourceId"]
    return found


def physical_ids_by_type(
    resources: Mapping[str, Template], physical_ids: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    by_type: dict[str, dict[str, str]] = {}
    for logical_id, physical_id in physical_ids.items():
        kind = resources.get(logical_id, {}).get("Type", "")
        by_type.setdefault(kind, {})[logical_id] = physical_id
    return by_type


def function_spec(
    lambda_client: Any, logical_id: str, name: str, resources: Mapping[str, Template], snap_start: str | None = None
) -> FunctionSpec:
    """``snap_start``: the function's SnapStart property as moto resolved it (JSON), if it has one."""
    config = lambda_client.get_function_configuration(FunctionName=name)
    resource = resources[logical_id]
    layer_uris = tuple(
        uri
        for layer in resource.get("Properties", {}).get("Layers", [])
        if isinstance(layer, dict) and "Ref" in layer
        for uri in [resources.get(layer["Ref"], {}).get("Metadata", {}).get(LOCAL_URI_KEY)]
        if uri is not None
    )
    return FunctionSpec(
        logical_id=logical_id,
        name=config["FunctionName"],
        arn=config["FunctionArn"],
        handler=config["Handler"],
        runtime=config["Runtime"],
        timeout=int(config["Timeout"]),
        memory_size=int(config["MemorySize"]),
        # Lambda hands every variable to the code as a string; moto keeps Number parameters as ints.
        environment={k: str(v) for k, v in config.get("Environment", {}).get("Variables", {}).items()},
        role_arn=config["Role"],
        code_uri=resource.get("Metadata", {}).get(LOCAL_URI_KEY),
        layer_uris=layer_uris,
        snap_start=str(json.loads(snap_start).get("ApplyOn", "None")) if snap_start else "None",
    )


def _target_logical_id(node: Any) -> str:
    """Logical id behind `{"Ref": X}` or `{"Fn::GetAtt": [X, attr]}`."""
    found = references(node)
    if len(found) != 1:
        raise DeployError(f"cannot tell which resource {node!r} names")
    return found.pop()


def event_sources(
    sqs: Any, plan: MotoPlan, physical_ids: Mapping[str, str], resources: Mapping[str, Template]
) -> dict[str, EventSourceSpec]:
    specs: dict[str, EventSourceSpec] = {}
    all_types = {lid: r.get("Type", "") for lid, r in plan.event_source_mappings.items()}
    all_types.update({lid: r.get("Type", "") for lid, r in resources.items()})
    for logical_id, mapping in plan.event_source_mappings.items():
        properties = mapping.get("Properties", {})
        function_id = _target_logical_id(properties["FunctionName"])
        source_id = _target_logical_id(properties["EventSourceArn"])
        source_type = all_types.get(source_id, "")
        queue_url = physical_ids.get(source_id) if source_type == "AWS::SQS::Queue" else None
        queue_arn = None
        if queue_url is not None:
            attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
            queue_arn = attributes["Attributes"]["QueueArn"]
        scaling = properties.get("ScalingConfig", {})
        specs[logical_id] = EventSourceSpec(
            logical_id=logical_id,
            function_logical_id=function_id,
            function_name=physical_ids[function_id],
            source_logical_id=source_id,
            source_type=source_type,
            queue_url=queue_url,
            queue_arn=queue_arn,
            batch_size=int(properties.get("BatchSize", 10)),
            maximum_batching_window_seconds=int(properties.get("MaximumBatchingWindowInSeconds", 0)),
            function_response_types=tuple(properties.get("FunctionResponseTypes", [])),
            maximum_concurrency=int(scaling["MaximumConcurrency"]) if "MaximumConcurrency" in scaling else None,
            enabled=as_bool(properties.get("Enabled", True)),
            properties=copy.deepcopy(properties),
        )
    return specs
