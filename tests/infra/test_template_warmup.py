"""POST /warmup in the template: routed to the charge function, bounded like the API, its role's one read.

The form's warm-up (docs/warm-up.md) may be sent by anyone: a method throttle of its own on the
stage, WAF's per-address rule over it as over POST /donations, and the charge role may read the
receipt queue's attributes (the warm-up's SQS request) and nothing more.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.deploy import Template
from tests.infra.template_contracts import Deployed

pytestmark = pytest.mark.infra


def _stage(cfn_template: Template) -> dict[str, Any]:
    stages = [r["Properties"] for r in cfn_template["Resources"].values() if r["Type"] == "AWS::ApiGateway::Stage"]
    assert len(stages) == 1
    return dict(stages[0])


def test_the_warm_up_is_a_post_route_of_the_charge_function(cfn_template: Template) -> None:
    api = next(r for r in cfn_template["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi")
    method = api["Properties"]["Body"]["paths"]["/warmup"]["post"]
    assert "ChargeFunction" in json.dumps(method["x-amazon-apigateway-integration"]["uri"])


def test_the_warm_up_has_a_method_throttle_of_its_own(cfn_template: Template) -> None:
    # API Gateway's method settings name a resource path with "/" written "~1"
    settings = [s for s in _stage(cfn_template)["MethodSettings"] if s["ResourcePath"] == "/~1warmup"]
    assert len(settings) == 1 and settings[0]["HttpMethod"] == "POST"
    assert settings[0]["ThrottlingRateLimit"] == {"Ref": "WarmupRateLimit"}
    assert settings[0]["ThrottlingBurstLimit"] == {"Ref": "WarmupBurstLimit"}
    assert cfn_template["Parameters"]["WarmupRateLimit"]["Default"] <= 10


def test_wafs_per_address_rule_counts_warm_ups_with_donation_attempts(deployed: Deployed) -> None:
    rule = next(r for r in deployed.web_acls["DonationsWebAcl"]["Rules"] if "RateBasedStatement" in r["Statement"])
    # SearchString comes back from the WAFv2 API as bytes (a blob in the service model).
    scope = json.dumps(rule["Statement"]["RateBasedStatement"]["ScopeDownStatement"], default=lambda b: b.decode())
    assert '"POST"' in scope and '"/donations"' in scope and '"/warmup"' in scope


def test_the_charge_role_may_read_the_receipt_queues_attributes_and_no_other_queues(deployed: Deployed) -> None:
    statements = [s for document in deployed.role_policies["ChargeFunction"] for s in document["Statement"]]
    reads = [s for s in statements if "sqs:GetQueueAttributes" in json.dumps(s["Action"])]
    assert len(reads) == 1
    assert reads[0]["Action"] in ("sqs:GetQueueAttributes", ["sqs:GetQueueAttributes"])
    receipt_queue_arn = deployed.queue_attributes["ReceiptQueue"]["QueueArn"]
    assert reads[0]["Resource"] in (receipt_queue_arn, [receipt_queue_arn])
