"""The translated template, created in moto, keeps the pipeline's contract (tests/infra/template_contracts.py)."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable

import pytest
from botocore.exceptions import ParamValidationError
from moto.server import ThreadedMotoServer

from infra.deploy import AwsClients, Template, deploy_to_moto, translate
from tests.infra.template_contracts import (
    CHECKS,
    DEPLOYER_PARAMETERS,
    Deployed,
    Violations,
    deploy_and_observe,
    isolated_clients,
)

pytestmark = pytest.mark.infra

FUNCTIONS = {
    # logical id: (handler, code, timeout, memory, POWERTOOLS_SERVICE_NAME)
    "ChargeFunction": ("charge_handler.lambda_handler", "functions/charge/", 10, 1024, "charge"),
    "TokenizeFunction": ("tokenize_handler.lambda_handler", "functions/tokenize/", 20, 256, "tokenize"),
    "SendReceiptFunction": ("send_receipt_handler.lambda_handler", "functions/send_receipt/", 20, 256, "send_receipt"),
    "ReconcilerFunction": ("reconciler_handler.lambda_handler", "functions/reconciler/", 120, 256, "reconciler"),
    "StripeWebhookFunction": (
        "stripe_webhook_handler.lambda_handler",
        "functions/stripe_webhook/",
        10,
        256,
        "stripe_webhook",
    ),
    "NotifierFunction": ("notifier_handler.lambda_handler", "functions/notifier/", 30, 256, "notifier"),
    "ScheduleRenewalsFunction": (
        "schedule_renewals_handler.lambda_handler",
        "functions/schedule_renewals/",
        300,  # the January statements run reads a year of donations before it queues
        256,
        "schedule_renewals",
    ),
    "RenewFunction": ("renew_handler.lambda_handler", "functions/renew/", 20, 256, "renew"),
}
COMMON_ENV = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
    "STAGE",
    "DONATIONS_TABLE",
    "ALLOWED_CURRENCIES",
    "MIN_AMOUNT",
    "MAX_AMOUNT",
    "STRIPE_MAX_NETWORK_RETRIES",
    "RECEIPT_TEMPLATE_ID",
    "RECEIPT_FROM_EMAIL",
    "ORG_NAME",
    "ORG_ADDRESS",
    "CORS_ORIGIN",
}
FUNCTION_ENV = {
    "ChargeFunction": {"TOKENIZE_QUEUE_URL", "RECEIPT_QUEUE_URL", "STRIPE_CHARGE_SECRET_NAME"},
    "TokenizeFunction": {"TOKENIZE_DLQ_URL", "STRIPE_TOKENIZE_SECRET_NAME", "MAX_RECEIVE_COUNT", "PLEDGES_TABLE"},
    "SendReceiptFunction": {"RECEIPT_DLQ_URL", "SENDGRID_SECRET_NAME", "MAX_RECEIVE_COUNT"},
    "ReconcilerFunction": {
        "TOKENIZE_QUEUE_URL",
        "RECEIPT_QUEUE_URL",
        "STRIPE_RECONCILER_SECRET_NAME",
        "RECONCILE_GRACE_SECONDS",
    },
    "StripeWebhookFunction": {
        "IDEMPOTENCY_TABLE",
        "TOKENIZE_QUEUE_URL",
        "RECEIPT_QUEUE_URL",
        "STRIPE_WEBHOOK_SECRET_NAME",
    },
    "NotifierFunction": {
        "OPERATOR_TOPIC_ARN",
        "ALARM_NAME_PREFIX",
        "TOKENIZE_QUEUE_URL",
        "RECEIPT_QUEUE_URL",
        "TOKENIZE_DLQ_URL",
        "RECEIPT_DLQ_URL",
        "DIGEST_WINDOW_SECONDS",
    },
    "ScheduleRenewalsFunction": {"PLEDGES_TABLE", "RENEWAL_QUEUE_URL", "STATEMENTS_TABLE", "RECEIPT_QUEUE_URL"}
    | {"RECEIPT_TIME_ZONE", "STATEMENT_TEMPLATE_ID"},
    "RenewFunction": {
        "PLEDGES_TABLE",
        "RENEWAL_DLQ_URL",
        "TOKENIZE_QUEUE_URL",
        "RECEIPT_QUEUE_URL",
        "MAX_RECEIVE_COUNT",
        "STRIPE_RENEW_SECRET_NAME",
    },
}
ALARMS = {
    "TokenizeDLQAlarm",
    "ReceiptDLQAlarm",
    "TokenizeQueueAgeAlarm",
    "ReceiptQueueAgeAlarm",
    "ChargeFunctionErrorsAlarm",
    "ChargeFunctionThrottlesAlarm",
    "TokenizeFunctionErrorsAlarm",
    "TokenizeFunctionThrottlesAlarm",
    "SendReceiptFunctionErrorsAlarm",
    "SendReceiptFunctionThrottlesAlarm",
    "ReconcilerFunctionErrorsAlarm",
    "ReconcilerFunctionThrottlesAlarm",
    "ReconcileFailuresAlarm",
    "StripeWebhookFunctionErrorsAlarm",
    "StripeWebhookFunctionThrottlesAlarm",
    "WebhookSignatureFailureAlarm",
    "WebhookApiVersionAlarm",
    "DisputeAlarm",
    "ChargeFailureSpikeAlarm",
    "SendGridAuthFailureAlarm",
    "TokenizeStepFailingAlarm",
    "ReceiptStepFailingAlarm",
    "NotifierFunctionErrorsAlarm",
    "NotifierFunctionThrottlesAlarm",
    "CardTestingAlarm",
    "UnrecordedChargesAlarm",
    "RenewalDLQAlarm",
    "RenewalQueueAgeAlarm",
    "RenewalRunNotFinishedAlarm",
    "RenewalFailureRateAlarm",
}


@pytest.mark.parametrize("check", CHECKS.values(), ids=CHECKS.keys())
def test_contract_holds(deployed: Deployed, check: Callable[[Deployed], Violations]) -> None:
    assert check(deployed) == []


def test_moto_gets_everything_but_the_api_and_the_event_source_mappings(deployed: Deployed) -> None:
    # Given the template created in moto, the left-out resources are exactly those moto cannot
    # run faithfully: SAM's REST API (and what points at it: permissions, the WAF association) and
    # the event sources.
    stripped = {deployed.template["Resources"][lid]["Type"] for lid in deployed.stack.stripped}
    assert stripped == {
        "AWS::ApiGateway::RestApi",
        "AWS::ApiGateway::Deployment",
        "AWS::ApiGateway::Stage",
        "AWS::Lambda::Permission",
        "AWS::Lambda::EventSourceMapping",
        "AWS::WAFv2::WebACLAssociation",
    }
    assert set(deployed.stack.queues) == {
        "TokenizeQueue",
        "TokenizeDLQ",
        "ReceiptQueue",
        "ReceiptDLQ",
        "RenewalQueue",
        "RenewalDLQ",
    }
    assert set(deployed.stack.tables) == {
        "DonationsTable",
        "IdempotencyTable",
        "VelocityTable",
        "PledgesTable",
        "StatementsTable",
    }
    # moto's CloudFormation has no WAFv2 support: the web ACL is created through moto's WAFv2 API.
    assert set(deployed.stack.web_acls) == {"DonationsWebAcl"}
    assert set(deployed.stack.topics) == {"OperatorTopic", "AlarmTopic"}
    assert set(deployed.stack.alarms) == ALARMS
    assert "OperationsDashboard" in deployed.stack.physical_ids
    # No AlarmEmail: the conditional e-mail subscription is not created. The notifier's subscription
    # to the alarm topic is not made in moto (which would invoke it through Docker): the local stack delivers.
    assert deployed.stack.subscriptions == {}
    [source] = deployed.stack.sns_sources.values()
    assert (source.topic_arn, deployed.stack.sns_function(source)) == (
        deployed.stack.topics["AlarmTopic"],
        "NotifierFunction",
    )


def test_outputs_resolve_to_what_was_created(deployed: Deployed) -> None:
    stack = deployed.stack
    assert stack.outputs == {
        "TokenizeQueueUrl": stack.queues["TokenizeQueue"],
        "ReceiptQueueUrl": stack.queues["ReceiptQueue"],
        "TokenizeDLQUrl": stack.queues["TokenizeDLQ"],
        "ReceiptDLQUrl": stack.queues["ReceiptDLQ"],
        "DonationsTableName": stack.tables["DonationsTable"],
        "IdempotencyTableName": stack.tables["IdempotencyTable"],
        "OperatorTopicArn": stack.topics["OperatorTopic"],
        "AlarmTopicArn": stack.topics["AlarmTopic"],
        "VelocityTableName": stack.tables["VelocityTable"],
        "SecretsKeyArn": stack.outputs["SecretsKeyArn"],
    }  # ApiUrl names the API, which moto does not create; WebAclArn the ACL created after the stack


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_function_shape(deployed: Deployed, logical_id: str) -> None:
    handler, code, timeout, memory, service = FUNCTIONS[logical_id]
    function = deployed.stack.functions[logical_id]
    assert (function.handler, function.code_uri, function.timeout, function.memory_size) == (
        handler,
        code,
        timeout,
        memory,
    )
    assert function.runtime == "python3.12"
    assert function.layer_uris == ("src/",)
    assert function.environment["POWERTOOLS_SERVICE_NAME"] == service
    assert function.environment["POWERTOOLS_METRICS_NAMESPACE"] == "DonationPipeline"
    # No response or exception becomes X-Ray metadata: they can carry a client_secret or an email
    # (docs/security-application.md; tests/integration/test_secrets_stay_out.py drives the code).
    capture = ("POWERTOOLS_TRACER_CAPTURE_RESPONSE", "POWERTOOLS_TRACER_CAPTURE_ERROR")
    assert [function.environment.get(name) for name in capture] == ["false", "false"]


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_function_environment_names_what_the_code_reads(deployed: Deployed, logical_id: str) -> None:
    from donations.settings import FUNCTION_SETTINGS, required_variables

    env = deployed.stack.functions[logical_id].environment
    # Every variable the code needs is set: the ones this function's settings require (else its INIT
    # fails), and those the contract lists...
    assert required_variables(FUNCTION_SETTINGS[logical_id]) <= env.keys()
    assert COMMON_ENV | FUNCTION_ENV[logical_id] <= env.keys()
    # ...and every variable set is read by someone (Powertools, pydantic or our settings): no typos.
    fields = {name.upper() for settings in FUNCTION_SETTINGS.values() for name in settings.model_fields}
    libraries = ("POWERTOOLS_", "PYDANTIC_")
    assert {name for name in env if not name.startswith(libraries)} <= fields


def test_every_function_of_the_template_declares_its_settings(deployed: Deployed) -> None:
    from donations.settings import FUNCTION_SETTINGS

    assert set(FUNCTION_SETTINGS) == set(deployed.stack.functions)


def test_environment_values_point_at_this_stack(deployed: Deployed) -> None:
    stack = deployed.stack
    charge = stack.functions["ChargeFunction"].environment
    assert charge["DONATIONS_TABLE"] == stack.tables["DonationsTable"]
    assert stack.functions["StripeWebhookFunction"].environment["IDEMPOTENCY_TABLE"] == stack.tables["IdempotencyTable"]
    assert charge["TOKENIZE_QUEUE_URL"] == stack.queues["TokenizeQueue"]
    assert charge["RECEIPT_QUEUE_URL"] == stack.queues["ReceiptQueue"]
    assert stack.functions["TokenizeFunction"].environment["TOKENIZE_DLQ_URL"] == stack.queues["TokenizeDLQ"]
    assert stack.functions["SendReceiptFunction"].environment["RECEIPT_DLQ_URL"] == stack.queues["ReceiptDLQ"]
    assert charge["STAGE"] == "test"
    assert charge["STRIPE_CHARGE_SECRET_NAME"] == "/donations/stripe/charge-key"


def test_event_sources_are_exposed_for_a_local_poller(deployed: Deployed) -> None:
    sources = {es.function_logical_id: es for es in deployed.stack.event_sources.values()}
    assert set(sources) == {"TokenizeFunction", "SendReceiptFunction", "RenewFunction"}
    for function, queue, batch_size, concurrency in (
        ("TokenizeFunction", "TokenizeQueue", 10, 5),
        ("SendReceiptFunction", "ReceiptQueue", 10, 5),
        # Renewals leave Stripe's request rate to the donors: the least concurrency SQS allows, one renewal
        # per invocation (a batch's records run side by side), so at most 2 PaymentIntent creates in flight.
        ("RenewFunction", "RenewalQueue", 1, 2),
    ):
        es = sources[function]
        assert (es.queue_logical_id, es.queue_url) == (queue, deployed.stack.queues[queue])
        assert es.queue_arn == deployed.queue_arn(queue)
        assert (es.batch_size, es.maximum_batching_window_seconds, es.maximum_concurrency) == (
            batch_size,
            1,
            concurrency,
        )
        assert es.function_response_types == ("ReportBatchItemFailures",)
        assert es.function_name == deployed.stack.functions[function].name


def test_a_renewal_run_stays_under_the_stripe_rate_renewals_may_use(deployed: Deployed) -> None:
    # Given the renew function's event source and a Stripe charge as fast as a typical one (300 ms)
    from benchmarks.renewal_run import CEILING, ENDPOINT_LIMIT, STRIPE_CALLS_PER_RENEWAL

    renew = next(es for es in deployed.stack.event_sources.values() if es.function_logical_id == "RenewFunction")
    assert renew.maximum_concurrency is not None

    # When every invocation Lambda may run at once charges all its records side by side (donations.consumer)
    in_flight = renew.maximum_concurrency * min(renew.batch_size, 10) * STRIPE_CALLS_PER_RENEWAL
    per_second = in_flight / 0.300

    # Then renewals use at most the share of POST /v1/payment_intents they are given (docs.stripe.com/rate-limits:
    # 25 requests a second per endpoint by default, shared with the donors), even at twice Stripe's speed
    assert per_second <= CEILING < ENDPOINT_LIMIT
    assert in_flight / 0.200 <= CEILING


def test_alarm_email_creates_the_subscription(cfn_template: Template, aws: AwsClients) -> None:
    # Given an operator e-mail address, the conditional subscription is created (through SNS).
    stack = deploy_to_moto(
        cfn_template,
        stack_name="infra-with-email",
        parameters={**DEPLOYER_PARAMETERS, "AlarmEmail": "ops@example.org"},
        clients=aws,
    )

    subscriptions = aws("sns").list_subscriptions_by_topic(TopicArn=stack.topics["OperatorTopic"])["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [("email", "ops@example.org")]
    assert set(stack.subscriptions) == {"OperatorEmailSubscription"}


def test_deploy_works_against_a_moto_server(cfn_template: Template) -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        clients = isolated_clients(endpoint_url=f"http://{host}:{port}")
        stack = deploy_to_moto(cfn_template, stack_name="infra-server", parameters=DEPLOYER_PARAMETERS, clients=clients)

        assert set(stack.alarms) == ALARMS
        described = clients("cloudwatch").describe_alarms(AlarmNames=[stack.alarms["TokenizeDLQAlarm"]])
        assert described["MetricAlarms"][0]["AlarmActions"] == [stack.topics["AlarmTopic"]]
        assert clients("sqs").get_queue_attributes(QueueUrl=stack.queues["TokenizeQueue"], AttributeNames=["All"])[
            "Attributes"
        ]["RedrivePolicy"]
    finally:
        server.stop()


def test_waf_is_a_parameter_on_by_default(cfn_template: Template, aws: AwsClients, deployed: Deployed) -> None:
    # Given the defaults, the web ACL is created, with a flood guard an honest shared address cannot reach:
    # 1,000 POSTs in 5 minutes from one IP (docs/card-testing-thresholds.md), where 10 a minute blocked galas
    rate_rule = next(r for r in deployed.web_acls["DonationsWebAcl"]["Rules"] if "RateBasedStatement" in r["Statement"])
    rate = rate_rule["Statement"]["RateBasedStatement"]
    assert (rate["Limit"], rate["EvaluationWindowSec"]) == (1000, 300)
    assert deployed.web_acls["DonationsWebAcl"]["Name"] == "infra-contract-api"

    # When the stack is created with EnableWaf=false
    without = deploy_and_observe(cfn_template, aws, "infra-no-waf", EnableWaf="false")

    # Then no web ACL exists, and the association is under the same condition (not created either)
    assert without.stack.web_acls == {} and without.web_acls == {}
    assert cfn_template["Resources"]["DonationsWebAclAssociation"]["Condition"] == "WafEnabled"
    assert cfn_template["Conditions"]["WafEnabled"] == {"Fn::Equals": [{"Ref": "EnableWaf"}, "true"]}


def test_dashboard_and_topic_key_are_parameters_off_by_default(
    cfn_template: Template, aws: AwsClients, deployed: Deployed
) -> None:
    # Given the template created with its defaults (the contract fixture turns both on)
    plain = deploy_and_observe(cfn_template, aws, "infra-defaults")

    # Then there is no dashboard and no KMS key; the topics exist, unencrypted, and the notifier's
    # role names no key; every other contract check still holds (alarms wired, least privilege)
    assert "OperationsDashboard" not in plain.stack.physical_ids
    assert "OperatorTopicKey" not in plain.stack.physical_ids
    assert set(plain.stack.topics) == {"OperatorTopic", "AlarmTopic"}
    sns = aws("sns")
    for arn in plain.stack.topics.values():
        assert "KmsMasterKeyId" not in sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert "kms:" not in str(plain.role_policies["NotifierFunction"])
    assert CHECKS["check_dashboard"](plain) == ["no CloudWatch dashboard"]
    others = {name: check for name, check in CHECKS.items() if name != "check_dashboard"}
    assert {name: check(plain) for name, check in others.items() if check(plain)} == {}
    # and with both on (the contract fixture), the key exists and the notifier may use it
    assert "OperatorTopicKey" in deployed.stack.physical_ids
    assert "kms:" in str(deployed.role_policies["NotifierFunction"])


def test_waf_refuses_a_rate_limit_below_its_floor(sam_template: Template, aws: AwsClients) -> None:
    # Given the template asking WAF for 5 requests a minute (its floor is 10: botocore's WAFv2 model)
    broken = copy.deepcopy(sam_template)
    broken["Parameters"]["WafRateLimit"]["MinValue"] = 1

    # When it is created with WafRateLimit=5, the web ACL is refused, as WAF would refuse it
    with pytest.raises(ParamValidationError, match="Limit"):
        deploy_and_observe(translate(broken), aws, "infra-waf-floor", WafRateLimit="5")
