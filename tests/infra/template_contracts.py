"""The template's contract, as plain functions that return violations (an empty list = kept).

Each check reads a :class:`Deployed`: the translated CloudFormation template plus what moto
created from it, described through boto3. Where moto ignores a property (table PITR/SSE/TTL,
RedriveAllowPolicy) or the resource is not created in moto at all (event source mappings,
API Gateway: see infra.deploy), the check reads the translated template instead and says so.

The same functions serve the main contract test (expects []) and the mutation tests, which break
the template on purpose and expect the matching check to complain.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3

from infra.deploy import (
    AwsClients,
    EventSourceSpec,
    FunctionSpec,
    StackResources,
    Template,
    deploy_to_moto,
    references,
)

OPERATOR_TOPIC = "OperatorTopic"
ALARM_TOPIC = "AlarmTopic"
NOTIFIER = "NotifierFunction"
INFRA_TEST_ACCOUNT = "111122223333"
MIN_RECEIVES = 5  # transient provider errors get several tries before a message is parked
DLQ_RETENTION_SECONDS = 14 * 24 * 3600  # the SQS maximum: operators get two weeks to redrive
SOURCE_RETENTION_SECONDS = 4 * 24 * 3600
VISIBILITY_FACTOR = 6  # Lambda's advice: visibility >= 6 x function timeout (+ batching window)
MAX_SQS_BATCH = 10
# X-Ray's write actions support no resource-level permissions: "*" is the only possible Resource.
STAR_RESOURCE_ACTIONS = frozenset({"xray:PutTraceSegments", "xray:PutTelemetryRecords"})
SECRET_LIKE_NAME = re.compile(r"(?:^|_)(?:API_?KEY|KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIALS?)(?:_|$)")
SECRET_LIKE_VALUE = re.compile(
    r"\b(?:sk|rk)_(?:test|live)_\w+|\bwhsec_\w+|\bSG\.[\w-]{8,}\.[\w-]{8,}|\bAKIA[0-9A-Z]{16}\b"
)
DASHBOARD_METRICS = (
    "ApproximateNumberOfMessagesVisible",
    "ApproximateAgeOfOldestMessage",
    "Errors",
    "DonationsCharged",
    "DonationsDeclined",
    "ChargeFailures",
    "CardsSaved",
    "ReceiptsSent",
    "StepRetries",
    "PermanentFailures",
    "WebhookSignatureFailures",
    "DisputesOpened",
)
REQUIRED_OUTPUTS = (
    "ApiUrl",
    "TokenizeQueueUrl",
    "ReceiptQueueUrl",
    "TokenizeDLQUrl",
    "ReceiptDLQUrl",
    "DonationsTableName",
    "IdempotencyTableName",
    "OperatorTopicArn",
    "AlarmTopicArn",
)

Violations = list[str]


@dataclass(frozen=True)
class Deployed:
    """What the checks look at."""

    template: Template
    """The translated CloudFormation template that was deployed."""
    stack: StackResources
    queue_attributes: dict[str, dict[str, str]]
    """Queue logical id -> all its attributes, from moto."""
    alarms: list[dict[str, Any]]
    """describe_alarms entries of the stack's alarms, from moto."""
    role_policies: dict[str, list[dict[str, Any]]]
    """Function logical id -> inline policy documents of its role, from moto."""
    attached_policies: dict[str, list[str]]
    """Function logical id -> managed policy ARNs of its role, from moto and the template (moto's
    CloudFormation does not attach a role's ManagedPolicyArns)."""
    log_groups: dict[str, dict[str, Any]]
    """Log group name -> describe_log_groups entry, from moto."""
    dashboards: dict[str, str]
    """Dashboard logical id -> its body as moto resolved it (Fn::Sub done)."""
    web_acls: dict[str, dict[str, Any]]
    """Web ACL logical id -> get_web_acl's WebACL, from moto (created through the WAFv2 API: moto's
    CloudFormation has no WAFv2 support, see infra.deploy)."""

    @property
    def resources(self) -> dict[str, Template]:
        return dict(self.template.get("Resources", {}))

    @property
    def topic_arn(self) -> str:
        return self.stack.topics.get(OPERATOR_TOPIC, "<no OperatorTopic>")

    def queue_arn(self, logical_id: str) -> str:
        return self.queue_attributes[logical_id]["QueueArn"]

    def queue_by_arn(self, arn: str) -> str | None:
        return next((lid for lid, attrs in self.queue_attributes.items() if attrs["QueueArn"] == arn), None)

    def queue_name(self, logical_id: str) -> str:
        return self.queue_arn(logical_id).rsplit(":", 1)[-1]


def observe(template: Template, stack: StackResources, clients: AwsClients) -> Deployed:
    """Describe, through boto3, what deploy_to_moto created."""
    sqs, iam = clients("sqs"), clients("iam")
    queues = {
        lid: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        for lid, url in stack.queues.items()
    }
    names = list(stack.alarms.values())
    alarms = clients("cloudwatch").describe_alarms(AlarmNames=names)["MetricAlarms"] if names else []
    role_policies: dict[str, list[dict[str, Any]]] = {}
    attached: dict[str, list[str]] = {}
    for lid, function in stack.functions.items():
        role = function.role_arn.rsplit("/", 1)[-1]
        policy_names = iam.list_role_policies(RoleName=role)["PolicyNames"]
        role_policies[lid] = [
            _as_document(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]) for name in policy_names
        ]
        attached[lid] = [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]]
        attached[lid] += _template_managed_policies(template, stack, role)
    groups = {g["logGroupName"]: g for g in clients("logs").describe_log_groups()["logGroups"]}
    dashboards = {
        lid: clients("cloudwatch").get_dashboard(DashboardName=stack.physical_ids[lid])["DashboardBody"]
        for lid, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Dashboard" and lid in stack.physical_ids
    }
    web_acls = {lid: _describe_web_acl(clients("wafv2"), arn) for lid, arn in stack.web_acls.items()}
    return Deployed(template, stack, queues, alarms, role_policies, attached, groups, dashboards, web_acls)


def _describe_web_acl(wafv2: Any, arn: str) -> dict[str, Any]:
    # arn:aws:wafv2:<region>:<account>:regional/webacl/<name>/<id>
    scope, _, name, acl_id = arn.split(":", 5)[5].split("/")
    web_acl: dict[str, Any] = wafv2.get_web_acl(Name=name, Scope=scope.upper(), Id=acl_id)["WebACL"]
    return web_acl


def isolated_clients(*, endpoint_url: str | None = None, account: str = INFRA_TEST_ACCOUNT) -> AwsClients:
    """Clients acting in a moto account of their own (through an assumed role).

    The wider suite may keep one moto running for the whole session (a nested mock_aws neither
    resets nor removes anything): in their own account these tests neither see nor disturb it.
    """
    sts = AwsClients(endpoint_url=endpoint_url)("sts")
    role = f"arn:aws:iam::{account}:role/infra-contract-tests"
    credentials = sts.assume_role(RoleArn=role, RoleSessionName="infra-tests")["Credentials"]
    session = boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name="us-east-1",
    )
    return AwsClients(session, endpoint_url=endpoint_url)


# The optional parts on, so the contract checks see every resource the template can create (the
# dashboard, the topics' KMS key); the defaults leave both out (test_template_contracts).
EVERYTHING_ON = {"EnableDashboard": "true", "EncryptOperatorTopics": "true"}


# What a deployer must give: the parameters without a default (docs/security.md).
DEPLOYER_PARAMETERS = {"AllowedOrigin": "https://give.example.org", "TurnstileSiteKey": "0x4AAAAAAAExampleWidgetKey"}


def deploy_and_observe(cfn_template: Template, clients: AwsClients, stack_name: str, **parameters: Any) -> Deployed:
    """Create the translated template in moto (see infra.deploy.deploy_to_moto) and describe it."""
    parameters = {**DEPLOYER_PARAMETERS, **parameters}
    stack = deploy_to_moto(cfn_template, stack_name=stack_name, parameters=parameters, clients=clients)
    return observe(cfn_template, stack, clients)


def _template_managed_policies(template: Template, stack: StackResources, role_name: str) -> list[str]:
    role_ids = [lid for lid, physical in stack.physical_ids.items() if physical == role_name]
    resources = template.get("Resources", {})
    return [str(arn) for lid in role_ids for arn in resources[lid].get("Properties", {}).get("ManagedPolicyArns", [])]


def _as_document(document: Any) -> dict[str, Any]:
    if not isinstance(document, str):
        return dict(document)
    try:
        return dict(json.loads(document))
    except json.JSONDecodeError:
        # moto returns inline policies created by CloudFormation as a Python repr, not JSON.
        return dict(ast.literal_eval(document))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _sqs_sources(d: Deployed) -> Iterator[EventSourceSpec]:
    yield from (es for es in d.stack.event_sources.values() if es.source_type == "AWS::SQS::Queue")


def _redrive(d: Deployed, queue: str) -> dict[str, Any] | None:
    policy = d.queue_attributes[queue].get("RedrivePolicy")
    return json.loads(policy) if policy else None


def _dlqs(d: Deployed) -> dict[str, str]:
    """DLQ logical id -> its source queue logical id, from the queues' redrive policies in moto."""
    found: dict[str, str] = {}
    for queue in d.queue_attributes:
        policy = _redrive(d, queue)
        target = d.queue_by_arn(policy["deadLetterTargetArn"]) if policy else None
        if target is not None:
            found[target] = queue
    return found


# --------------------------------------------------------------------------- queues


def check_redrive(d: Deployed) -> Violations:
    """Every queue a function consumes redrives to a DLQ of this stack after >= MIN_RECEIVES tries."""
    violations: Violations = []
    for es in _sqs_sources(d):
        queue = es.source_logical_id
        policy = _redrive(d, queue)
        if policy is None:
            violations.append(f"{queue}: no RedrivePolicy, failing messages are retried until they expire")
            continue
        if int(policy.get("maxReceiveCount", 0)) < MIN_RECEIVES:
            violations.append(f"{queue}: maxReceiveCount {policy.get('maxReceiveCount')} < {MIN_RECEIVES}")
        target = d.queue_by_arn(str(policy.get("deadLetterTargetArn")))
        if target is None or target == queue:
            violations.append(f"{queue}: dead-letter target {policy.get('deadLetterTargetArn')} is not a DLQ here")
    return violations


def check_visibility(d: Deployed) -> Violations:
    """Visibility timeout >= 6 x consumer timeout + batching window (else in-flight work is redelivered)."""
    violations: Violations = []
    for es in _sqs_sources(d):
        timeout = d.stack.functions[es.function_logical_id].timeout
        needed = VISIBILITY_FACTOR * timeout + es.maximum_batching_window_seconds
        visibility = int(d.queue_attributes[es.source_logical_id]["VisibilityTimeout"])
        if visibility < needed:
            violations.append(
                f"{es.source_logical_id}: VisibilityTimeout {visibility} < {VISIBILITY_FACTOR} x "
                f"{es.function_logical_id} timeout {timeout} + window {es.maximum_batching_window_seconds}"
            )
    return violations


def check_dlqs(d: Deployed) -> Violations:
    """DLQs keep messages 14 days (longer than their source), allow redrive from it, and are not consumed."""
    violations: Violations = []
    dlqs = _dlqs(d)
    consumed = {es.source_logical_id for es in _sqs_sources(d)}
    for queue in d.queue_attributes:
        if queue not in consumed and queue not in dlqs:
            violations.append(f"{queue}: neither consumed by a function nor a DLQ of one")
    for dlq, source in dlqs.items():
        retention = int(d.queue_attributes[dlq]["MessageRetentionPeriod"])
        source_retention = int(d.queue_attributes[source]["MessageRetentionPeriod"])
        if retention != DLQ_RETENTION_SECONDS:
            violations.append(f"{dlq}: MessageRetentionPeriod {retention} != {DLQ_RETENTION_SECONDS}")
        if retention <= source_retention:
            # SQS keeps the original enqueue time: a DLQ no longer-lived than its source loses messages.
            violations.append(f"{dlq}: retention {retention} not longer than {source}'s {source_retention}")
        if source_retention != SOURCE_RETENTION_SECONDS:
            violations.append(f"{source}: MessageRetentionPeriod {source_retention} != {SOURCE_RETENTION_SECONDS}")
        if dlq in consumed:
            violations.append(f"{dlq}: a DLQ must not feed a function (parked messages would be retried)")
        violations += _redrive_allow_violations(d, dlq, source)
    return violations


def _redrive_allow_violations(d: Deployed, dlq: str, source: str) -> Violations:
    # moto drops RedriveAllowPolicy: read the template, resolving the pseudo parameters in its ARNs.
    allow = d.resources[dlq].get("Properties", {}).get("RedriveAllowPolicy")
    if not isinstance(allow, dict) or allow.get("redrivePermission") != "byQueue":
        return [f"{dlq}: RedriveAllowPolicy should be byQueue (template)"]
    allowed = [_with_pseudo_parameters(d, arn) for arn in allow.get("sourceQueueArns", [])]
    if d.queue_arn(source) not in allowed:
        return [f"{dlq}: RedriveAllowPolicy does not name {source} (template)"]
    return []


def _with_pseudo_parameters(d: Deployed, value: Any) -> Any:
    text = value.get("Fn::Sub") if isinstance(value, dict) else value
    if not isinstance(text, str):
        return value
    _, partition, _, region, account, _ = d.stack.stack_id.split(":", 5)
    pseudo = {"Partition": partition, "Region": region, "AccountId": account, "StackName": d.stack.stack_name}
    for name, resolved in pseudo.items():
        text = text.replace(f"${{AWS::{name}}}", resolved)
    return text


def check_queue_encryption(d: Deployed) -> Violations:
    """Every queue is encrypted at rest (SSE-SQS or KMS)."""
    return [
        f"{queue}: not encrypted at rest"
        for queue, attrs in d.queue_attributes.items()
        if attrs.get("SqsManagedSseEnabled") != "true" and not attrs.get("KmsMasterKeyId")
    ]


# --------------------------------------------------------------------------- alarms


def _alarms_on(d: Deployed, namespace: str, metric: str, dimension: str, value: str) -> list[dict[str, Any]]:
    return [
        a
        for a in d.alarms
        if a.get("Namespace") == namespace
        and a.get("MetricName") == metric
        and {"Name": dimension, "Value": value} in a.get("Dimensions", [])
    ]


def _watches_the_notifier(d: Deployed, alarm: dict[str, Any]) -> bool:
    notifier = d.stack.functions.get(NOTIFIER)
    return notifier is not None and {"Name": "FunctionName", "Value": notifier.name} in alarm.get("Dimensions", [])


def _wiring_violations(d: Deployed, alarm: dict[str, Any]) -> Violations:
    """Alarms reach operators through the notifier: ALARM and OK to the alarm topic. The notifier's own
    alarms must not depend on it: ALARM straight to the operator topic (a start-up OK cannot be told
    from a clearing without the notifier, so they have no OK action)."""
    name = alarm["AlarmName"]
    if _watches_the_notifier(d, alarm):
        expected, kinds, topic = OPERATOR_TOPIC, ("AlarmActions",), d.topic_arn
    else:
        expected, kinds, topic = ALARM_TOPIC, ("AlarmActions", "OKActions"), d.stack.topics.get(ALARM_TOPIC, "-")
    violations = [
        f"alarm {name}: {kind} does not notify {expected}" for kind in kinds if topic not in alarm.get(kind, [])
    ]
    if alarm.get("ActionsEnabled") is False:
        violations.append(f"alarm {name}: actions disabled")
    return violations


def check_notification_path(d: Deployed) -> Violations:
    """Alarm topic -> notifier function (its only subscriber) -> operator topic; both topics encrypted
    with a key CloudWatch may use (see check_operator_topic_key)."""
    alarm_topic = d.stack.topics.get(ALARM_TOPIC)
    if alarm_topic is None:
        return [f"no {ALARM_TOPIC}"]
    subscribers = [d.stack.sns_function(s) for s in d.stack.sns_sources.values() if s.topic_arn == alarm_topic]
    violations = [] if subscribers == [NOTIFIER] else [f"{ALARM_TOPIC}: subscribers {subscribers}, not [{NOTIFIER}]"]
    notifier = d.stack.functions.get(NOTIFIER)
    if notifier is None or notifier.environment.get("OPERATOR_TOPIC_ARN") != d.topic_arn:
        violations.append(f"{NOTIFIER}: OPERATOR_TOPIC_ARN is not {OPERATOR_TOPIC}")
    topic = d.resources.get(ALARM_TOPIC, {}).get("Properties", {})
    if topic.get("KmsMasterKeyId") != d.resources.get(OPERATOR_TOPIC, {}).get("Properties", {}).get("KmsMasterKeyId"):
        violations.append(f"{ALARM_TOPIC}: not encrypted with {OPERATOR_TOPIC}'s key (the one CloudWatch may use)")
    return violations


def _require_alarm(d: Deployed, what: str, candidates: list[dict[str, Any]], threshold: float | None) -> Violations:
    """At least one candidate alarm: > threshold, wired to the operator topic."""
    if not candidates:
        return [f"{what}: no alarm"]
    problems: list[Violations] = []
    for alarm in candidates:
        found = _wiring_violations(d, alarm)
        if alarm.get("ComparisonOperator") != "GreaterThanThreshold":
            found.append(f"alarm {alarm['AlarmName']}: not GreaterThanThreshold")
        if threshold is not None and alarm.get("Threshold") != threshold:
            found.append(f"alarm {alarm['AlarmName']}: threshold {alarm.get('Threshold')} != {threshold}")
        if not found:
            return []
        problems.append(found)
    return [f"{what}: {problem}" for found in problems for problem in found]


def check_dlq_alarms(d: Deployed) -> Violations:
    """Any message in any DLQ raises an alarm to operators (and its clearing is announced)."""
    violations: Violations = []
    for dlq in _dlqs(d):
        candidates = _alarms_on(d, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", d.queue_name(dlq))
        violations += _require_alarm(d, f"DLQ {dlq}", candidates, threshold=0.0)
        violations += [
            f"DLQ {dlq}: alarm {a['AlarmName']} should look at the Maximum over 1 period of 60 s"
            for a in candidates
            if (a.get("Statistic"), a.get("EvaluationPeriods"), a.get("Period")) != ("Maximum", 1, 60)
        ]
    return violations


def check_age_alarms(d: Deployed) -> Violations:
    """A backlog (age of the oldest message) on every consumed queue raises an alarm."""
    violations: Violations = []
    for es in _sqs_sources(d):
        queue = es.source_logical_id
        candidates = _alarms_on(d, "AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", d.queue_name(queue))
        violations += _require_alarm(d, f"queue {queue} age", candidates, threshold=None)
    return violations


# Functions whose throttling another alarm already pages for: the renewals wait in their queue (its age
# alarm) and a throttled schedule run is made up by the next hourly run.
THROTTLES_COVERED_ELSEWHERE = {"RenewFunction", "ScheduleRenewalsFunction"}
# Functions whose errors another alarm pages for, within the fixed bill's $5: a failing schedule run is
# not a finished one (renewal-run-not-finished: Invocations - Errors), and a renewal that keeps failing
# reaches the renewal DLQ after 6 receives, about 15 minutes (renewal-dlq-not-empty). Function -> the covering alarm.
ERRORS_COVERED_ELSEWHERE = {
    "ScheduleRenewalsFunction": "RenewalRunNotFinishedAlarm",
    "RenewFunction": "RenewalDLQAlarm",
}


def check_function_alarms(d: Deployed) -> Violations:
    """Every function's Errors raise alarms (or the alarm that covers them exists), and its Throttles
    unless another alarm covers them."""
    violations: Violations = [
        f"{lid} Errors: covered by {alarm}, which is missing"
        for lid, alarm in ERRORS_COVERED_ELSEWHERE.items()
        if alarm not in d.stack.alarms
    ]
    for lid, function in d.stack.functions.items():
        metrics = ("Errors",) if lid in THROTTLES_COVERED_ELSEWHERE else ("Errors", "Throttles")
        for metric in metrics:
            if metric == "Errors" and lid in ERRORS_COVERED_ELSEWHERE:
                continue
            candidates = _alarms_on(d, "AWS/Lambda", metric, "FunctionName", function.name)
            violations += _require_alarm(d, f"{lid} {metric}", candidates, threshold=0.0)
    return violations


def check_charge_failure_alarm(d: Deployed) -> Violations:
    """A spike of charge failures (EMF metric, Powertools service dimension) raises an alarm."""
    candidates = _alarms_on(d, "DonationPipeline", "ChargeFailures", "service", "charge")
    violations = _require_alarm(d, "charge failures", candidates, threshold=None)
    violations += [f"alarm {a['AlarmName']}: should sum over 300 s" for a in candidates if a.get("Period") != 300]
    return violations


def check_provider_auth_alarm(d: Deployed) -> Violations:
    """A provider refusing our API key alerts at once: the first ProviderAuthFailures (EMF, provider and
    Powertools service dimensions) in a 60 s period raises an alarm that says how to recover."""
    candidates = [
        a
        for a in _alarms_on(d, "DonationPipeline", "ProviderAuthFailures", "provider", "sendgrid")
        if {"Name": "service", "Value": "send_receipt"} in a.get("Dimensions", [])
    ]
    violations = _require_alarm(d, "SendGrid auth failures", candidates, threshold=0.0)
    for alarm in candidates:
        name, description = alarm["AlarmName"], alarm.get("AlarmDescription", "").lower()
        if (alarm.get("Statistic"), alarm.get("Period"), alarm.get("EvaluationPeriods")) != ("Sum", 60, 1):
            violations.append(f"alarm {name}: should sum over one period of 60 s")
        violations += [
            f"alarm {name}: the description does not say {what!r}"
            for what in ("rotate the secret", "redrive")
            if what not in " ".join(description.split())
        ]
    return violations


def check_operator_topic_key(d: Deployed) -> Violations:
    """CloudWatch can publish to the operator topic: it is encrypted (if at all) with a customer
    managed key whose policy lets cloudwatch.amazonaws.com use it. With alias/aws/sns alarm
    actions fail (that key's policy cannot grant CloudWatch), and nobody is told. Template."""
    topic = d.resources.get(OPERATOR_TOPIC, {}).get("Properties", {})
    key = topic.get("KmsMasterKeyId")
    if key is None:
        return []
    key_ids = references(key)
    if not key_ids or d.resources.get(next(iter(key_ids)), {}).get("Type") != "AWS::KMS::Key":
        return [f"{OPERATOR_TOPIC}: encrypted with {key!r}, not a key of this stack CloudWatch may use"]
    statements = d.resources[next(iter(key_ids))]["Properties"]["KeyPolicy"]["Statement"]
    granted = {
        action
        for st in statements
        if st.get("Effect") == "Allow"
        and "cloudwatch.amazonaws.com" in _as_list(st.get("Principal", {}).get("Service"))
        for action in _as_list(st.get("Action"))
    }
    missing = {"kms:Decrypt", "kms:GenerateDataKey*"} - granted
    violations = [f"{OPERATOR_TOPIC} key: CloudWatch lacks {sorted(missing)}"] if missing else []
    # A service principal's grant names the account it acts for, or CloudWatch could be made to use the
    # key for another account's alarms (the confused deputy: IAM User Guide, "The confused deputy problem").
    violations += [
        f"{OPERATOR_TOPIC} key: statement {st.get('Sid')} grants {st['Principal']['Service']} without aws:SourceAccount"
        for st in statements
        if "Service" in st.get("Principal", {})
        and "aws:SourceAccount" not in st.get("Condition", {}).get("StringEquals", {})
    ]
    return violations


SECRETS_KEY = "SecretsKey"


def check_secrets_key(d: Deployed) -> Violations:
    """The provider keys' parameters under a key of this stack (EncryptSecrets): the account may not decrypt
    with it; each function role may, through SSM only, and only the parameters its role may read. Template."""
    key = d.resources.get(SECRETS_KEY)
    if key is None or key.get("Type") != "AWS::KMS::Key":
        return [f"no {SECRETS_KEY} (the SecureString parameters would be under aws/ssm)"]
    violations = [] if key["Properties"].get("EnableKeyRotation") is True else [f"{SECRETS_KEY}: no rotation"]
    decrypters: dict[str, dict[str, Any]] = {}  # role logical id -> its statement's StringEquals
    for st in key["Properties"]["KeyPolicy"]["Statement"]:
        actions = _as_list(st.get("Action"))
        reads = {a for a in actions if a == "kms:*" or a.startswith(("kms:Decrypt", "kms:ReEncrypt"))}
        role = st.get("Principal", {}).get("AWS")
        if reads and (reads != {"kms:Decrypt"} or not isinstance(role, dict) or "Fn::GetAtt" not in role):
            violations.append(f"{SECRETS_KEY}: statement {st.get('Sid')} lets another than a function role decrypt")
        elif reads:
            decrypters[role["Fn::GetAtt"][0]] = st.get("Condition", {}).get("StringEquals", {})
    for lid in d.stack.functions:
        role = d.resources[lid]["Properties"]["Role"]["Fn::GetAtt"][0]
        readable = _template_resources(d, role, "ssm:GetParameter")
        condition = decrypters.get(role)
        if readable and condition is None:
            violations.append(f"{SECRETS_KEY}: {role} may read parameters but not decrypt them")
        elif condition is not None and (
            "kms:ViaService" not in condition
            or _texts(condition.get("kms:EncryptionContext:PARAMETER_ARN", [])) != _texts(readable)
        ):
            violations.append(f"{SECRETS_KEY}: {role} may decrypt other than its own parameters, or not through SSM")
    return violations


def _template_resources(d: Deployed, role: str, action: str) -> list[Any]:
    """The resources (as the template writes them) a role's inline policies allow ``action`` on."""
    policies = d.resources[role]["Properties"].get("Policies", [])
    statements = [st for policy in policies for st in _as_list(policy["PolicyDocument"]["Statement"])]
    return [r for st in statements if action in _as_list(st.get("Action")) for r in _as_list(st.get("Resource"))]


def _texts(values: Any) -> set[str]:
    return {json.dumps(value, sort_keys=True) for value in _as_list(values)}


def check_alarm_hygiene(d: Deployed) -> Violations:
    """Every alarm of the stack notifies operators both ways and chose TreatMissingData on purpose."""
    violations = [v for alarm in d.alarms for v in _wiring_violations(d, alarm)]
    for lid, resource in d.resources.items():
        if resource.get("Type") == "AWS::CloudWatch::Alarm" and "TreatMissingData" not in resource["Properties"]:
            violations.append(f"{lid}: TreatMissingData not set (template)")
    return violations


# --------------------------------------------------------------------------- functions


def check_event_sources(d: Deployed) -> Violations:
    """SQS event sources report partial batch failures and cap concurrency (provider rate limits).

    Read from the translated template: deploy_to_moto does not create event source mappings.
    """
    violations: Violations = []
    for lid, es in d.stack.event_sources.items():
        if es.source_type != "AWS::SQS::Queue":
            continue
        if not es.report_batch_item_failures:
            violations.append(f"{lid}: no ReportBatchItemFailures, one bad record fails its whole batch")
        if es.batch_size > MAX_SQS_BATCH:
            violations.append(f"{lid}: BatchSize {es.batch_size} > {MAX_SQS_BATCH}")
        if es.maximum_concurrency is None:
            violations.append(f"{lid}: no ScalingConfig.MaximumConcurrency")
        if not es.enabled:
            violations.append(f"{lid}: disabled")
    return violations


def check_consumers(d: Deployed) -> Violations:
    """Consumers know their queue's maxReceiveCount and have no function-level DLQ (async-only)."""
    violations: Violations = []
    for es in _sqs_sources(d):
        function = d.stack.functions[es.function_logical_id]
        policy = _redrive(d, es.source_logical_id) or {}
        expected = str(policy.get("maxReceiveCount", "<none>"))
        if function.environment.get("MAX_RECEIVE_COUNT") != expected:
            violations.append(
                f"{es.function_logical_id}: MAX_RECEIVE_COUNT {function.environment.get('MAX_RECEIVE_COUNT')}"
                f" != {es.source_logical_id} maxReceiveCount {expected}"
            )
        if "DeadLetterConfig" in d.resources[es.function_logical_id].get("Properties", {}):
            violations.append(f"{es.function_logical_id}: function-level DLQ on an SQS consumer (template)")
    return violations


def check_log_groups(d: Deployed) -> Violations:
    """Every function logs to /aws/lambda/<name>, created by the stack with a retention."""
    violations: Violations = []
    for lid, function in d.stack.functions.items():
        group = d.log_groups.get(f"/aws/lambda/{function.name}")
        if group is None:
            violations.append(f"{lid}: no log group /aws/lambda/{function.name} in the stack")
        elif not group.get("retentionInDays"):
            violations.append(f"{lid}: log group without retention")
    return violations


def _own_resources(d: Deployed, function: FunctionSpec) -> set[str]:
    """ARNs a function may name: its log group, its source queue and DLQ, and what its env names."""
    _, partition, _, region, account, _ = function.arn.split(":", 5)
    prefix = f"arn:{partition}:{{service}}:{region}:{account}:"
    log_group = prefix.format(service="logs") + f"log-group:/aws/lambda/{function.name}"
    own = {log_group, f"{log_group}:*"}
    urls = {url: lid for lid, url in d.stack.queues.items()}
    tables = {name: lid for lid, name in d.stack.tables.items()}
    topics = set(d.stack.topics.values())
    for name, value in function.environment.items():
        if value in topics:  # a topic it publishes to, and the key that encrypts it (publishers need it)
            own.add(value)
            own |= _topic_keys(d, value, prefix.format(service="kms"))
        if value in urls:
            own.add(d.queue_arn(urls[value]))
        if value in tables:  # the table, and each of its indexes by name (never index/*)
            table = prefix.format(service="dynamodb") + f"table/{value}"
            own |= {table, *(f"{table}/index/{index}" for index in _index_names(d, tables[value]))}
        if name.endswith("_SECRET_NAME"):  # a SecureString parameter: its ARN drops the name's leading "/"
            own.add(prefix.format(service="ssm") + f"parameter/{value.lstrip('/')}")
    for es in _sqs_sources(d):
        if es.function_logical_id == function.logical_id:
            own.add(d.queue_arn(es.source_logical_id))
            policy = _redrive(d, es.source_logical_id)
            if policy:
                own.add(str(policy["deadLetterTargetArn"]))
    return own


def _index_names(d: Deployed, table_logical_id: str) -> list[str]:
    indexes = d.resources[table_logical_id].get("Properties", {}).get("GlobalSecondaryIndexes", [])
    return [str(index["IndexName"]) for index in indexes]


def _topic_keys(d: Deployed, topic_arn: str, kms_prefix: str) -> set[str]:
    lid = next(lid for lid, arn in d.stack.topics.items() if arn == topic_arn)
    key = d.resources.get(lid, {}).get("Properties", {}).get("KmsMasterKeyId")
    return {f"{kms_prefix}key/{d.stack.physical_ids[k]}" for k in references(key) if k in d.stack.physical_ids}


def _statement_violations(lid: str, statement: dict[str, Any], own: set[str]) -> Violations:
    if statement.get("Effect") != "Allow":
        return []
    if "NotAction" in statement or "NotResource" in statement:
        return [f"{lid}: NotAction/NotResource grants everything else"]
    actions = [str(a) for a in _as_list(statement.get("Action", []))]
    resources = [str(r) for r in _as_list(statement.get("Resource", []))]
    violations = [f"{lid}: wildcard action {a!r}" for a in actions if "*" in a]
    if "*" in resources and not set(actions) <= STAR_RESOURCE_ACTIONS:
        violations.append(f"{lid}: Resource '*' for {sorted(set(actions) - STAR_RESOURCE_ACTIONS)}")
    violations += [f"{lid}: touches {r}, not one of its own resources" for r in resources if r != "*" and r not in own]
    return violations


def check_iam(d: Deployed) -> Violations:
    """Each function's role names only its own resources; '*' only where X-Ray requires it."""
    violations: Violations = []
    for lid, function in d.stack.functions.items():
        own = _own_resources(d, function)
        for document in d.role_policies[lid]:
            for statement in _as_list(document.get("Statement", [])):
                violations += _statement_violations(lid, statement, own)
        # Managed policies (AWSLambdaBasicExecutionRole, AWSLambdaSQSQueueExecutionRole) use "*".
        violations += [f"{lid}: managed policy {arn} attached" for arn in d.attached_policies[lid]]
        if not d.role_policies[lid]:
            violations.append(f"{lid}: role has no inline policy")
    return violations


def check_secrets(d: Deployed) -> Violations:
    """Functions get secret NAMES only (*_SECRET_NAME); no env value looks like a provider key."""
    violations: Violations = []
    for lid, function in d.stack.functions.items():
        for name, value in function.environment.items():
            if SECRET_LIKE_NAME.search(name) and not name.endswith("_SECRET_NAME"):
                violations.append(f"{lid}: env {name} looks like a secret; pass its name as *_SECRET_NAME")
            if SECRET_LIKE_VALUE.search(value):
                violations.append(f"{lid}: env {name} holds what looks like an API key")
    return violations


# --------------------------------------------------------------------------- template-only


def check_tables(d: Deployed) -> Violations:
    """On-demand, PITR and SSE on every table; the idempotency TTL; the donations keys and GSI.

    Read from the translated template: moto ignores PITR, SSE and TTL.
    """
    violations: Violations = []
    tables = {lid: r for lid, r in d.resources.items() if r.get("Type") == "AWS::DynamoDB::Table"}
    for lid, resource in tables.items():
        p = resource.get("Properties", {})
        if p.get("BillingMode") != "PAY_PER_REQUEST":
            violations.append(f"{lid}: not on-demand (BillingMode {p.get('BillingMode')})")
        if p.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is not True:
            violations.append(f"{lid}: point-in-time recovery off")
        if p.get("SSESpecification", {}).get("SSEEnabled") is not True:
            violations.append(f"{lid}: SSESpecification.SSEEnabled not true")
    idempotency = tables.get("IdempotencyTable", {}).get("Properties", {})
    if idempotency.get("TimeToLiveSpecification") != {"AttributeName": "expiration", "Enabled": True}:
        violations.append("IdempotencyTable: TTL on 'expiration' not enabled")
    if idempotency.get("KeySchema") != [{"AttributeName": "id", "KeyType": "HASH"}]:
        violations.append("IdempotencyTable: key is not 'id'")
    donations = tables.get("DonationsTable", {})
    if donations.get("Properties", {}).get("KeySchema") != [{"AttributeName": "donation_id", "KeyType": "HASH"}]:
        violations.append("DonationsTable: key is not 'donation_id'")
    indexes = {i["IndexName"]: i for i in donations.get("Properties", {}).get("GlobalSecondaryIndexes", [])}
    expected_keys = [
        {"AttributeName": "status", "KeyType": "HASH"},
        {"AttributeName": "unsettled_since", "KeyType": "RANGE"},
    ]
    if indexes.get("status-unsettled_since-index", {}).get("KeySchema") != expected_keys:
        violations.append("DonationsTable: no GSI status-unsettled_since-index (status, unsettled_since)")
    if donations.get("DeletionPolicy") != "Retain":
        violations.append("DonationsTable: not retained on stack deletion")
    return violations


def check_api(d: Deployed) -> Violations:
    """Stage traced, access-logged and throttled; CORS lets the form send Idempotency-Key.

    Read from the translated template: deploy_to_moto does not create the API.
    """
    stages = [r["Properties"] for r in d.resources.values() if r.get("Type") == "AWS::ApiGateway::Stage"]
    if not stages:
        return ["no API Gateway stage"]
    violations: Violations = []
    for stage in stages:
        if stage.get("TracingEnabled") is not True:
            violations.append("API stage: X-Ray tracing off")
        if not stage.get("AccessLogSetting", {}).get("DestinationArn"):
            violations.append("API stage: no access logging")
        settings = stage.get("MethodSettings", [])
        if not any("ThrottlingRateLimit" in s and "ThrottlingBurstLimit" in s for s in settings):
            violations.append("API stage: no throttling")
    bodies = json.dumps([r["Properties"].get("Body") for r in d.resources.values() if r["Type"].endswith("RestApi")])
    violations += [
        f"API: CORS preflight does not allow the {header} header"
        for header in ("Content-Type", "Idempotency-Key")
        if header not in bodies
    ]
    return violations


def check_dashboard(d: Deployed) -> Violations:
    """The operations dashboard is valid JSON once resolved and shows the queues, DLQs and metrics."""
    if not d.dashboards:
        return ["no CloudWatch dashboard"]
    violations: Violations = []
    for lid, body in d.dashboards.items():
        try:
            json.loads(body)
        except json.JSONDecodeError as error:
            violations.append(f"{lid}: body is not valid JSON after substitution ({error})")
        violations += [f"{lid}: does not show {metric}" for metric in DASHBOARD_METRICS if metric not in body]
        queues = [d.queue_name(q) for q in d.queue_attributes]
        violations += [f"{lid}: does not show queue {name}" for name in queues if f'"{name}"' not in body]
    return violations


def check_outputs(d: Deployed) -> Violations:
    """The outputs the local stack, ops CLI and deploy scripts read."""
    outputs = d.template.get("Outputs", {})
    return [f"output {name} missing" for name in REQUIRED_OUTPUTS if name not in outputs]


# -- card testing (README, "Card testing") ---------------------------------------------------------

CARD_TESTING_RULE_GROUPS = ("AWSManagedRulesAmazonIpReputationList", "AWSManagedRulesKnownBadInputsRuleSet")


def check_waf(d: Deployed) -> Violations:
    """A regional web ACL on the API stage: the managed IP reputation and known-bad-inputs groups, and a
    rate-based rule keyed by IP on POST /donations over a 5-minute window (a flood guard an honest shared
    address cannot reach: docs/card-testing-thresholds.md), answering 429. The ACL as moto
    created it; the association from the translated template (it names the API stage moto does not create).
    """
    if not d.web_acls:
        return ["no WAF web ACL"]
    violations: Violations = []
    for lid, acl in d.web_acls.items():
        if "Allow" not in acl.get("DefaultAction", {}):
            violations.append(f"{lid}: default action is not Allow")
        rules = acl.get("Rules", [])
        groups = {r["Statement"].get("ManagedRuleGroupStatement", {}).get("Name"): r for r in rules}
        for group in CARD_TESTING_RULE_GROUPS:
            rule = groups.get(group)
            if rule is None:
                violations.append(f"{lid}: no managed rule group {group}")
            elif "None" not in rule.get("OverrideAction", {}):
                violations.append(f"{lid}: {group} overridden (count only)")
        violations += _rate_rule_violations(lid, [r for r in rules if _is_donation_attempts_rule(r)])
        violations += _edge_rule_violations(lid, rules)
    violations += _association_violations(d)
    return violations


def _scope(rule: dict[str, Any]) -> str:
    """A rule's statement as text (SearchString comes back from the WAFv2 API as bytes: a blob)."""
    return json.dumps(rule["Statement"], default=lambda blob: blob.decode())


def _is_donation_attempts_rule(rule: dict[str, Any]) -> bool:
    """The card-testing rate rule: the rate-based rule that is not one of the other routes' (EDGE_RATE_RULES)."""
    return "RateBasedStatement" in rule["Statement"] and rule["Name"] not in EDGE_RATE_RULES


# The other routes' edge rules (docs/security.md): rule name -> (method, path searched, window in s).
EDGE_RATE_RULES = {
    "status-reads-per-ip": ("GET", "/donations/", 300),
    "webhooks-per-ip": ("POST", "/webhooks/stripe", 300),
}
WEBHOOK_SOURCES_RULE = "webhooks-from-stripe-only"


def _edge_rule_violations(lid: str, rules: list[dict[str, Any]]) -> Violations:
    """A rate rule per address for reading a donation and for the webhook, answering 429; and the webhook
    route refused (or counted) from any address outside Stripe's IP set."""
    by_name = {rule["Name"]: rule for rule in rules}
    violations: Violations = []
    for name, (method, path, window) in EDGE_RATE_RULES.items():
        statement = by_name.get(name, {}).get("Statement", {}).get("RateBasedStatement")
        if statement is None:
            violations.append(f"{lid}: no rate-based rule {name}")
            continue
        scope = _scope(by_name[name])
        if (statement.get("AggregateKeyType"), statement.get("EvaluationWindowSec")) != ("IP", window):
            violations.append(f"{lid}: {name} not keyed by IP over {window} s")
        if f'"{method}"' not in scope or f'"{path}"' not in scope:
            violations.append(f"{lid}: {name} not scoped to {method} {path}")
        if by_name[name].get("Action", {}).get("Block", {}).get("CustomResponse", {}).get("ResponseCode") != 429:
            violations.append(f"{lid}: {name} does not answer 429")
    sources = by_name.get(WEBHOOK_SOURCES_RULE)
    if sources is None:
        return [*violations, f"{lid}: no rule {WEBHOOK_SOURCES_RULE}"]
    scope = _scope(sources)
    if '"/webhooks/stripe"' not in scope or "NotStatement" not in scope or "IPSetReferenceStatement" not in scope:
        violations.append(f"{lid}: {WEBHOOK_SOURCES_RULE} does not refuse the webhook route outside an IP set")
    if not {"Block", "Count"} & set(sources.get("Action", {})):
        violations.append(f"{lid}: {WEBHOOK_SOURCES_RULE} neither blocks nor counts")
    return violations


def _rate_rule_violations(lid: str, rules: list[dict[str, Any]]) -> Violations:
    if len(rules) != 1:
        return [f"{lid}: expected one rate-based rule, found {len(rules)}"]
    rule = rules[0]
    statement = rule["Statement"]["RateBasedStatement"]
    violations: Violations = []
    if statement.get("AggregateKeyType") != "IP":
        violations.append(f"{lid}: rate-based rule not keyed by IP")
    if statement.get("EvaluationWindowSec") != 300:
        violations.append(f"{lid}: rate-based rule window {statement.get('EvaluationWindowSec')} s, not 300 s")
    # SearchString comes back from the WAFv2 API as bytes (a blob in the service model).
    scope = json.dumps(statement.get("ScopeDownStatement", {}), default=lambda blob: blob.decode())
    if '"POST"' not in scope or '"/donations"' not in scope:
        violations.append(f"{lid}: rate-based rule not scoped to POST /donations")
    custom = rule.get("Action", {}).get("Block", {}).get("CustomResponse", {})
    if custom.get("ResponseCode") != 429:
        violations.append(f"{lid}: rate-based rule does not answer 429")
    headers = {h["Name"] for h in custom.get("ResponseHeaders", [])}
    violations += [
        f"{lid}: its 429 has no {h} header"
        for h in ("Retry-After", "Access-Control-Allow-Origin", "Access-Control-Expose-Headers")
        if h not in headers
    ]
    return violations


def _association_violations(d: Deployed) -> Violations:
    associations = [r for r in d.resources.values() if r.get("Type") == "AWS::WAFv2::WebACLAssociation"]
    if len(associations) != 1:
        return [f"expected one WAF web ACL association, found {len(associations)}"]
    association = associations[0]
    properties = association["Properties"]
    target = json.dumps(properties.get("ResourceArn"))
    violations: Violations = []
    api = next((lid for lid, r in d.resources.items() if r["Type"] == "AWS::ApiGateway::RestApi"), "?")
    stage = next((lid for lid, r in d.resources.items() if r["Type"] == "AWS::ApiGateway::Stage"), "?")
    if f"/restapis/${{{api}}}/stages/${{{stage}}}" not in target:
        violations.append(f"WAF association does not name the API stage ({api}, {stage}): {target}")
    if references(properties.get("WebACLArn")) != set(d.web_acls):
        violations.append("WAF association does not name the web ACL")
    if association.get("Condition") != d.resources[next(iter(d.web_acls))].get("Condition"):
        violations.append("WAF association and web ACL are not under the same condition")
    return violations


def check_card_testing(d: Deployed) -> Violations:
    """The velocity table (TTL, the offenders' index), what the charge function needs to reach it, and
    the card-testing-suspected alarm on the charge's refusals, notifying operators."""
    violations: Violations = []
    table = d.resources.get("VelocityTable", {}).get("Properties", {})
    if table.get("TimeToLiveSpecification") != {"AttributeName": "expires_at", "Enabled": True}:
        violations.append("VelocityTable: TTL on 'expires_at' not enabled")
    charge = d.stack.functions.get("ChargeFunction")
    if charge is None or charge.environment.get("VELOCITY_TABLE") != d.stack.tables.get("VelocityTable"):
        violations.append("ChargeFunction: VELOCITY_TABLE does not name the VelocityTable")
    alarms = _alarms_on(d, "DonationPipeline", "CardTestingRefusals", "service", "charge")
    violations += _require_alarm(d, "card testing (CardTestingRefusals)", alarms, None)
    if alarms and alarms[0].get("Period") != 60:
        violations.append("card testing alarm: period is not 60 s (it must fire within 2 minutes)")
    if alarms and not alarms[0]["AlarmName"].endswith("-card-testing-suspected"):
        violations.append("card testing alarm: not named <stack>-card-testing-suspected")
    return violations


CHECKS: dict[str, Callable[[Deployed], Violations]] = {
    check.__name__: check
    for check in (
        check_redrive,
        check_visibility,
        check_dlqs,
        check_queue_encryption,
        check_dlq_alarms,
        check_age_alarms,
        check_function_alarms,
        check_charge_failure_alarm,
        check_provider_auth_alarm,
        check_operator_topic_key,
        check_secrets_key,
        check_notification_path,
        check_alarm_hygiene,
        check_event_sources,
        check_consumers,
        check_log_groups,
        check_iam,
        check_secrets,
        check_tables,
        check_api,
        check_dashboard,
        check_outputs,
        check_waf,
        check_card_testing,
    )
}
