"""What a donor does with a monthly pledge through a signed link (donations.pledge_links), and the email
that brings them the link.

The API (routes on the charge function) takes the link's token in a JSON body, never in a URL: see
the pledge, cancel it with a one-time cancel token (the donor is emailed a confirmation), ask for a fresh
link by email; the other changes are donations.pledge_changes. Every bad token, and every pledge id that is
not one, gets the same refusal (LinkRefused), so nothing tells which pledges exist (only a link we signed
for a pledge not made yet hears so: PledgeNotMadeYet); "send me a link" answers the same whether or not
the address has a pledge.

The email goes out from the send-receipt function (the one that holds SendGrid's key), from a
message on the receipt queue, claimed on the pledge before sending (``PledgeStore`` link-email fields):
a redelivery sends no second email, and an address gets one every LINK_EMAIL_EVERY_SECONDS at most,
whoever asks.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal, Protocol

from boto3.dynamodb.conditions import Attr
from pydantic import BaseModel

from donations import money
from donations.conditional import ConditionFailed, conditional_update
from donations.errors import (
    LinkRefused,
    LinkUsed,
    NothingToAuthenticate,
    PermanentStepFailure,
    PledgeNotMadeYet,
    RetryableStepFailure,
    donor_decline_message,
)
from donations.followups import FOLLOWUPS_CLAIM_SECONDS, publish_follow_ups
from donations.identifiers import Identifiers
from donations.models import Donation, DonationStatus, FollowUpMessage, Step
from donations.observability import MetricUnit, logger, metrics
from donations.pledge_links import CANCEL_TOKEN_SECONDS, LinkClaims, PledgeLinks, Purpose
from donations.pledges import DunningNotice, Pledge, PledgeState, PledgeStore, dunning_notice_key
from donations.ports import IntentSnapshot
from donations.store import DonationStore

PLEDGE_ID = re.compile(r"^pl_[0-9a-f]{24}$")
# One link email per pledge this often at most: a stranger who knows the address cannot flood its inbox.
LINK_EMAIL_EVERY_SECONDS = 600
# The sender's claim on an email: longer than a SendGrid call, shorter than the queue's backoff cap.
EMAIL_LEASE_SECONDS = 60
LINKS_ANSWER = "If this address has a monthly gift with us, a link to manage it is on its way."
# A donor's cancellation whose confirmation was never queued (the function stopped between the cancel's write
# and the queue) is queued when the donor opens the link again this soon after; older ones are left alone.
CONFIRMATION_REPAIR_SECONDS = 3600


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
    action_tokens: dict[str, str] = {}
    """One-time tokens (valid CANCEL_TOKEN_SECONDS) for the changes the pledge's state allows, by route:
    ``amount``, ``skip``, ``pause``, ``resume`` (donations.pledge_changes)."""


class OnSession(Protocol):
    """What the authentication page needs from Stripe (donations.payments.StripePayments)."""

    def lookup(self, payment_intent_id: str) -> IntentSnapshot: ...

    def confirm_on_session(self, payment_intent_id: str, payment_method_id: str) -> IntentSnapshot: ...


class SentBy(Protocol):
    @property
    def org_name(self) -> str: ...

    def send_pledge_email(self, email: str, subject: str, text: str, pledge_id: str) -> str: ...


class Authentication(BaseModel):
    """Where a renewal the bank wants authenticated stands, for the page the emailed link opens."""

    status: Literal["requires_action", "succeeded"]
    client_secret: str | None = None
    """With requires_action: for Stripe.js ``handleNextAction`` in the page (never emailed, never stored)."""
    amount: int
    currency: str
    period: str


class Sends(Protocol):
    def send(self, message: FollowUpMessage) -> None: ...


def view_pledge(
    pledge_id: str,
    token: str,
    *,
    pledges: PledgeStore,
    links: PledgeLinks,
    publisher: Sends | None = None,
    request_id: str = "",
) -> PledgeView:
    pledge, _ = verified_link(pledge_id, token, Purpose.MANAGE, pledges, links)
    if publisher is not None and _confirmation_owed(pledge, time.time()):
        # The function stopped between the cancel's write and the queue: the donor's next look queues it.
        _queue_cancel_confirmation(pledge, publisher, request_id)
    return view_of(pledge, links)


def cancel_pledge(
    pledge_id: str, token: str, *, pledges: PledgeStore, links: PledgeLinks, publisher: Sends, request_id: str = ""
) -> PledgeView:
    """Cancel with a one-time cancel token: a replayed one is refused (LinkUsed) and changes nothing. The donor
    gets an email confirming it (``send_cancel_confirmation``, once per cancellation)."""
    pledge, claims = verified_link(pledge_id, token, Purpose.CANCEL, pledges, links)
    _not_used(pledge, claims)
    try:
        pledge = pledges.cancel(pledge_id, by="donor", nonce=claims.nonce)
    except ConditionFailed:
        current = pledges.get(pledge_id)
        if current is None:
            raise LinkRefused("This link is not valid. Ask for a new link to manage your monthly gift.") from None
        _not_used(current, claims)
        return view_of(current, links)  # canceled meanwhile (another tab, an operator): it is what they wanted
    metrics.add_metric(name="PledgesCanceled", unit=MetricUnit.Count, value=1)
    logger.info("Pledge canceled by the donor", extra={"pledge_id": pledge_id})
    _queue_cancel_confirmation(pledge, publisher, request_id)
    return view_of(pledge, links)


def _queue_cancel_confirmation(pledge: Pledge, publisher: Sends, request_id: str) -> None:
    """The message that has the send-receipt function confirm this cancellation (its ``canceled_at``), once."""
    publisher.send(
        FollowUpMessage(
            type=Step.SEND_RECEIPT,
            donation_id=pledge.first_donation_id,
            correlation_id=request_id,
            mail="canceled",
            pledge_id=pledge.pledge_id,
            request_id=pledge.canceled_at,
        )
    )


def _confirmation_owed(pledge: Pledge, now: float) -> bool:
    """The donor canceled in the last CONFIRMATION_REPAIR_SECONDS and no sender has claimed its email yet (a
    second message meanwhile is harmless: the email is claimed once)."""
    if pledge.state is not PledgeState.CANCELED or pledge.canceled_by != "donor" or not pledge.canceled_at:
        return False
    canceled = datetime.fromisoformat(pledge.canceled_at).timestamp()
    return pledge.cancel_email_request != pledge.canceled_at and now - canceled < CONFIRMATION_REPAIR_SECONDS


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
                mail="manage_link",
                pledge_id=found.pledge_id,
                request_id=request_id,
            )
        )
        queued += 1
    return queued


def send_pledge_mail(
    message: FollowUpMessage, *, pledges: PledgeStore, links: PledgeLinks, mailer: SentBy, locale: str
) -> bool:
    """Send the pledge email a receipt-queue message asks for (a manage link, an authentication request, a
    dunning notice); False if it asks for none (a receipt or a refund notice: donations.steps)."""
    if message.mail == "manage_link":
        send_manage_link(message, pledges=pledges, links=links, mailer=mailer)
    elif message.mail == "authenticate":
        send_authentication_request(message, pledges=pledges, links=links, mailer=mailer, locale=locale)
    elif message.mail == "dunning":
        send_dunning_notice(message, pledges=pledges, links=links, mailer=mailer, locale=locale)
    elif message.mail == "canceled":
        send_cancel_confirmation(message, pledges=pledges, mailer=mailer, locale=locale)
    else:
        return False
    return True


def send_manage_link(
    message: FollowUpMessage, *, pledges: PledgeStore, links: PledgeLinks, mailer: SentBy, now: float | None = None
) -> None:
    """Email the pledge's donor a fresh manage link, once per request, one every few minutes at most."""
    pledge, request_id = _noticed(message, pledges)

    def text() -> str:
        return (
            f"Hello {pledge.name},\n\nHere is your link to see your monthly gift to {mailer.org_name}, change its "
            "card or cancel it:"
            f"\n\n{links.manage_url(pledge.pledge_id)}\n\n"
            "It works for 14 days. If you did not ask for it, you can ignore this email.\n"
        )

    _send_once(pledges, pledge, "link_email", request_id, now, every_seconds=LINK_EMAIL_EVERY_SECONDS,
               send=lambda: mailer.send_pledge_email(pledge.email, f"Your monthly gift to {mailer.org_name}", text(),
                                                     pledge.pledge_id))  # fmt: skip


def send_authentication_request(
    message: FollowUpMessage,
    *,
    pledges: PledgeStore,
    links: PledgeLinks,
    mailer: SentBy,
    locale: str = "en_US",
    now: float | None = None,
) -> None:
    """Email the donor a link to authenticate a renewal their bank wants them to confirm, once per renewal."""
    pledge, donation_id = _noticed(message, pledges)

    def text() -> str:
        return (
            f"Hello {pledge.name},\n\nYour bank asks you to confirm this month's gift of "
            f"{money.format_money(pledge.amount, pledge.currency, locale)} to {mailer.org_name} before it is "
            f"charged. Nothing has been charged yet. Please confirm it here:\n\n"
            f"{links.authenticate_url(pledge.pledge_id, donation_id)}\n\n"
            "The link works for 5 days.\n"
        )

    _send_once(pledges, pledge, "auth_email", donation_id, now, every_seconds=None,
               send=lambda: mailer.send_pledge_email(pledge.email, "Please confirm your monthly gift", text(),
                                                     pledge.pledge_id))  # fmt: skip


def send_dunning_notice(
    message: FollowUpMessage,
    *,
    pledges: PledgeStore,
    links: PledgeLinks,
    mailer: SentBy,
    locale: str = "en_US",
    now: float | None = None,
) -> None:
    """Tell the donor a renewal try failed: when it is tried again, or that the gift stopped (donations.dunning);
    one email per failed try (``dunning_notice_key``), whatever the number of messages."""
    pledge, key = _noticed(message, pledges)
    if pledge.dunning_notice_key != key:
        if pledge.state is PledgeState.ACTIVE and dunning_notice_key(pledge) == key:
            # Queued just before the renewal records the failure on the pledge: look again once it has.
            raise RetryableStepFailure("send_receipt:dunning_notice_not_recorded_yet")
        logger.info("Dunning notice overtaken by a later one; not sent", extra={"notice_key": key})
        return
    if (pledge.dunning_notice, pledge.state) not in _STILL_TRUE:
        # Canceled, charged or authenticated since: the email would no longer be true.
        logger.info("Dunning notice no longer true; not sent", extra={"state": pledge.state, "notice_key": key})
        return
    subject, text = _dunning_email(pledge, links, mailer.org_name, locale)
    _send_once(pledges, pledge, "dunning_email", key, now, every_seconds=None,
               send=lambda: mailer.send_pledge_email(pledge.email, subject, text, pledge.pledge_id))  # fmt: skip


def send_cancel_confirmation(
    message: FollowUpMessage, *, pledges: PledgeStore, mailer: SentBy, locale: str = "en_US", now: float | None = None
) -> None:
    """Confirm to the donor that their monthly gift is canceled: once per cancellation (its ``canceled_at``),
    and not at all if it runs again meanwhile (an operator resumed it)."""
    pledge, canceled_at = _noticed(message, pledges)
    if pledge.state is not PledgeState.CANCELED or pledge.canceled_at != canceled_at:
        logger.info("Cancellation no longer true; not confirmed", extra={"state": pledge.state})
        return
    gift = money.format_money(pledge.amount, pledge.currency, locale)
    text = (
        f"Hello {pledge.name},\n\nYour monthly gift of {gift} to {mailer.org_name} is canceled, as you asked on "
        f"{money.format_calendar_day(canceled_at[:10], locale)}. You will not be charged again.\n\n"
        "Thank you for your support so far. To give again, make a new gift on our donation page. If you did not "
        "cancel it, please reply to this email.\n"
    )
    _send_once(pledges, pledge, "cancel_email", canceled_at, now, every_seconds=None,
               send=lambda: mailer.send_pledge_email(pledge.email, "Your monthly gift is canceled", text,
                                                     pledge.pledge_id))  # fmt: skip


_STILL_TRUE = {(DunningNotice.RETRY_SCHEDULED, PledgeState.ACTIVE), (DunningNotice.LAPSED, PledgeState.LAPSED)}


def _dunning_email(pledge: Pledge, links: PledgeLinks, org_name: str, locale: str) -> tuple[str, str]:
    """The subject and text: the donor-safe reason only (never the issuer's code), no card data."""
    gift = money.format_money(pledge.amount, pledge.currency, locale)
    reason = donor_decline_message(pledge.last_decline_code)
    hello = f"Hello {pledge.name},\n\nWe could not charge this month's gift of {gift} to {org_name}. {reason}\n\n"
    link = f"{links.manage_url(pledge.pledge_id)}\n\nThe link works for 14 days.\n"
    if pledge.dunning_notice is DunningNotice.LAPSED:
        return "Your monthly gift has stopped", (
            f"{hello}Your monthly gift has stopped and will not be charged again. Thank you for your support so "
            "far. To start it again, give it a card that works through this link (or make a new monthly gift on "
            f"our donation page):\n\n{link}"
        )
    retry_on = money.format_calendar_day(pledge.retry_on or pledge.next_charge_on, locale)
    return "Your monthly gift could not be charged", (
        f"{hello}Nothing was charged. We will try again on {retry_on}. To give it another card, or to see or "
        f"cancel your monthly gift, open this link:\n\n{link}"
    )


def start_authentication(
    pledge_id: str, token: str, *, pledges: PledgeStore, links: PledgeLinks, store: DonationStore, payments: OnSession,
    publisher: Any,
) -> Authentication:  # fmt: skip
    """The page an authentication link opens: confirm the renewal's PaymentIntent on-session, and hand the
    page its client_secret for Stripe.js to show the bank's challenge (or record it paid, if it is)."""
    pledge, donation, intent = _awaited(pledge_id, token, pledges, links, store, payments)
    if intent.status == "requires_payment_method" and donation.status is DonationStatus.REQUIRES_ACTION:
        intent = payments.confirm_on_session(intent.id, pledge.payment_method_id)
    return _authentication(pledge, donation, intent, pledges=pledges, store=store, publisher=publisher)


def finish_authentication(
    pledge_id: str, token: str, *, pledges: PledgeStore, links: PledgeLinks, store: DonationStore, payments: OnSession,
    publisher: Any,
) -> Authentication:  # fmt: skip
    """The page's return after Stripe.js: the renewal recorded paid (with its receipt) if Stripe says so."""
    pledge, donation, intent = _awaited(pledge_id, token, pledges, links, store, payments)
    return _authentication(pledge, donation, intent, pledges=pledges, store=store, publisher=publisher)


def _awaited(
    pledge_id: str, token: str, pledges: PledgeStore, links: PledgeLinks, store: DonationStore, payments: OnSession
) -> tuple[Pledge, Donation, IntentSnapshot]:
    pledge, claims = verified_link(pledge_id, token, Purpose.AUTHENTICATE, pledges, links)
    donation = store.get(claims.subject) if claims.subject else None
    if donation is None or donation.metadata.get("pledge_id") != pledge.pledge_id or not donation.payment_intent_id:
        raise LinkRefused("This link is not valid. Ask for a new link to manage your monthly gift.")
    if donation.status not in (DonationStatus.REQUIRES_ACTION, DonationStatus.SUCCEEDED):
        raise NothingToAuthenticate("This gift no longer waits for you: nothing was charged.")
    return pledge, donation, payments.lookup(donation.payment_intent_id)


def _authentication(
    pledge: Pledge,
    donation: Donation,
    intent: IntentSnapshot,
    *,
    pledges: PledgeStore,
    store: DonationStore,
    publisher: Any,
) -> Authentication:
    # The renewal's own period (the pledge went on to the next one while it waited).
    period = donation.metadata.get("renewal_period") or pledge.period
    answer = {"amount": donation.amount, "currency": donation.currency, "period": period}
    if intent.status == "succeeded":
        _record_paid(pledge, donation, intent, pledges=pledges, store=store, publisher=publisher)
        return Authentication(status="succeeded", **answer)
    if intent.status == "requires_action":
        return Authentication(status="requires_action", client_secret=intent.client_secret, **answer)
    raise NothingToAuthenticate("This gift can no longer be confirmed: nothing was charged.")


def _record_paid(
    pledge: Pledge, donation: Donation, intent: IntentSnapshot, *, pledges: PledgeStore, store: DonationStore,
    publisher: Any,
) -> None:  # fmt: skip
    """The charge on the donation (unless the webhook recorded it first), its receipt, the pledge moved on."""
    if donation.status is not DonationStatus.SUCCEEDED:
        try:
            donation = store.mark_charged(
                donation.donation_id,
                intent.id,
                intent.payment_method_id,
                claim_followups_seconds=FOLLOWUPS_CLAIM_SECONDS,
            )
            publish_follow_ups(donation, store, publisher, donation.correlation_id, claimed=True)
        except ConditionFailed:
            donation = store.require(donation.donation_id)
    if not donation.followups_published:
        publish_follow_ups(donation, store, publisher, donation.correlation_id)
    try:
        pledges.record_authenticated(pledge, donation.donation_id)
    except ConditionFailed:
        return  # recorded already (the page's return after the webhook, or twice)
    metrics.add_metric(name="RenewalsAuthenticated", unit=MetricUnit.Count, value=1)
    logger.info("Renewal authenticated by the donor", extra={"donation_id": donation.donation_id})


def _noticed(message: FollowUpMessage, pledges: PledgeStore) -> tuple[Pledge, str]:
    if message.pledge_id is None or message.request_id is None:
        raise PermanentStepFailure(f"send_receipt:{message.mail}:malformed")
    pledge = pledges.get(message.pledge_id)
    if pledge is None:
        raise PermanentStepFailure(f"send_receipt:{message.mail}:pledge_not_found")
    return pledge, message.request_id


def _send_once(
    pledges: PledgeStore,
    pledge: Pledge,
    kind: str,
    key: str,
    now: float | None,
    *,
    every_seconds: int | None,
    send: Callable[[], str],
) -> None:
    """Claim the email on the pledge (``{kind}_request``, ``_claim_until``, ``_sent_at``), send, mark it sent."""
    now = time.time() if now is None else now
    if not _claim_email(pledges, pledge.pledge_id, kind, key, now, every_seconds):
        current = (pledges.get(pledge.pledge_id) or pledge).model_dump()
        if current.get(f"{kind}_request") == key and (current.get(f"{kind}_claim_until") or 0) >= now:
            raise RetryableStepFailure("send_receipt:claimed_by_another_consumer")
        logger.info("Email already sent for this request, or sent recently; not sent again", extra={"email": kind})
        return
    try:
        message_id = send()
    except RetryableStepFailure:
        _email_update(pledges, pledge.pledge_id, kind, key, {f"{kind}_claim_until": 0}, [])
        raise
    _email_update(pledges, pledge.pledge_id, kind, key, {f"{kind}_sent_at": int(now)}, [f"{kind}_claim_until"])
    metrics.add_metric(name="PledgeEmailsSent", unit=MetricUnit.Count, value=1)
    logger.info("Pledge email sent", extra={"email": kind, "sendgrid_message_id": message_id})


def _claim_email(
    pledges: PledgeStore, pledge_id: str, kind: str, key: str, now: float, every_seconds: int | None
) -> bool:
    claim_until, sent_at, request = f"{kind}_claim_until", f"{kind}_sent_at", f"{kind}_request"
    condition = Attr(claim_until).not_exists() | Attr(claim_until).lt(int(now))
    if every_seconds is not None:
        condition = condition & (Attr(sent_at).not_exists() | Attr(sent_at).lt(int(now) - every_seconds))
    # The same request, claimed and then marked sent (the claim removed): a redelivery.
    condition = condition & (Attr(request).not_exists() | Attr(request).ne(key) | Attr(claim_until).exists())
    try:
        conditional_update(
            pledges.table,
            {"pledge_id": pledge_id},
            {request: key, claim_until: int(now) + EMAIL_LEASE_SECONDS},
            remove=None,
            condition=condition,
            returning="NONE",
        )
    except ConditionFailed:
        return False
    return True


def _email_update(
    pledges: PledgeStore, pledge_id: str, kind: str, key: str, values: dict[str, int], remove: list[str]
) -> None:
    try:
        conditional_update(
            pledges.table,
            {"pledge_id": pledge_id},
            values,
            remove=remove,
            condition=Attr(f"{kind}_request").eq(key),
            returning="NONE",
        )
    except ConditionFailed:
        logger.warning("Email claim taken over by another request meanwhile", extra={"email": kind})


def verified_link(
    pledge_id: str, token: str, purpose: Purpose, pledges: PledgeStore, links: PledgeLinks
) -> tuple[Pledge, LinkClaims]:
    if not PLEDGE_ID.match(pledge_id):
        raise LinkRefused("This link is not valid. Ask for a new link to manage your monthly gift.")
    claims = links.verify(token, purpose, pledge_id)
    pledge = pledges.get(pledge_id)
    if pledge is None:
        raise PledgeNotMadeYet(
            "Your monthly gift is still being set up: try this link again in a few minutes. "
            "If it still does not open, reply to your receipt and we will help."
        )
    return pledge, claims


def _not_used(pledge: Pledge, claims: LinkClaims) -> None:
    if claims.nonce in pledge.used_link_nonces:
        raise LinkUsed("This link was already used. Open your manage link again to see your monthly gift.")


# The donor's changes each state allows (the card and cancel are offered to every running pledge).
_CHANGES = {
    PledgeState.ACTIVE: (Purpose.AMOUNT, Purpose.SKIP, Purpose.PAUSE),
    PledgeState.PAUSED: (Purpose.AMOUNT, Purpose.RESUME),
}


def view_of(pledge: Pledge, links: PledgeLinks) -> PledgeView:
    running = pledge.state is not PledgeState.CANCELED
    changes = [
        purpose
        for purpose in _CHANGES.get(pledge.state, ())
        if purpose is not Purpose.SKIP or pledge.renewal_try == 1  # no skipping a month whose retry is due
    ]
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
        action_tokens={p.value: links.token(pledge.pledge_id, p, CANCEL_TOKEN_SECONDS) for p in changes},
    )
