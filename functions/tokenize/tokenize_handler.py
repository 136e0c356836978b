"""SQS → save the donor's card with Stripe (Customer + PaymentMethod attach), once per donation; an erased
donor's Stripe Customer deleted (donations.customer_erasure)."""

from functools import cache

# Stripe's SDK does this function's work: load it (through its adapter) during INIT, not on the first message.
import donations.payments  # noqa: F401
from donations.consumer import StepConsumer, sqs_lambda_handler
from donations.customer_deletion import customer_deletion_consumer
from donations.customer_erasure import DELETE_CUSTOMER_TYPE
from donations.models import Step
from donations.queue_routing import RoutedConsumer
from donations.settings import TokenizeSettings
from donations.steps import save_card
from donations.wiring import Wiring

settings = TokenizeSettings.from_env()  # during INIT: a missing variable fails here, naming it


@cache
def wiring() -> Wiring:
    return Wiring(settings)


@cache
def consumer() -> RoutedConsumer:
    cards = StepConsumer(
        Step.TOKENIZE,
        lambda message: save_card(message, store=wiring().store, payments=wiring().payments, pledges=wiring().pledges),
        store=wiring().store,
        sqs_client=wiring().sqs,
        settings=settings,
        dlq_url=settings.tokenize_dlq_url,
    )
    deps = wiring()
    deletions = customer_deletion_consumer(deps.payments, deps.table, sqs_client=deps.sqs, settings=settings)
    return RoutedConsumer(cards, {DELETE_CUSTOMER_TYPE: deletions})


lambda_handler = sqs_lambda_handler(consumer)
