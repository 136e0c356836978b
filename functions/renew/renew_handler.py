"""SQS -> charge one pledge's one period off-session, record it as a donation, move the pledge on."""

from functools import cache

# Stripe's SDK does this function's work: load it (through its adapter) during INIT, not on the first message.
import donations.payments  # noqa: F401
from donations.consumer import sqs_lambda_handler
from donations.models import Donation
from donations.pledges import RenewalMessage
from donations.renewal_queue import RenewalConsumer
from donations.renewals import renew
from donations.settings import RenewSettings
from donations.wiring import Wiring

settings = RenewSettings.from_env()  # during INIT: a missing variable fails here, naming it


@cache
def consumer() -> RenewalConsumer:
    wiring = Wiring(settings)

    def renew_one(message: RenewalMessage, correlation_id: str) -> Donation | None:
        return renew(
            message,
            pledges=wiring.pledges,
            store=wiring.store,
            charges=wiring.payments,
            publisher=wiring.publisher,
            correlation_id=correlation_id,
            notices=wiring.publisher,
        )

    return RenewalConsumer(renew_one, sqs_client=wiring.sqs, settings=settings)


lambda_handler = sqs_lambda_handler(consumer)
