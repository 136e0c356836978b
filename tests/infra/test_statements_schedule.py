"""The January statements run rides the schedule-renewals function: its rule, input and permission."""

from __future__ import annotations

import json
from typing import Any

import pytest

from donations.statement_schedule import StatementsRunEvent
from infra.deploy import AwsClients, Template
from tests.infra.template_contracts import Deployed

pytestmark = pytest.mark.infra

RULE = "StatementsRunRule"


def _resource(template: Template, logical_id: str) -> dict[str, Any]:
    resource: dict[str, Any] = template["Resources"][logical_id]
    return resource


def test_the_statements_rule_fires_hourly_on_the_parameters_january_day(cfn_template: Template) -> None:
    # Given the translated template
    rule = _resource(cfn_template, RULE)
    # Then the rule is a schedule on the StatementsRunDay parameter, in January, every hour of that day
    assert rule["Type"] == "AWS::Events::Rule"
    assert rule["Properties"]["ScheduleExpression"] == {"Fn::Sub": "cron(0 * ${StatementsRunDay} 1 ? *)"}
    parameter = cfn_template["Parameters"]["StatementsRunDay"]
    assert (parameter["Type"], parameter["Default"], parameter["MinValue"], parameter["MaxValue"]) == (
        "Number",
        15,
        1,
        31,
    )
    # ... targeting the schedule-renewals function with the constant input its handler routes on
    [target] = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["ScheduleRenewalsFunction", "Arn"]}
    assert StatementsRunEvent.names(json.loads(target["Input"]))
    StatementsRunEvent.model_validate_json(target["Input"])


def test_eventbridge_may_invoke_the_function_for_that_rule_only(cfn_template: Template) -> None:
    permission = _resource(cfn_template, "StatementsRunPermission")
    assert permission["Type"] == "AWS::Lambda::Permission"
    assert permission["Properties"]["Principal"] == "events.amazonaws.com"
    assert permission["Properties"]["Action"] == "lambda:InvokeFunction"
    assert permission["Properties"]["FunctionName"] == {"Ref": "ScheduleRenewalsFunction"}
    assert permission["Properties"]["SourceArn"] == {"Fn::GetAtt": [RULE, "Arn"]}


def test_the_deployed_rule_has_the_day_filled_in(deployed: Deployed, aws: AwsClients) -> None:
    # Given the stack created in moto with the default day
    name = deployed.stack.physical_ids[RULE]
    # Then EventBridge holds the schedule of January 15
    assert aws("events").describe_rule(Name=name)["ScheduleExpression"] == "cron(0 * 15 1 ? *)"


def test_the_run_may_mark_statements_queued_and_nothing_else(cfn_template: Template) -> None:
    # Given the schedule-renewals role
    statements = _resource(cfn_template, "ScheduleRenewalsFunctionRole")["Properties"]["Policies"][0]
    [mark] = [s for s in statements["PolicyDocument"]["Statement"] if s["Sid"] == "StatementsMarkQueued"]
    # Then its writes to the Statements table name only the key and queued_at (never the sender's status)
    assert mark["Action"] == "dynamodb:UpdateItem"
    assert mark["Condition"] == {
        "ForAllValues:StringEquals": {"dynamodb:Attributes": ["donor_key", "year", "queued_at"]}
    }
