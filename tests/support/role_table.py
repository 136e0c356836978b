"""What each function role may do, written out by hand from what the code calls (donations.store,
donations.step_failures, the handlers): tests/infra/test_role_table.py holds the template to it, and
tests/support/iam_guard.py holds the real handlers' DynamoDB requests to it in every integration test."""

from __future__ import annotations

Grant = tuple[str, str]  # (action, resource as the template names it)

_LOGS = ("logs:CreateLogStream", "logs:PutLogEvents")
_XRAY = {("xray:PutTraceSegments", "*"), ("xray:PutTelemetryRecords", "*")}


def _logs(group: str) -> set[Grant]:
    return {(action, group) for action in _LOGS} | _XRAY


def _poll(queue: str, dlq: str) -> set[Grant]:
    actions = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility")
    return {(action, queue) for action in (*actions, "sqs:GetQueueUrl")} | {("sqs:SendMessage", dlq)}


_FOLLOW_UPS = {("sqs:SendMessage", "TokenizeQueue"), ("sqs:SendMessage", "ReceiptQueue")}
_STEP_FAILURE = {"failed_step", "failure_reason", "attention_step", "attention_since", "attention", "last_error"}
_STEP_FAILURE |= {"attempts", "failure_kind", "parked_at", "parked_message"}
_SETTLE = {"status", "payment_intent_id", "payment_method_id", "charged_at", "card_brand", "card_last4"}
_SETTLE |= {"charging_until", "decline_code", "failure_reason", "unsettled_since", "followups_claim_until"}
_SETTLE |= {"followups_published"}
# Money taken is recorded whatever the record said (donations.settlement): what it said, and on which attempt.
_SETTLE |= {"corrected_from", "charge_attempt", "charge_attempt_spent"}
_KEY_AND_STAMP = {"donation_id", "updated_at"}

ROLE_TABLE: dict[str, set[Grant]] = {
    "ChargeFunctionRole": _logs("ChargeFunctionLogGroup")
    | {(f"dynamodb:{a}", "DonationsTable") for a in ("GetItem", "PutItem", "UpdateItem", "DeleteItem")}
    | _FOLLOW_UPS
    | {("ssm:GetParameter", "parameter:StripeChargeSecretName"), ("ssm:GetParameter", "parameter:TurnstileSecretName")}
    | {("ssm:GetParameter", "parameter:IdentifierSecretName"), ("ssm:GetParameter", "parameter:PledgeLinkSecretName")}
    | {("dynamodb:GetItem", "PledgesTable"), ("dynamodb:UpdateItem", "PledgesTable")}
    | {("dynamodb:Query", "PledgesTable/index/donor-index")}
    | {("sqs:GetQueueAttributes", "ReceiptQueue")}  # the warm-up's one read (donations.warmup)
    | {("dynamodb:GetItem", "VelocityTable"), ("dynamodb:UpdateItem", "VelocityTable")},
    "TokenizeFunctionRole": _logs("TokenizeFunctionLogGroup")
    | _poll("TokenizeQueue", "TokenizeDLQ")
    | {("dynamodb:GetItem", "DonationsTable"), ("dynamodb:UpdateItem", "DonationsTable")}
    | {("ssm:GetParameter", "parameter:StripeTokenizeSecretName"), ("dynamodb:PutItem", "PledgesTable")}
    | {("dynamodb:UpdateItem", "PledgesTable")},  # stops a pledge whose first gift was disputed before it existed
    "SendReceiptFunctionRole": _logs("SendReceiptFunctionLogGroup")
    | _poll("ReceiptQueue", "ReceiptDLQ")
    | {("dynamodb:GetItem", "DonationsTable"), ("dynamodb:UpdateItem", "DonationsTable")}
    # a donor's gifts, for the year-end statement (donations.statements)
    | {("dynamodb:Query", "DonationsTable/index/donor-index"), ("dynamodb:BatchGetItem", "DonationsTable")}
    | {(f"dynamodb:{a}", "StatementsTable") for a in ("GetItem", "UpdateItem", "DeleteItem")}
    | {("ssm:GetParameter", "parameter:SendGridSecretName"), ("ssm:GetParameter", "parameter:PledgeLinkSecretName")}
    | {("dynamodb:GetItem", "PledgesTable"), ("dynamodb:UpdateItem", "PledgesTable")},
    "ReconcilerFunctionRole": _logs("ReconcilerFunctionLogGroup")
    | {("dynamodb:Query", "DonationsTable/index/status-unsettled_since-index")}
    | {("dynamodb:GetItem", "DonationsTable"), ("dynamodb:UpdateItem", "DonationsTable")}
    | _FOLLOW_UPS
    | {("ssm:GetParameter", "parameter:StripeReconcilerSecretName")},
    "StripeWebhookFunctionRole": _logs("StripeWebhookFunctionLogGroup")
    | {("dynamodb:GetItem", "DonationsTable"), ("dynamodb:UpdateItem", "DonationsTable")}
    | {("dynamodb:Query", "DonationsTable/index/payment_intent_id-index")}
    # a dispute stops the disputed gift's pledge; a renewal the donor authenticated moves it on
    | {("dynamodb:UpdateItem", "PledgesTable"), ("dynamodb:GetItem", "PledgesTable")}
    | {("dynamodb:Query", "PledgesTable/index/donor-index")}  # a fraudulent dispute: the donor's pledges on the card
    | {("dynamodb:Query", "PledgesTable/index/payment_method_id-index")}  # a card the network updated: its pledges
    | {(f"dynamodb:{a}", "IdempotencyTable") for a in ("GetItem", "PutItem", "UpdateItem", "DeleteItem")}
    | _FOLLOW_UPS
    | {("ssm:GetParameter", "parameter:StripeWebhookSecretName")},
    "NotifierFunctionRole": _logs("NotifierFunctionLogGroup")
    | {("sns:Publish", "OperatorTopic")}
    | {("sqs:GetQueueAttributes", q) for q in ("TokenizeQueue", "ReceiptQueue", "TokenizeDLQ", "ReceiptDLQ")}
    | {("dynamodb:Query", "DonationsTable/index/attention-index")}
    # open disputes whose evidence is due soon, each reminded once a day (donations.dispute_reminders)
    | {("dynamodb:Query", "DonationsTable/index/dispute-index"), ("dynamodb:UpdateItem", "DonationsTable")}
    | {("kms:GenerateDataKey", "OperatorTopicKey"), ("kms:Decrypt", "OperatorTopicKey")},
    "ScheduleRenewalsFunctionRole": _logs("ScheduleRenewalsFunctionLogGroup")
    | {("dynamodb:Query", "PledgesTable/index/due_on-index"), ("dynamodb:UpdateItem", "PledgesTable")}
    | {("sqs:SendMessage", "RenewalQueue")}
    # the January statements run (donations.statement_run)
    | {("dynamodb:Query", "DonationsTable/index/day-index"), ("dynamodb:BatchGetItem", "DonationsTable")}
    | {("dynamodb:BatchGetItem", "StatementsTable"), ("dynamodb:UpdateItem", "StatementsTable")}
    | {("sqs:SendMessage", "ReceiptQueue")},
    "RenewFunctionRole": _logs("RenewFunctionLogGroup")
    | _poll("RenewalQueue", "RenewalDLQ")
    | {("dynamodb:GetItem", "PledgesTable"), ("dynamodb:UpdateItem", "PledgesTable")}
    | {(f"dynamodb:{a}", "DonationsTable") for a in ("GetItem", "PutItem", "UpdateItem")}
    | {("sqs:SendMessage", "ReceiptQueue"), ("ssm:GetParameter", "parameter:StripeRenewSecretName")},
}
"""Role -> every (action, resource) it is allowed; nothing else."""

DONATION_ATTRIBUTES: dict[str, set[str] | None] = {
    "ChargeFunctionRole": None,  # creates the donation (PutItem): every attribute
    "TokenizeFunctionRole": _KEY_AND_STAMP
    | _STEP_FAILURE
    | {"card_status", "card_attempt", "customer_id", "payment_method_id", "card_brand", "card_last4"}
    | {"card_exp_month", "card_exp_year"}
    | {"customer_deleted_at"},  # an erased donor's Customer deleted (donations.customer_erasure)
    "SendReceiptFunctionRole": _KEY_AND_STAMP
    | _STEP_FAILURE
    | {"status", "receipt_status", "receipt_claim_until", "receipt_message_id", "receipt_sent_at"}
    | {"refund_notice_claim_until", "refund_notice_amount", "refund_notice_message_id", "refund_notice_sent_at"}
    | {"amount_refunded"},  # named by the refund notice's claim condition, never written
    "ReconcilerFunctionRole": _KEY_AND_STAMP | _SETTLE,
    "StripeWebhookFunctionRole": _KEY_AND_STAMP
    | _SETTLE
    | {"amount_refunded", "refund_state", "refunded_at", "dispute_id", "dispute_reason", "dispute_status"}
    | {"dispute_amount", "disputed_at", "dispute_closed_at", "dispute_evidence_due_by", "dispute_open"}
    | {"dispute_balance_transactions", "dispute_fee", "dispute_fee_currency"}
    | {"refunds_failed", "amount_refund_failed", "refund_failed_at", "refund_failure_reason", "refund_notice_amount"},
    # the day a dispute's evidence deadline was last told; its condition names the two dispute fields
    "NotifierFunctionRole": _KEY_AND_STAMP | {"dispute_reminded_on", "dispute_open", "dispute_status"},
    "RenewFunctionRole": None,  # creates each period's donation (PutItem): every attribute
    "ScheduleRenewalsFunctionRole": set(),  # reads only
}
"""Role -> the Donations attributes its UpdateItem may name (dynamodb:Attributes); None: unrestricted."""

PLEDGE_ATTRIBUTES: dict[str, set[str]] = {
    # a dispute stops the pledge; a renewal the donor authenticated moves it on; a card the donor saved
    # (setup_intent.succeeded) is recorded on it, a lapsed or waiting pledge active again (donations.card_update)
    "StripeWebhookFunctionRole": {"pledge_id", "updated_at", "state", "canceled_at", "canceled_reason", "due_on"}
    | {"retry_on", "attention", "attention_since", "next_charge_on", "last_period", "last_donation_id", "renewals"}
    | {"renewal_try", "payment_method_id", "card_brand", "card_last4", "card_setup_id", "card_updated_at"}
    | {"queued_for", "queued_at"}
    # a card the network updated (payment_method.automatically_updated): its new details, a cured lapse resumed
    | {"card_exp_month", "card_exp_year", "card_details_as_of"}
    # a renewal the donor authenticated: no longer waiting (its pledge stayed active meanwhile)
    | {"awaiting_donor", "awaiting_period"},
}
"""Role -> the Pledges attributes its UpdateItem may name (dynamodb:Attributes); a role not listed: unrestricted."""
