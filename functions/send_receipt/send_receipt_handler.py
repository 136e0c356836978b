"""SQS → email the donation receipt through SendGrid, once per donation; a donor's year-end statement, once
per donor and year (donations.statement_queue); a pledge's emails (donations.pledge_manage), once each."""

from functools import cache

# SendGrid's SDK does this function's work: load it during INIT, not on the first receipt
# (donations.mail imports it where used, as the tokenize function imports that module too).
import sendgrid  # noqa: F401

from donations import money
from donations.consumer import StepConsumer, sqs_lambda_handler
from donations.models import FollowUpMessage, Step
from donations.pledge_manage import send_pledge_mail
from donations.settings import SendReceiptSettings
from donations.statement_queue import ReceiptQueueConsumer, statement_consumer
from donations.steps import send_receipt
from donations.wiring import Wiring

settings = SendReceiptSettings.from_env()  # during INIT: a missing variable fails here, naming it
# Babel's locale data and the time zone, loaded during INIT too; an unknown RECEIPT_LOCALE or
# RECEIPT_TIME_ZONE fails here rather than parking every receipt.
money.load_locale(settings.receipt_locale, settings.receipt_time_zone)


@cache
def wiring() -> Wiring:
    return Wiring(settings)


def send_one(message: FollowUpMessage) -> None:
    deps = wiring()
    if not send_pledge_mail(
        message, pledges=deps.pledges, links=deps.pledge_links, mailer=deps.mailer, locale=settings.receipt_locale
    ):
        send_receipt(message, store=deps.store, mailer=deps.mailer, lease_seconds=settings.receipt_claim_seconds)


@cache
def consumer() -> ReceiptQueueConsumer:
    receipts = StepConsumer(
        Step.SEND_RECEIPT,
        send_one,
        store=wiring().store,
        sqs_client=wiring().sqs,
        settings=settings,
        dlq_url=settings.receipt_dlq_url,
    )
    statements = statement_consumer(
        wiring().statements, lambda: wiring().mailer, sqs_client=wiring().sqs, settings=settings
    )
    return ReceiptQueueConsumer(receipts, statements)


lambda_handler = sqs_lambda_handler(consumer)
