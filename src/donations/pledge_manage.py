"""What a donor does with a monthly pledge through a signed link (donations.pledge_links), and the email
that brings them the link.

The API (routes on the charge function) takes the link's token in a JSON body, never in a URL: see
the pledge, cancel it with a one-time cancel token, ask for a fresh link by email. Every bad token,
and every pledge id that is not one, gets the same refusal (LinkRefused), so nothing tells which
pledges exist; "send me a link" answers the same whether or not the address has a pledge.

The email goes out from the send-receipt function (the one that holds SendGrid's key), from a
message on the receipt queue, claimed on the pledge before sending (``PledgeStore`` link-email fields):
a redelivery sends no second email, and an address gets one every LINK_EMAIL_EVERY_SECONDS at most,
whoever asks.
"""

from __future__ import annotations

import re
import time
from typing import Protocol

from boto3.dynamodb.conditions import Attr
from pydantic import BaseModel

from donations.conditional import ConditionFailed, conditional_update
from donations.errors import LinkRefused, LinkUsed, PermanentStepFailure, RetryableStepFailure
from donations.identifiers import Identifiers
from donations.models import FollowUpMessage, Step
from donations.observability import MetricUnit, logger, metrics
from donations.pledge_links import CANCEL_TOKEN_SECONDS, LinkClaims, PledgeLinks, Purpose
from donations.pledges import Pledge, PledgeState, PledgeStore

PLEDGE_ID = re.compile(r"^pl_[0-9a-f]{24}$")
# One link email per pledge this often at most: a stranger who knows the address cannot flood its inbox.
LINK_EMAIL_EVERY_SECONDS = 600
# The sender's claim on a link email: longer than a SendGrid call, shorter than the queue's backoff cap.
LINK_EMAIL_LEASE_SECONDS = 60
LINKS_ANSWER = "If this address has a monthly gift with us, a link to manage it is on its way."


class PledgeView(BaseModel):
    """What the manage page shows: no email, no Stripe ids; the card by brand and last 4 digits only."""

    pledge_id: str
    state: PledgeState
    amount: int
    currency: str
    day_of_month: int
    next_charge_on: str | None
    """The next renewal's day; None once canceled."""
    card_brand: str | None
    card_last4: str | None
    cancel_token: str | None
    """A one-time token to cancel with (POST .../cancel), valid CANCEL_TOKEN_SECONDS; None once canceled."""


class LinkRequest(BaseModel):
    email: str


class SentBy(Protocol):
    def send_manage_link(self, email: str, name: str, url: str, pledge_id: str) -> str: ...


class Sends(Protocol):
    def send(self, message: FollowUpMessage) -> None: ...


def view_pledge(pledge_id: str, token: str, *, pledges: PledgeStore, links: PledgeLinks) -> PledgeView:
    pledge, _ = _verified(pledge_id, token, Purpose.MANAGE, pledges, links)
    return _view(pledge, links)


def cancel_pledge(pledge_id: str, token: str, *, pledges: PledgeStore, links: PledgeLinks) -> PledgeView:
    """Cancel with a one-time cancel token: a replayed one is refused (LinkUsed) and changes nothing."""
    pledge, claims = _verified(pledge_id, token, Purpose.CANCEL, pledges, links)
    _not_used(pledge, claims)
    try:
        pledge = pledges.cancel(pledge_id, by="donor", nonce=claims.nonce)
    except ConditionFailed:
        current = pledges.get(pledge_id)
        if current is None:
            raise LinkRefused("This link is not valid. Ask for a new link to manage your monthly gift.") from None
        _not_used(current, claims)
        return _view(current, links)  # canceled meanwhile (another tab, an operator): it is what they wanted
    metrics.add_metric(name="PledgesCanceled", unit=MetricUnit.Count, value=1)
    logger.info("Pledge canceled by the donor", extra={"pledge_id": pledge_id})
    return _view(pledge, links)


def request_manage_links(
    email: str, request_id: str, *, pledges: PledgeStore, identifiers: Identifiers, publisher: Sends
) -> int:
    """Queue a link email for each pledge of this address still running; the number queued. The caller
    answers LINKS_ANSWER whatever it is, so the answer never tells whether the address has a pledge."""
    queued = 0
    for found in pledges.for_donor(identifiers.donor_key(email)):
        if found.state is PledgeState.CANCELED:
            continue
        publisher.send(
            FollowUpMessage(
                type=Step.SEND_RECEIPT,
                donation_id=found.first_donation_id,
                correlation_id=request_id,
                notice="manage_link",
                pledge_id=found.pledge_id,
                request_id=request_id,
            )
        )
        queued += 1
    return queued


def send_manage_link(
    message: FollowUpMessage, *, pledges: PledgeStore, links: PledgeLinks, mailer: SentBy, now: float | None = None
) -> None:
    """Email the pledge's donor a fresh manage link, once per request (claim, send, mark)."""
    if message.pledge_id is None or message.request_id is None:
        raise PermanentStepFailure("send_receipt:manage_link:malformed")
    pledge = pledges.get(message.pledge_id)
    if pledge is None:
        raise PermanentStepFailure("send_receipt:manage_link:pledge_not_found")
    now = time.time() if now is None else now
    if not _claim_link_email(pledges, pledge.pledge_id, message.request_id, now):
        current = pledges.get(pledge.pledge_id) or pledge
        if current.link_email_request == message.request_id and (current.link_email_claim_until or 0) >= now:
            raise RetryableStepFailure("send_receipt:claimed_by_another_consumer")
        logger.info("Link email already sent for this request, or sent recently; not sent again")
        return
    try:
        message_id = mailer.send_manage_link(
            pledge.email, pledge.name, links.manage_url(pledge.pledge_id), pledge.pledge_id
        )
    except RetryableStepFailure:
        _link_email_update(pledges, pledge.pledge_id, message.request_id, {"link_email_claim_until": 0}, [])
        raise
    _link_email_update(
        pledges, pledge.pledge_id, message.request_id, {"link_email_sent_at": int(now)}, ["link_email_claim_until"]
    )
    metrics.add_metric(name="PledgeLinksSent", unit=MetricUnit.Count, value=1)
    logger.info("Manage link sent", extra={"pledge_id": pledge.pledge_id, "sendgrid_message_id": message_id})


def _claim_link_email(pledges: PledgeStore, pledge_id: str, request_id: str, now: float) -> bool:
    no_live_claim = Attr("link_email_claim_until").not_exists() | Attr("link_email_claim_until").lt(int(now))
    not_recent = Attr("link_email_sent_at").not_exists() | Attr("link_email_sent_at").lt(
        int(now) - LINK_EMAIL_EVERY_SECONDS
    )
    # The same request, claimed and then marked sent (the claim removed): a redelivery.
    not_sent = (
        Attr("link_email_request").not_exists()
        | Attr("link_email_request").ne(request_id)
        | Attr("link_email_claim_until").exists()
    )
    try:
        conditional_update(
            pledges.table,
            {"pledge_id": pledge_id},
            {"link_email_request": request_id, "link_email_claim_until": int(now) + LINK_EMAIL_LEASE_SECONDS},
            remove=None,
            condition=no_live_claim & not_recent & not_sent,
            returning="NONE",
        )
    except ConditionFailed:
        return False
    return True


def _link_email_update(
    pledges: PledgeStore, pledge_id: str, request_id: str, values: dict[str, int], remove: list[str]
) -> None:
    try:
        conditional_update(
            pledges.table,
            {"pledge_id": pledge_id},
            values,
            remove=remove,
            condition=Attr("link_email_request").eq(request_id),
            returning="NONE",
        )
    except ConditionFailed:
        logger.warning("Link email claim taken over by another request meanwhile")


def _verified(
    pledge_id: str, token: str, purpose: Purpose, pledges: PledgeStore, links: PledgeLinks
) -> tuple[Pledge, LinkClaims]:
    if not PLEDGE_ID.match(pledge_id):
        raise LinkRefused("This link is not valid. Ask for a new link to manage your monthly gift.")
    claims = links.verify(token, purpose, pledge_id)
    pledge = pledges.get(pledge_id)
    if pledge is None:
        raise LinkRefused("This link is not valid. Ask for a new link to manage your monthly gift.")
    return pledge, claims


def _not_used(pledge: Pledge, claims: LinkClaims) -> None:
    if claims.nonce in pledge.used_link_nonces:
        raise LinkUsed("This link was already used. Open your manage link again to see your monthly gift.")


def _view(pledge: Pledge, links: PledgeLinks) -> PledgeView:
    running = pledge.state is not PledgeState.CANCELED
    return PledgeView(
        pledge_id=pledge.pledge_id,
        state=pledge.state,
        amount=pledge.amount,
        currency=pledge.currency,
        day_of_month=pledge.day_of_month,
        next_charge_on=pledge.next_charge_on if running else None,
        card_brand=pledge.card_brand,
        card_last4=pledge.card_last4,
        cancel_token=links.token(pledge.pledge_id, Purpose.CANCEL, CANCEL_TOKEN_SECONDS) if running else None,
    )
