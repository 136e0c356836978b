"""template.yaml offline: load it, translate SAM to CloudFormation, and create it in moto.

Shared by the template contract tests (tests/infra) and the local stack, so that what runs
locally is what the template deploys.

moto's CloudFormation cannot create everything in the translated template, so
:func:`deploy_to_moto` changes the template before creating the stack, and says what it did in
:attr:`StackResources.stripped`:

* **API Gateway** (``AWS::ApiGateway::*``): moto cannot create SAM's swagger-bodied REST API.
  Those resources, and every resource that refers to them or depends on them (the Lambda
  permissions for the API, for example), are left out; the local stack serves the API itself.
  Outputs that refer to them (``ApiUrl``) are left out too.
* **Event source mappings**: left out, because moto's mappings consume SQS messages without
  running any code. Their settings are returned in :attr:`StackResources.event_sources` so a local
  poller can deliver messages the same way.
* **CloudWatch alarms and SNS subscriptions**: moto skips them. They are created afterwards with
  the CloudWatch and SNS APIs, with their properties resolved by moto itself against the created
  stack (each travels as a ``Fn::ToJsonString`` output, so ``Ref``/``GetAtt``/``Sub``/``If`` and
  conditions mean exactly what they mean for the other resources).
"""

from __future__ import annotations

import copy
import io
import json
import secrets
import string
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from infra.clients import ClientCache
from infra.moto_atomic import make_dynamodb_writes_atomic

Template = dict[str, Any]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ARTIFACT_BUCKET = "local-sam-artifacts"
"""Bucket named in place of local CodeUri/ContentUri paths; deploy_to_moto uploads dummy code there."""
LOCAL_URI_KEY = "LocalUri"
"""Metadata key on translated Lambda functions and layers: the local path the SAM template named."""
MOTO_ACCOUNT_ID = "123456789012"

_LOCAL_URI_PROPERTIES = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
}
_API_TYPE_PREFIXES = ("AWS::ApiGateway::", "AWS::ApiGatewayV2::")
_EVENT_SOURCE_MAPPING = "AWS::Lambda::EventSourceMapping"
_ALARM = "AWS::CloudWatch::Alarm"
_SUBSCRIPTION = "AWS::SNS::Subscription"
_POST_CREATE_TYPES = (_ALARM, _SUBSCRIPTION)
_POST_CREATE_OUTPUT = "MotoPostCreate"
_CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
_PSEUDO_PARAMETER_PREFIX = "AWS::"


class TemplateError(Exception):
    """The template cannot be translated (SAM reports the causes)."""


class DeployError(Exception):
    """The stack could not be created in moto."""


# --------------------------------------------------------------------------- load and translate


def load_template(path: str | Path = "template.yaml") -> Template:
    """Read a CloudFormation/SAM YAML or JSON template, short-form tags (!Ref, !Sub...) included.

    A relative path that does not exist from the working directory is taken from the project root.
    Returns plain dicts, lists and strings (long-form intrinsics: ``{"Ref": ...}``).
    """
    from cfnlint.decode.cfn_yaml import load  # cfn-lint's CloudFormation-aware YAML loader

    file = Path(path)
    if not file.is_absolute() and not file.exists():
        file = PROJECT_ROOT / file
    plain: Template = json.loads(json.dumps(load(str(file)), default=str))
    return plain


class _OfflinePolicyLoader:
    """Stands in for SAM's managed-policy loader, which calls IAM: no managed-policy names to map."""

    def load(self) -> dict[str, str]:
        return {}


def translate(template: Template, *, region: str = "us-east-1") -> Template:
    """Translate a SAM template into plain CloudFormation, offline.

    Local ``CodeUri``/``ContentUri`` paths become ``s3://ARTIFACT_BUCKET/<LogicalId>.zip`` (SAM
    only accepts S3 locations); the original path is kept in each translated function's and
    layer's ``Metadata[LOCAL_URI_KEY]``. The region is given to the translator through a boto3
    session, so no environment variable changes.
    """
    sam = copy.deepcopy(template)
    local_uris = _use_artifact_bucket(sam)
    cfn = _run_translator(sam, region)
    _record_local_uris(cfn, local_uris)
    return cfn


def _use_artifact_bucket(sam: Template) -> dict[str, str]:
    """Replace local code paths by S3 locations; return S3 key -> local path."""
    local_uris: dict[str, str] = {}
    globals_function = sam.get("Globals", {}).get("Function", {})
    if isinstance(globals_function.get("CodeUri"), str):
        local_uris["Globals.zip"] = globals_function["CodeUri"]
        globals_function["CodeUri"] = f"s3://{ARTIFACT_BUCKET}/Globals.zip"
    for logical_id, resource in sam.get("Resources", {}).items():
        prop = _LOCAL_URI_PROPERTIES.get(resource.get("Type", ""))
        properties = resource.get("Properties", {})
        uri = properties.get(prop) if prop else None
        if isinstance(uri, str) and not uri.startswith("s3://"):
            key = f"{logical_id}.zip"
            local_uris[key] = uri
            properties[prop] = f"s3://{ARTIFACT_BUCKET}/{key}"
    return local_uris


def _run_translator(sam: Template, region: str) -> Template:
    from samtranslator.feature_toggle.feature_toggle import FeatureToggle, FeatureToggleDefaultConfigProvider
    from samtranslator.metrics.metrics import DummyMetricsPublisher, Metrics
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.arn_generator import ArnGenerator
    from samtranslator.translator.translator import Translator
    from samtranslator.utils.py27hash_fix import (
        to_py27_compatible_template,
        undo_mark_unicode_str_in_template,
    )

    class AllFeaturesOff(FeatureToggle):
        """What SAM's default toggle answers (no feature is on), minus a warning per question."""

        def is_enabled(self, feature_name: str) -> bool:
            return False

    session = boto3.session.Session(region_name=region)  # only its region is read
    metrics = Metrics("ServerlessTransform", DummyMetricsPublisher())
    saved_region = ArnGenerator.BOTO_SESSION_REGION_NAME  # Translator sets this class attribute
    try:
        # Same steps as samtranslator.translator.transform.transform, which has no region argument;
        # the py27 marking keeps generated logical ids (hashes) identical to `sam deploy`'s.
        to_py27_compatible_template(sam, {})
        translator = Translator(None, Parser(), boto_session=session, metrics=metrics)
        cfn = translator.translate(
            sam,
            parameter_values={},
            passthrough_metadata=True,
            feature_toggle=AllFeaturesOff(FeatureToggleDefaultConfigProvider(), None, None, region),
            get_managed_policy_map=_OfflinePolicyLoader().load,
        )
        plain: Template = json.loads(json.dumps(undo_mark_unicode_str_in_template(cfn)))
        return plain
    except InvalidDocumentException as error:
        causes = "; ".join(cause.message for cause in error.causes)
        raise TemplateError(f"SAM translation failed: {causes}") from error
    finally:
        ArnGenerator.BOTO_SESSION_REGION_NAME = saved_region
        metrics.publish()  # to the dummy publisher; silences its "unpublished metrics" warning


def _record_local_uris(cfn: Template, local_uris: Mapping[str, str]) -> None:
    for resource in cfn.get("Resources", {}).values():
        properties = resource.get("Properties", {})
        location = properties.get("Code") or properties.get("Content")
        if resource.get("Type") not in ("AWS::Lambda::Function", "AWS::Lambda::LayerVersion"):
            continue
        if isinstance(location, dict) and location.get("S3Bucket") == ARTIFACT_BUCKET:
            uri = local_uris.get(str(location.get("S3Key")))
            if uri is not None:
                resource.setdefault("Metadata", {})[LOCAL_URI_KEY] = uri


# --------------------------------------------------------------------------- references


def references(node: Any) -> set[str]:
    """Logical ids a template fragment refers to (Ref, GetAtt, Sub, DependsOn); no pseudo parameters."""
    found: set[str] = set()
    for name in _walk_references(node):
        if not name.startswith(_PSEUDO_PARAMETER_PREFIX):
            found.add(name)
    return found


def _walk_references(node: Any) -> Iterator[str]:
    if isinstance(node, list):
        for item in node:
            yield from _walk_references(item)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key == "Ref" and isinstance(value, str):
            yield value
        elif key == "Fn::GetAtt":
            yield (value.split(".", 1)[0] if isinstance(value, str) else str(value[0]))
        elif key == "Fn::Sub":
            yield from _sub_references(value)
        elif key == "DependsOn":
            yield from [value] if isinstance(value, str) else value
        else:
            yield from _walk_references(value)


def _sub_references(value: Any) -> Iterator[str]:
    text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1])
    for field_name in _sub_variables(text):
        name = field_name.split(".", 1)[0]
        if name not in variables:
            yield name
    yield from _walk_references(variables)


def _sub_variables(text: str) -> Iterator[str]:
    start = text.find("${")
    while start != -1:
        end = text.find("}", start)
        if end == -1:
            return
        if not text.startswith("${!", start):  # ${!Literal} is an escaped literal
            yield text[start + 2 : end]
        start = text.find("${", end)


# --------------------------------------------------------------------------- what moto gets


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
    mappings = {lid: resources[lid] for lid, r in resources.items() if r.get("Type") == _EVENT_SOURCE_MAPPING}
    post_create = {
        lid: r for lid, r in resources.items() if lid not in stripped and r.get("Type") in _POST_CREATE_TYPES
    }
    for logical_id in [*stripped, *post_create]:
        resources.pop(logical_id, None)
    outputs: dict[str, Template] = template.setdefault("Outputs", {})
    stripped_outputs = tuple(key for key, out in outputs.items() if references(out) & stripped.keys())
    for key in stripped_outputs:
        del outputs[key]
    for logical_id, resource in post_create.items():
        outputs[f"{_POST_CREATE_OUTPUT}{logical_id}"] = _resolving_output(resource)
    return MotoPlan(template, stripped, stripped_outputs, mappings, post_create)


def _stripped_resources(resources: Mapping[str, Template]) -> dict[str, str]:
    stripped: dict[str, str] = {}
    for logical_id, resource in resources.items():
        kind = str(resource.get("Type", ""))
        if kind.startswith(_API_TYPE_PREFIXES):
            stripped[logical_id] = "API Gateway: moto cannot create SAM's REST API; the local stack serves it"
        elif kind == _EVENT_SOURCE_MAPPING:
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
    output: Template = {"Value": {"Fn::ToJsonString": resource.get("Properties", {})}}
    if "Condition" in resource:
        output["Condition"] = resource["Condition"]
    return output


# --------------------------------------------------------------------------- deployed resources


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
    outputs: dict[str, str]
    """The stack's Outputs, except those referring to stripped resources."""
    stripped: dict[str, str]
    """Logical id -> why the resource was not created in moto (API Gateway, event source mappings)."""


# --------------------------------------------------------------------------- deploy


class AwsClients(ClientCache):
    """boto3 clients for one session, region and endpoint, each created once (creation is slow).

    Without a session, one with dummy credentials is used, so code meant for moto can never reach
    a real account. Leave ``endpoint_url`` None inside ``moto.mock_aws()``; pass the server's URL
    for a ``ThreadedMotoServer``.
    """

    def __init__(
        self,
        session: boto3.session.Session | None = None,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> None:
        self.region: str = region or (session.region_name if session else None) or "us-east-1"
        session = session or boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
            region_name=self.region,
        )
        super().__init__(session, endpoint_url=endpoint_url, region=self.region)


def deploy_to_moto(
    cfn_template: Template,
    *,
    stack_name: str,
    parameters: Mapping[str, str | int] | None = None,
    session: boto3.session.Session | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    clients: AwsClients | None = None,
    timeout_s: float = 60.0,
) -> StackResources:
    """Create a translated template in moto and return what was created, by logical id.

    Works inside ``moto.mock_aws()`` (leave ``endpoint_url`` None) and against a moto server
    (``endpoint_url="http://127.0.0.1:PORT"``). Pass either ``clients`` (reused, faster when
    deploying several stacks) or ``session``/``endpoint_url``/``region`` (see :class:`AwsClients`).
    API Gateway resources and event source mappings are not created; alarms and subscriptions are
    created through their APIs after the stack (see the module docstring).
    """
    make_dynamodb_writes_atomic()  # for a moto in this process (mock_aws); a moto server does its own
    client = clients or AwsClients(session, endpoint_url=endpoint_url, region=region)
    region = client.region
    plan = prepare_for_moto(cfn_template)
    _upload_code_artifacts(client("s3"), plan.template, region)
    stack = _create_stack(client("cloudformation"), stack_name, plan.template, parameters or {}, timeout_s)
    physical_ids = _physical_ids(client("cloudformation"), stack_name)
    raw_outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    outputs = {k: v for k, v in raw_outputs.items() if not k.startswith(_POST_CREATE_OUTPUT)}
    alarms, subscriptions = _create_post_create(client, plan, raw_outputs, stack_name)
    resources = plan.template["Resources"]
    by_type = _physical_ids_by_type(resources, physical_ids)
    functions = {
        lid: _function_spec(client("lambda"), lid, physical_ids[lid], resources)
        for lid in by_type.get("AWS::Lambda::Function", {})
    }
    return StackResources(
        stack_name=stack_name,
        stack_id=stack["StackId"],
        region=region,
        physical_ids=physical_ids,
        queues=by_type.get("AWS::SQS::Queue", {}),
        tables=by_type.get("AWS::DynamoDB::Table", {}),
        topics=by_type.get("AWS::SNS::Topic", {}),
        functions=functions,
        event_sources=_event_sources(client("sqs"), plan, physical_ids, resources),
        alarms=alarms,
        subscriptions=subscriptions,
        outputs=outputs,
        stripped=plan.stripped,
    )


def _code_locations(template: Template) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for resource in template.get("Resources", {}).values():
        properties = resource.get("Properties", {})
        location = properties.get("Code") or properties.get("Content")
        if isinstance(location, dict):
            bucket, key = location.get("S3Bucket"), location.get("S3Key")
            if isinstance(bucket, str) and isinstance(key, str):
                found.add((bucket, key))
    return found


def _placeholder_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "Placeholder: the local stack runs the code from the working tree.\n")
    return buffer.getvalue()


def _upload_code_artifacts(s3: Any, template: Template, region: str) -> None:
    """moto's Lambda reads the code object at creation time: any zip will do."""
    body = _placeholder_zip()
    for bucket in sorted({bucket for bucket, _ in _code_locations(template)}):
        _ensure_bucket(s3, bucket, region)
    for bucket, key in sorted(_code_locations(template)):
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def _ensure_bucket(s3: Any, bucket: str, region: str) -> None:
    extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    try:
        s3.create_bucket(Bucket=bucket, **extra)
    except ClientError as error:
        # Bucket names are global: an earlier deploy (maybe from another moto account) made it.
        if error.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def _create_stack(
    cfn: Any, stack_name: str, template: Template, parameters: Mapping[str, str | int], timeout_s: float
) -> dict[str, Any]:
    cfn.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in parameters.items()],
        Capabilities=_CAPABILITIES,
    )
    deadline = time.monotonic() + timeout_s
    while True:
        stack: dict[str, Any] = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
        status = stack["StackStatus"]
        if status == "CREATE_COMPLETE":
            return stack
        if not status.endswith("_IN_PROGRESS"):
            raise DeployError(f"stack {stack_name}: {status} {stack.get('StackStatusReason', '')}")
        if time.monotonic() > deadline:
            raise DeployError(f"stack {stack_name}: still {status} after {timeout_s} s")
        time.sleep(0.05)


def _physical_ids(cfn: Any, stack_name: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        for summary in page["StackResourceSummaries"]:
            found[summary["LogicalResourceId"]] = summary["PhysicalResourceId"]
    return found


def _physical_ids_by_type(
    resources: Mapping[str, Template], physical_ids: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    by_type: dict[str, dict[str, str]] = {}
    for logical_id, physical_id in physical_ids.items():
        kind = resources.get(logical_id, {}).get("Type", "")
        by_type.setdefault(kind, {})[logical_id] = physical_id
    return by_type


def _create_post_create(
    client: Callable[[str], Any], plan: MotoPlan, raw_outputs: Mapping[str, str], stack_name: str
) -> tuple[dict[str, str], dict[str, str]]:
    alarms: dict[str, str] = {}
    subscriptions: dict[str, str] = {}
    for logical_id, resource in plan.post_create.items():
        resolved = raw_outputs.get(f"{_POST_CREATE_OUTPUT}{logical_id}")
        if resolved is None:  # its Condition is false
            continue
        properties: dict[str, Any] = json.loads(resolved)
        if resource["Type"] == _ALARM:
            alarms[logical_id] = _put_alarm(client("cloudwatch"), logical_id, properties, stack_name)
        else:
            subscriptions[logical_id] = _subscribe(client("sns"), properties)
    return alarms, subscriptions


_ALARM_FIELDS = (
    "AlarmName", "AlarmDescription", "ActionsEnabled", "OKActions", "AlarmActions",
    "InsufficientDataActions", "MetricName", "Namespace", "Statistic", "ExtendedStatistic",
    "Dimensions", "Period", "Unit", "EvaluationPeriods", "DatapointsToAlarm", "Threshold",
    "ComparisonOperator", "TreatMissingData", "EvaluateLowSampleCountPercentile", "Metrics",
    "Tags", "ThresholdMetricId",
)  # fmt: skip
_INT_FIELDS = ("Period", "EvaluationPeriods", "DatapointsToAlarm")


def _put_alarm(cloudwatch: Any, logical_id: str, properties: Mapping[str, Any], stack_name: str) -> str:
    args = {k: v for k, v in properties.items() if k in _ALARM_FIELDS}
    # Parameters arrive as strings; the API wants numbers and booleans.
    args["AlarmName"] = args.get("AlarmName") or _generated_name(stack_name, logical_id)
    for name in _INT_FIELDS:
        if name in args:
            args[name] = int(args[name])
    if "Threshold" in args:
        args["Threshold"] = float(args["Threshold"])
    if "ActionsEnabled" in args:
        args["ActionsEnabled"] = _as_bool(args["ActionsEnabled"])
    if "Metrics" in args:
        args["Metrics"] = [_metric_query(query) for query in args["Metrics"]]
    cloudwatch.put_metric_alarm(**args)
    return str(args["AlarmName"])


def _metric_query(query: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(query)
    if "Period" in result:
        result["Period"] = int(result["Period"])
    if "ReturnData" in result:
        result["ReturnData"] = _as_bool(result["ReturnData"])
    if "MetricStat" in result:
        result["MetricStat"] = {**result["MetricStat"], "Period": int(result["MetricStat"]["Period"])}
    return result


def _as_bool(value: Any) -> bool:
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


def _function_spec(lambda_client: Any, logical_id: str, name: str, resources: Mapping[str, Template]) -> FunctionSpec:
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
    )


def _target_logical_id(node: Any) -> str:
    """Logical id behind `{"Ref": X}` or `{"Fn::GetAtt": [X, attr]}`."""
    found = references(node)
    if len(found) != 1:
        raise DeployError(f"cannot tell which resource {node!r} names")
    return found.pop()


def _event_sources(
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
            enabled=_as_bool(properties.get("Enabled", True)),
            properties=copy.deepcopy(properties),
        )
    return specs
