"""The contract checks catch what they claim to: break the template on purpose, expect a violation.

Each mutation edits the SAM template (as a developer would), which is then translated and created
in moto exactly like the real one; the named check must report it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from infra.deploy import AwsClients, Template, translate
from tests.infra.template_contracts import CHECKS, EVERYTHING_ON, deploy_and_observe

pytestmark = pytest.mark.infra


def _props(template: Template, logical_id: str) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"][logical_id]["Properties"]
    return properties


def _set(logical_id: str, path: str, value: Any) -> Callable[[Template], None]:
    """Set Properties.<path> (dotted; a number indexes a list) of a resource; value None deletes it."""

    def mutate(template: Template) -> None:
        node = template["Resources"][logical_id]["Properties"]
        *parents, leaf = path.split(".")
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value

    return mutate


def _add_statement(role: str, statement: dict[str, Any]) -> Callable[[Template], None]:
    def mutate(template: Template) -> None:
        _props(template, role)["Policies"][0]["PolicyDocument"]["Statement"].append(statement)

    return mutate


def _use_sam_generated_role(function: str) -> Callable[[Template], None]:
    def mutate(template: Template) -> None:
        del template["Resources"][function]["Properties"]["Role"]
        del template["Resources"][f"{function}Role"]

    return mutate


def _delete_resource(logical_id: str) -> Callable[[Template], None]:
    def mutate(template: Template) -> None:
        del template["Resources"][logical_id]

    return mutate


def _delete_rule(web_acl: str, rule: str) -> Callable[[Template], None]:
    def mutate(template: Template) -> None:
        rules = _props(template, web_acl)["Rules"]
        rules[:] = [r for r in rules if r["Name"] != rule]

    return mutate


def _add_env(function: str, name: str, value: str) -> Callable[[Template], None]:
    def mutate(template: Template) -> None:
        _props(template, function)["Environment"]["Variables"][name] = value

    return mutate


def _break_dashboard_json(template: Template) -> None:
    body = _props(template, "OperationsDashboard")["DashboardBody"]
    body["Fn::Sub"] = body["Fn::Sub"].replace('"widgets": [', '"widgets": [,', 1)


@dataclass(frozen=True)
class Mutation:
    name: str
    apply: Callable[[Template], None]
    check: str
    mentions: str  # a word the violation must contain, so the right thing is blamed


MUTATIONS = [
    Mutation("no RedrivePolicy", _set("TokenizeQueue", "RedrivePolicy", None), "check_redrive", "TokenizeQueue"),
    Mutation("maxReceiveCount 1", _set("ReceiptQueue", "RedrivePolicy.maxReceiveCount", 1), "check_redrive", "1 <"),
    Mutation("visibility = timeout", _set("TokenizeQueue", "VisibilityTimeout", 20), "check_visibility", "20 <"),
    Mutation(
        "DLQ alarm without AlarmActions",
        _set("ReceiptDLQAlarm", "AlarmActions", None),
        "check_dlq_alarms",
        "AlarmActions",
    ),
    Mutation(
        "DLQ alarm on the wrong queue",
        _set(
            "TokenizeDLQAlarm",
            "Dimensions",
            [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["TokenizeQueue", "QueueName"]}}],
        ),
        "check_dlq_alarms",
        "TokenizeDLQ: no alarm",
    ),
    Mutation(
        "no ReportBatchItemFailures",
        _set("TokenizeFunction", "Events.TokenizeJobs.Properties.FunctionResponseTypes", None),
        "check_event_sources",
        "ReportBatchItemFailures",
    ),
    Mutation(
        "Action '*' in a policy",
        _add_statement("ChargeFunctionRole", {"Effect": "Allow", "Action": "*", "Resource": "*"}),
        "check_iam",
        "wildcard action",
    ),
    Mutation(
        "another function's queue in a policy",
        _add_statement(
            "TokenizeFunctionRole",
            {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": {"Fn::GetAtt": ["ReceiptQueue", "Arn"]}},
        ),
        "check_iam",
        "receipt",
    ),
    Mutation(
        "SAM-generated role (managed policies on '*')",
        _use_sam_generated_role("SendReceiptFunction"),
        "check_iam",
        "AWSLambdaSQSQueueExecutionRole",
    ),
    Mutation(
        "API key in the environment",
        _add_env("ChargeFunction", "STRIPE_API_KEY", "sk_test_51HxAbCdEf0123456789"),
        "check_secrets",
        "STRIPE_API_KEY",
    ),
    Mutation("no idempotency TTL", _set("IdempotencyTable", "TimeToLiveSpecification", None), "check_tables", "TTL"),
    Mutation(
        "PITR off",
        _set("DonationsTable", "PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled", False),
        "check_tables",
        "point-in-time",
    ),
    Mutation("DLQ keeps 4 days", _set("TokenizeDLQ", "MessageRetentionPeriod", 345600), "check_dlqs", "TokenizeDLQ"),
    Mutation("SSE off", _set("ReceiptDLQ", "SqsManagedSseEnabled", False), "check_queue_encryption", "ReceiptDLQ"),
    Mutation(
        "no throttles alarm",
        _delete_resource("SendReceiptFunctionThrottlesAlarm"),
        "check_function_alarms",
        "SendReceiptFunction Throttles",
    ),
    Mutation(
        "age alarm without OKActions",
        _set("TokenizeQueueAgeAlarm", "OKActions", None),
        "check_age_alarms",
        "OKActions",
    ),
    Mutation(
        "SendGrid auth alarm over 5 minutes",
        _set("SendGridAuthFailureAlarm", "Period", 300),
        "check_provider_auth_alarm",
        "60 s",
    ),
    Mutation(
        "SendGrid auth alarm without the service dimension",
        _set("SendGridAuthFailureAlarm", "Dimensions", [{"Name": "provider", "Value": "sendgrid"}]),
        "check_provider_auth_alarm",
        "no alarm",
    ),
    Mutation(
        "SendGrid auth alarm that says no fix",
        _set("SendGridAuthFailureAlarm", "AlarmDescription", "SendGrid refused our key."),
        "check_provider_auth_alarm",
        "rotate the secret",
    ),
    Mutation(
        "operator topic on alias/aws/sns",
        _set("OperatorTopic", "KmsMasterKeyId", "alias/aws/sns"),
        "check_operator_topic_key",
        "alias/aws/sns",
    ),
    Mutation(
        "an alarm that bypasses the notifier",
        _set("ReceiptStepFailingAlarm", "AlarmActions", [{"Ref": "OperatorTopic"}]),
        "check_alarm_hygiene",
        "does not notify AlarmTopic",
    ),
    Mutation(
        "the notifier's errors relayed by the notifier itself",
        _set("NotifierFunctionErrorsAlarm", "AlarmActions", [{"Ref": "AlarmTopic"}]),
        "check_function_alarms",
        "does not notify OperatorTopic",
    ),
    Mutation(
        "the notifier publishes to the wrong topic",
        _set("NotifierFunction", "Environment.Variables.OPERATOR_TOPIC_ARN", {"Ref": "AlarmTopic"}),
        "check_notification_path",
        "OPERATOR_TOPIC_ARN",
    ),
    Mutation("dashboard body not JSON", _break_dashboard_json, "check_dashboard", "not valid JSON"),
    Mutation(
        "WAF rate rule over 1 minute",
        _set("DonationsWebAcl", "Rules.2.Statement.RateBasedStatement.EvaluationWindowSec", 60),
        "check_waf",
        "not 300 s",
    ),
    Mutation(
        "WAF rate rule on every request",
        _set("DonationsWebAcl", "Rules.2.Statement.RateBasedStatement.ScopeDownStatement", None),
        "check_waf",
        "POST /donations",
    ),
    Mutation(
        "WAF without IP reputation",
        _delete_rule("DonationsWebAcl", "aws-ip-reputation"),
        "check_waf",
        "AWSManagedRulesAmazonIpReputationList",
    ),
    Mutation("WAF not associated", _delete_resource("DonationsWebAclAssociation"), "check_waf", "association"),
    Mutation(
        "card testing alarm over 5 minutes",
        _set("CardTestingAlarm", "Period", 300),
        "check_card_testing",
        "2 minutes",
    ),
    Mutation(
        "card testing alarm without OKActions",
        _set("CardTestingAlarm", "OKActions", None),
        "check_card_testing",
        "OKActions",
    ),
    Mutation(
        "velocity counters never expire",
        _set("VelocityTable", "TimeToLiveSpecification", None),
        "check_card_testing",
        "TTL",
    ),
    Mutation(
        "MAX_RECEIVE_COUNT drifts from the queue",
        _set("ReceiptQueue", "RedrivePolicy.maxReceiveCount", 8),
        "check_consumers",
        "MAX_RECEIVE_COUNT",
    ),
]


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.name for m in MUTATIONS])
def test_check_reports_the_breakage(sam_template: Template, aws: AwsClients, mutation: Mutation) -> None:
    # Given the template broken on purpose
    broken = copy.deepcopy(sam_template)
    mutation.apply(broken)

    # When it is translated and created in moto like the real one
    deployed = deploy_and_observe(translate(broken), aws, f"infra-mutant-{MUTATIONS.index(mutation)}", **EVERYTHING_ON)

    # Then the matching contract check reports it
    violations = CHECKS[mutation.check](deployed)
    assert violations, f"{mutation.check} missed: {mutation.name}"
    assert any(mutation.mentions in v for v in violations), violations
