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
* **SNS subscriptions of Lambda functions**: not created, as moto would invoke the function through
  Docker; returned in :attr:`StackResources.sns_sources` for the local stack to deliver.
* **CloudWatch alarms, other SNS subscriptions, WAF web ACLs and Lambda aliases**: moto's CloudFormation
  skips them (the web ACL's association, naming the API stage, goes with API Gateway). They are created
  afterwards with the CloudWatch, SNS, WAFv2 and Lambda APIs, with their properties resolved by moto itself
  against the created stack (each travels as a ``Fn::ToJsonString`` output, so ``Ref``/``GetAtt``/``Sub``/
  ``If`` and conditions mean exactly what they mean for the other resources).
* **SnapStart**: moto ignores a function's ``SnapStart``; it is resolved the same way and reported
  in :attr:`FunctionSpec.snap_start`.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.exceptions import ClientError

from infra.deploy.clients import AwsClients
from infra.deploy.moto_atomic import make_dynamodb_writes_atomic
from infra.deploy.moto_speed import make_moto_costs_flat
from infra.deploy.plan import POST_CREATE_OUTPUT, SNAP_START_OUTPUT, prepare_for_moto
from infra.deploy.post_create import create_post_create
from infra.deploy.resources import (
    DeployError,
    StackResources,
    event_sources,
    function_spec,
    physical_ids,
    physical_ids_by_type,
)
from infra.deploy.template import Template

MOTO_ACCOUNT_ID = "123456789012"
_CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]


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
    moto_in_this_process: bool = True,
) -> StackResources:
    """Create a translated template in moto and return what was created, by logical id.

    Works inside ``moto.mock_aws()`` (leave ``endpoint_url`` None) and against a moto server
    (``endpoint_url="http://127.0.0.1:PORT"``). Pass either ``clients`` (reused, faster when
    deploying several stacks) or ``session``/``endpoint_url``/``region`` (see :class:`AwsClients`).
    API Gateway resources and event source mappings are not created; alarms and subscriptions are
    created through their APIs after the stack (see the module docstring).

    ``moto_in_this_process``: moto's patches apply to a moto in this process (``mock_aws``, a
    ``ThreadedMotoServer``); pass False for a moto server in a process of its own, which patches itself
    (:mod:`simulator.local.moto_process`), so that this one does not import moto for nothing (1.5 s of CPU
    at each local stack's start).
    """
    if moto_in_this_process:
        make_dynamodb_writes_atomic()
        make_moto_costs_flat()
    client = clients or AwsClients(session, endpoint_url=endpoint_url, region=region)
    region = client.region
    plan = prepare_for_moto(cfn_template)
    _upload_code_artifacts(client("s3"), plan.template, region)
    stack = _create_stack(client("cloudformation"), stack_name, plan.template, parameters or {}, timeout_s)
    ids = physical_ids(client("cloudformation"), stack_name)
    raw_outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    outputs = {k: v for k, v in raw_outputs.items() if not k.startswith((POST_CREATE_OUTPUT, SNAP_START_OUTPUT))}
    created = create_post_create(client, plan, raw_outputs, stack_name)
    resources = plan.template["Resources"]
    by_type = physical_ids_by_type(resources, ids)
    functions = {
        lid: function_spec(client("lambda"), lid, ids[lid], resources, raw_outputs.get(f"{SNAP_START_OUTPUT}{lid}"))
        for lid in by_type.get("AWS::Lambda::Function", {})
    }
    return StackResources(
        stack_name=stack_name,
        stack_id=stack["StackId"],
        region=region,
        physical_ids=ids,
        queues=by_type.get("AWS::SQS::Queue", {}),
        tables=by_type.get("AWS::DynamoDB::Table", {}),
        topics=by_type.get("AWS::SNS::Topic", {}),
        functions=functions,
        event_sources=event_sources(client("sqs"), plan, ids, resources),
        alarms=created.alarms,
        subscriptions=created.subscriptions,
        web_acls=created.web_acls,
        aliases=created.aliases,
        outputs=outputs,
        stripped=plan.stripped,
        sns_sources=created.sns_sources,
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
