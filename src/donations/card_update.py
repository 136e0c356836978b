"""A donor gives the pledge a new card through the manage link (donations.pledge_links), and the next renewal
charges it.

Stripe's "Save payment details for future payments" (docs.stripe.com/payments/save-and-reuse): the server makes
a SetupIntent on the pledge's Customer (``usage=off_session``), the donor's page confirms it with Stripe.js
``confirmCardSetup`` (3-D Secure in the page if the bank asks; docs.stripe.com/js/setup_intents/confirm_card_setup),
and the card is saved to the Customer set up for payments made with the donor away. The pledge then records the
new PaymentMethod, once, from whichever reports first:

* the page's return (``finish_card_update``): the SetupIntent read from Stripe, never taken from the page; it
  must have succeeded, on the pledge's Customer, for this pledge;
* Stripe's ``setup_intent.succeeded`` webhook (``card_set_up``), for a donor who closed the page first. It has
  no Stripe key, so it records the card without its brand and last 4; the page's return adds them.

An active pledge keeps its schedule: a retry still due is tried on the new card. A pledge that lapsed, or waits
for the donor after the bank asked to authenticate a renewal, is active again from its next charge day (never a
period it charged or failed: donations.pledges.resume_on). A canceled pledge takes no card.

The card network may also update a saved card on its own (Stripe's card account updater: a new expiry date or
number for the same PaymentMethod, reported by ``payment_method.automatically_updated``; ``card_updated_by_network``):
every pledge on that PaymentMethod shows the new details, and one that lapsed because of that card's details
(dunning.CURED_BY_UPDATED_CARD) is active again from its next charge day, as with a card the donor gave.

The SetupIntent's client secret goes to the donor's page only: never logged, stored or traced.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Protocol

from pydantic import BaseModel

from donations.conditional import ConditionFailed
from donations.errors import CardNotSaved, LinkRefused, ServiceUnavailable
from donations.models import utc_now
from donations.observability import MetricUnit, logger, metrics
from donations.pledge_links import PledgeLinks, Purpose
from donations.pledge_manage import PledgeView, verified_link, view_of
from donations.pledges import Pledge, PledgeState, PledgeStore
from donations.ports import CardSetup, PledgeCards, PledgeStopper, UpdatedCard

SETUP_INTENT_ID = re.compile(r"^seti_[A-Za-z0-9]{1,64}$")
# A page's attempt at one card update (a random id it makes per submit): the same attempt, sent twice, makes one
# SetupIntent (its Stripe idempotency key).
ATTEMPT_ID = r"^[A-Za-z0-9_-]{16,64}$"
_WRITE_TRIES = 3


class CardSetups(Protocol):
    """What a card update needs from Stripe (donations.payments.StripePayments)."""

    def start_card_setup(self, customer_id: str, pledge_id: str, idempotency_key: str) -> CardSetup: ...

    def card_setup(self, setup_intent_id: str) -> CardSetup | None: ...


class CardUpdate(BaseModel):
    """For the page: the SetupIntent to confirm with Stripe.js, then to name on the return."""

    setup_intent_id: str
    client_secret: str
    """For Stripe.js ``confirmCardSetup`` (never emailed, logged or stored)."""


def start_card_update(
    pledge_id: str, token: str, attempt: str, *, pledges: PledgeStore, links: PledgeLinks, payments: CardSetups
) -> CardUpdate:
    """A SetupIntent on the pledge's Customer for the donor's page to confirm (a manage token)."""
    pledge, claims = verified_link(pledge_id, token, Purpose.MANAGE, pledges, links)
    _running(pledge)
    key = f"pledge-{pledge.pledge_id}-card-{claims.nonce}-{attempt}"
    setup = payments.start_card_setup(pledge.customer_id, pledge.pledge_id, key)
    if setup.client_secret is None:
        raise ServiceUnavailable("The payment service did not answer as expected; please try again shortly.")
    return CardUpdate(setup_intent_id=setup.id, client_secret=setup.client_secret)


def finish_card_update(
    pledge_id: str,
    token: str,
    setup_intent_id: str,
    *,
    pledges: PledgeStore,
    links: PledgeLinks,
    payments: CardSetups,
    today: date | None = None,
) -> PledgeView:
    """The page's return after Stripe.js: the pledge charges the new card if Stripe says it was saved for it."""
    pledge, _ = verified_link(pledge_id, token, Purpose.MANAGE, pledges, links)
    setup = payments.card_setup(setup_intent_id) if SETUP_INTENT_ID.match(setup_intent_id) else None
    if setup is None or setup.customer_id != pledge.customer_id or setup.pledge_id != pledge.pledge_id:
        # Another donor's SetupIntent, or a made-up one: the same refusal as a bad link, nothing changed.
        raise LinkRefused("This card update is not valid. Open your manage link again.")
    if setup.status != "succeeded" or setup.payment_method_id is None:
        raise CardNotSaved("Your card was not saved: your bank did not confirm it. You can try again.")
    return view_of(record_card(pledges, pledge, setup, today or _today()), links)


def card_set_up(setup: CardSetup, *, pledges: PledgeCards, today: date | None = None) -> bool:
    """Stripe's ``setup_intent.succeeded`` for a pledge's card update: record it unless the page's return did.
    False when it is not ours to record (no pledge named, another Customer's, the pledge canceled)."""
    pledge = pledges.get(setup.pledge_id) if setup.pledge_id else None
    if pledge is None or pledge.customer_id != setup.customer_id or setup.payment_method_id is None:
        return False
    try:
        record_card(pledges, pledge, setup, today or _today())
    except CardNotSaved:
        return False
    return True


def record_card(pledges: PledgeCards, pledge: Pledge, setup: CardSetup, today: date) -> Pledge:
    """``PledgeStore.record_new_card``, once per SetupIntent, whoever comes first; read again if the pledge
    changed meanwhile (a renewal moved it on, the webhook recorded it)."""
    for _ in range(_WRITE_TRIES):
        if _recorded(pledge, setup):
            return pledge
        _running(pledge)
        try:
            updated = pledges.record_new_card(pledge, setup, today)
        except ConditionFailed:
            current = pledges.get(pledge.pledge_id)
            if current is None:
                raise LinkRefused("This card update is not valid. Open your manage link again.") from None
            pledge = current
            continue
        metrics.add_metric(name="PledgeCardsUpdated", unit=MetricUnit.Count, value=1)
        logger.info("Pledge card updated", extra={"pledge_id": pledge.pledge_id, "state": updated.state})
        return updated
    raise ServiceUnavailable("Your monthly gift is being updated; please try again shortly.")


def card_updated_by_network(card: UpdatedCard, *, pledges: PledgeStopper, today: date | None = None) -> int:
    """Stripe's ``payment_method.automatically_updated``: record the card's new details on each pledge that
    charges it (``PledgeStore.record_updated_card``), once, never over a newer update. How many pledges now show
    this update (0: the card is no pledge's, or every one is canceled)."""
    day = today or _today()
    shown = 0
    for pledge_id in pledges.on_payment_method(card.payment_method_id):
        pledge = pledges.get(pledge_id)
        if pledge is not None and _record_update(pledges, pledge, card, day):
            shown += 1
    return shown


def _record_update(pledges: PledgeStopper, pledge: Pledge, card: UpdatedCard, today: date) -> bool:
    """True once the pledge shows this update (now or before); False if it is not this card's to show."""
    for _ in range(_WRITE_TRIES):
        if pledge.state is PledgeState.CANCELED or pledge.payment_method_id != card.payment_method_id:
            return False  # never charged again, or the donor gave another card since
        if pledge.card_details_as_of is not None and pledge.card_details_as_of >= card.as_of:
            return pledge.card_details_as_of == card.as_of  # a replay, or an older update arriving late
        try:
            updated = pledges.record_updated_card(pledge, card, today)
        except ConditionFailed:
            current = pledges.get(pledge.pledge_id)
            if current is None:
                return False
            pledge = current
            continue
        metrics.add_metric(name="PledgeCardsUpdatedByNetwork", unit=MetricUnit.Count, value=1)
        logger.info(
            "Pledge card updated by the card network",
            extra={"pledge_id": pledge.pledge_id, "state": updated.state, "was": pledge.state},
        )
        return True
    raise ServiceUnavailable("The monthly gift is being updated; Stripe retries the event.")


def _recorded(pledge: Pledge, setup: CardSetup) -> bool:
    return pledge.card_setup_id == setup.id and (pledge.card_last4 is not None or setup.card_last4 is None)


def _running(pledge: Pledge) -> None:
    if pledge.state is PledgeState.CANCELED:
        raise CardNotSaved("This monthly gift is canceled: there is no card to update.")


def _today() -> date:
    return date.fromisoformat(utc_now()[:10])
