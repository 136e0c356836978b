"""Monthly pledges: the record, its schedule, and the one conditional write that moves it on.

A pledge lives in the Pledges table of its own (not the Donations table): its items have another
shape and lifecycle, and every reader of the Donations table (the reconciler's index, the
operators' donor and day indexes, scans in tools) takes each item there for a donation.

Finding due pledges without a scan: ``due_on-index`` is keyed by ``due_on``, the day (``YYYY-MM-DD``)
the next renewal is due, and is sparse: only an active pledge carries ``due_on``. The schedule
queries one partition per day, from a look-back window up to today (:func:`due_days`), so a run that
was missed is made up by the next one. A pledge leaves a day's partition by the very write that
records its renewal (:meth:`PledgeStore.advance`), which is conditional on the period it charged:
a duplicate message, a replayed schedule or a second consumer cannot move it twice, and a pledge
never leaves a period it did not finish.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from donations.conditional import ConditionFailed, condition_failed, conditional_update
from donations.dunning import CURED_BY_UPDATED_CARD, MAX_TRIES
from donations.models import MAX_DAY_OF_MONTH, Donation, utc_now
from donations.ports import CardSetup, SavedCard, UpdatedCard
from donations.redaction import mask_email

DUE_INDEX = "due_on-index"
# Sparse: only a pledge whose renewal failed carries ``attention`` (operators list them: donations-ops pledges list).
ATTENTION_INDEX = "attention-index"
# Keys only, by the saved card's PaymentMethod id: the pledges a card network's update of that card is about
# (Stripe's payment_method.automatically_updated names the PaymentMethod, not the pledge).
PAYMENT_METHOD_INDEX = "payment_method_id-index"
# Keys only, by the donor's keyed donor key (donations.identifiers; never the address): "send me a link".
DONOR_INDEX = "donor-index"
NEEDS_ATTENTION = "needs_attention"
# The attention index's other partition: pledges that lapsed (dunning ended, or a hard decline).
LAPSED = "lapsed"
# How far back a schedule run looks for pledges still due: a schedule that was down this long loses nothing.
LOOK_BACK_DAYS = 35
# A pledge queued this recently for its period is not queued again by the next runs: its message is on its
# way (a renewal is retried for well under an hour before the DLQ). Past this, it is sent again (the message
# may be lost or parked), so a period is late at worst, never skipped.
REQUEUE_AFTER = timedelta(hours=6)

Period = Annotated[str, StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]
"""A calendar month, ``YYYY-MM``: the unit a pledge is charged once in."""


class PledgeState(StrEnum):
    ACTIVE = "active"
    # Pledges written before a renewal waiting for the donor kept them active (``awaiting_donor``): the bank
    # asked the donor to authenticate a renewal; not charged again until an operator or the donor acts.
    # ``last_failure`` says what happened and what to do. No write makes it any more.
    NEEDS_ATTENTION = "needs_attention"
    CANCELED = "canceled"
    # Dunning ended without a charge (the last try failed, or a hard decline): never charged again on
    # its own; ``last_failure`` says why. Operators see it (donations-ops pledges list).
    LAPSED = "lapsed"
    # The donor paused it on the manage page: out of the due index (the schedule never queues it) until they
    # resume it, due then on its next charge day from that day on; the months in between are never charged.
    PAUSED = "paused"


class DunningNotice(StrEnum):
    """What the donor should hear about the pledge's last failed try (donations.dunning); the pledge
    records it, the donor emails are sent from it, once per ``dunning_notice_key``."""

    RETRY_SCHEDULED = "retry_scheduled"
    LAPSED = "lapsed"


class Pledge(BaseModel):
    """A row of the Pledges table. It never holds card numbers: only Stripe's ids for the saved card."""

    model_config = ConfigDict(extra="ignore")

    pledge_id: str
    state: PledgeState
    amount: int
    currency: str
    email: str
    email_masked: str
    donor_key: str | None = None
    """The first donation's keyed donor key (donations.identifiers): each renewal's, so a donor's gifts
    are found together and the renewal function needs no identifier secret of its own."""
    name: str
    customer_id: str
    payment_method_id: str
    card_brand: str | None = None
    card_last4: str | None = None
    """The saved card's brand and last 4 digits, for the donor's manage page (never the number)."""
    day_of_month: int = Field(ge=1, le=MAX_DAY_OF_MONTH)
    next_charge_on: str
    """The day the next renewal is due (``YYYY-MM-DD``); its month is the period it charges."""
    due_on: str | None = None
    """``next_charge_on`` while the pledge is active (the sparse due index's key), else absent."""
    first_donation_id: str
    last_period: str | None = None
    last_donation_id: str | None = None
    renewals: int = 0
    last_failure: str | None = None
    last_failure_period: str | None = None
    queued_for: str | None = None
    """The due day (one period's one try) the schedule last queued a renewal for, and when (``mark_queued``)."""
    queued_at: str | None = None
    attention: str | None = None
    """``needs_attention`` or ``lapsed`` while a failed renewal waits for someone (the attention index's key)."""
    attention_since: str | None = None
    renewal_try: int = 1
    """Which try of the current period is due next: 1 the charge day's, then the retries (donations.dunning)."""
    retry_on: str | None = None
    """While a retry is due: its day (also ``due_on``, so the schedule finds it); else absent."""
    last_decline_code: str | None = None
    """The donor-safe decline code of the last failed try (as on its donation)."""
    dunning_notice: DunningNotice | None = None
    dunning_notice_key: str | None = None
    """``<period>#<try>`` of the failed try the notice is about: one donor email per key."""
    lapsed_at: str | None = None
    canceled_at: str | None = None
    canceled_by: str | None = None
    """Who canceled it: ``donor`` (the manage page) or ``operator`` (donations-ops pledges cancel)."""
    used_link_nonces: list[str] = Field(default_factory=list)
    """The nonces of the one-time link tokens used on it (donations.pledge_links): a replay changes nothing."""
    link_email_request: str | None = None
    """The last "send me a link" request whose email is sent or being sent, the sender's lease, and when it
    went (donations.pledge_manage): a redelivery sends no second email; one every 10 minutes at most."""
    link_email_claim_until: int | None = None
    link_email_sent_at: int | None = None
    awaiting_donor: str | None = None
    """While the bank wants the donor to authenticate a renewal (``authentication_required``): that renewal's
    donation, which the donor finishes through the emailed link. The pledge stays active, on to its next period
    (Stripe's "charging saved cards": the customer completes *that* PaymentIntent; next month is a new charge);
    ``attention`` is ``needs_attention`` meanwhile, so operators, the report and the console see it waiting."""
    awaiting_period: str | None = None
    """The period of that renewal."""
    auth_email_request: str | None = None
    """The same for the email asking the donor to authenticate a renewal (its donation id): once per renewal."""
    auth_email_claim_until: int | None = None
    auth_email_sent_at: int | None = None
    dunning_email_request: str | None = None
    """The same for the dunning email (its ``dunning_notice_key``): once per failed try."""
    dunning_email_claim_until: int | None = None
    dunning_email_sent_at: int | None = None
    canceled_reason: str | None = None
    """Why the pledge stopped: ``dispute:<reason>:<dispute id>`` when the donor disputed one of its gifts."""
    card_exp_month: int | None = None
    card_exp_year: int | None = None
    """The saved card's expiry, as the card network last updated it (``record_updated_card``); absent before."""
    card_details_as_of: int | None = None
    """The ``created`` (Unix seconds) of the network update whose details the pledge shows: an older update,
    delivered late, is not recorded over a newer one."""
    card_setup_id: str | None = None
    """The SetupIntent that saved the card the pledge charges now, when the donor gave a new one through the
    manage page (``record_new_card``; recorded once, whoever reports it first), and when."""
    card_updated_at: str | None = None
    cancel_email_request: str | None = None
    """The donor's cancellation email (its key: ``canceled_at`` of the cancellation it confirms), the sender's
    lease, when it went: once per cancellation."""
    cancel_email_claim_until: int | None = None
    cancel_email_sent_at: int | None = None
    paused_at: str | None = None
    """When the donor paused it (state ``paused``); removed when they resume it."""
    donor_changes: list[str] = Field(default_factory=list)
    """What the donor changed on the manage page, oldest first, for operators (``<time> <what>``, such as
    ``2027-01-03T10:00:00Z amount 2500 -> 4000``; donations-ops pledges show)."""
    created_at: str
    updated_at: str

    @property
    def period(self) -> str:
        return self.next_charge_on[:7]


class DonorPledge(BaseModel):
    """A pledge as the donor index projects it."""

    model_config = ConfigDict(extra="ignore")

    pledge_id: str
    state: PledgeState
    first_donation_id: str


class RenewalMessage(BaseModel):
    """The body of a renewal message: ids only, the consumer reads the pledge."""

    model_config = ConfigDict(extra="ignore")

    schema_version: Literal[1] = 1
    type: Literal["renew"] = "renew"
    pledge_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    period: Period
    renewal_try: int = Field(default=1, ge=1, le=MAX_TRIES)
    """The period's try this message is for (the pledge's ``renewal_try`` when it was queued)."""


def pledge_id_for(first_donation_id: str) -> str:
    """The pledge a monthly gift starts: derived from its donation, so every delivery of the tokenize
    step names the same pledge and a redelivery creates no second one."""
    return "pl_" + hashlib.sha256(f"pledge:{first_donation_id}".encode()).hexdigest()[:24]


def pledge_of(donation: Donation) -> str | None:
    """The pledge a monthly gift belongs to: a renewal names it; a first gift (its day of month set) will have
    the pledge its own id makes, which the tokenize step may still be making when its receipt is sent."""
    if "pledge_id" in donation.metadata:
        return donation.metadata["pledge_id"]
    return pledge_id_for(donation.donation_id) if donation.pledge_day_of_month is not None else None


def renewal_identity(pledge_id: str, period: str, renewal_try: int = 1) -> str:
    """One try of one pledge's one period (the first try's is the period's alone, as before retries)."""
    return f"renewal:{pledge_id}:{period}" + (f":try{renewal_try}" if renewal_try > 1 else "")


def renewal_donation_id(pledge_id: str, period: str, renewal_try: int = 1) -> str:
    """The donation of one try of one pledge's one period: the same every time, so every path finds the
    same record (and its Stripe idempotency key). Shaped like every donation id (donations.charge.DONATION_ID)."""
    digest = hashlib.sha256(renewal_identity(pledge_id, period, renewal_try).encode()).digest()
    return "don_" + base64.b32encode(digest).decode().rstrip("=").lower()[:26]


def charge_day(day_of_month: int, month: date) -> date:
    return month.replace(day=min(day_of_month, calendar.monthrange(month.year, month.month)[1]))


def first_charge_on(day_of_month: int, today: date) -> date:
    """The first renewal: the chosen day of next month (this month's gift was the first, on-session)."""
    next_month = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
    return charge_day(day_of_month, next_month)


def following_charge_on(day_of_month: int, charged_on: str) -> str:
    this_month = date.fromisoformat(charged_on).replace(day=1)
    return charge_day(day_of_month, (this_month + timedelta(days=32)).replace(day=1)).isoformat()


def due_days(today: date, look_back_days: int = LOOK_BACK_DAYS) -> list[str]:
    """The due index's partitions a schedule run reads, oldest first."""
    return [(today - timedelta(days=back)).isoformat() for back in range(look_back_days, -1, -1)]


def resume_on(pledge: Pledge, today: date) -> str:
    """The first charge day on or after ``today`` whose period the pledge has neither charged nor failed."""
    # The first gift paid the month the pledge was made in.
    done = {pledge.created_at[:7], pledge.last_period, pledge.last_failure_period}
    candidate = charge_day(pledge.day_of_month, today.replace(day=1))
    while candidate < today or candidate.isoformat()[:7] in done:
        candidate = charge_day(pledge.day_of_month, (candidate.replace(day=1) + timedelta(days=32)).replace(day=1))
    return candidate.isoformat()


_WAITING = ["awaiting_donor", "awaiting_period", "attention", "attention_since"]


def waits_for(pledge: Pledge, donation_id: str) -> bool:
    """Does the pledge wait for the donor to authenticate this renewal?"""
    if pledge.state is PledgeState.NEEDS_ATTENTION:  # written before waiting pledges stayed active
        return pledge.last_donation_id == donation_id
    return pledge.awaiting_donor == donation_id and pledge.state is not PledgeState.CANCELED


def cured_by(pledge: Pledge, card: UpdatedCard) -> bool:
    """Does the network's update of the card cure the pledge's lapse? Only a lapse on a decline of the card's
    own details (dunning.CURED_BY_UPDATED_CARD) on this very card, declined before the update was made (an
    update older than the decline, delivered late, did not cure it: the card was declined after it)."""
    if pledge.last_decline_code not in CURED_BY_UPDATED_CARD or pledge.payment_method_id != card.payment_method_id:
        return False
    lapsed_at = pledge.lapsed_at or pledge.updated_at
    return int(datetime.fromisoformat(lapsed_at).timestamp()) <= card.as_of


def pledge_from_donation(donation: Donation, day_of_month: int, today: date, card: SavedCard | None = None) -> Pledge:
    """A pledge renewing a charged donation monthly on its saved card (Customer + PaymentMethod from
    the tokenize step: ``card``, or the donation's once recorded). Its first renewal is due on the
    chosen day of the month after ``today``. Raises ValueError if there is no saved card to charge again."""
    customer_id = card.customer_id if card else donation.customer_id
    payment_method_id = card.payment_method_id if card else donation.payment_method_id
    if not (customer_id and payment_method_id):
        raise ValueError(f"donation {donation.donation_id} has no saved card (Customer and PaymentMethod)")
    if not 1 <= day_of_month <= MAX_DAY_OF_MONTH:
        raise ValueError(f"day_of_month must be 1 to {MAX_DAY_OF_MONTH}")
    stamp = utc_now()
    next_on = first_charge_on(day_of_month, today).isoformat()
    return Pledge(
        pledge_id=pledge_id_for(donation.donation_id),
        state=PledgeState.ACTIVE,
        amount=donation.amount,
        currency=donation.currency,
        email=donation.email,
        email_masked=mask_email(donation.email),
        donor_key=donation.donor_key,
        name=donation.name,
        customer_id=customer_id,
        payment_method_id=payment_method_id,
        card_brand=card.brand if card else donation.card_brand,
        card_last4=card.last4 if card else donation.card_last4,
        day_of_month=day_of_month,
        next_charge_on=next_on,
        due_on=next_on,
        first_donation_id=donation.donation_id,
        created_at=stamp,
        updated_at=stamp,
    )


class PledgeStore:
    def __init__(self, table: Any) -> None:
        # A boto3 DynamoDB Table resource for the Pledges table.
        self._table = table

    def create(self, pledge: Pledge) -> Pledge:
        try:
            self._table.put_item(
                Item=pledge.model_dump(mode="json", exclude_none=True),
                ConditionExpression=Attr("pledge_id").not_exists(),
            )
        except ClientError as error:
            if condition_failed(error):
                raise ConditionFailed(pledge.pledge_id) from error
            raise
        return pledge

    def create_once(self, pledge: Pledge) -> bool:
        """Write the pledge unless it exists: False (nothing written) when an earlier delivery made it."""
        try:
            self.create(pledge)
        except ConditionFailed:
            return False
        return True

    def get(self, pledge_id: str) -> Pledge | None:
        item = self._table.get_item(Key={"pledge_id": pledge_id}, ConsistentRead=True).get("Item")
        return Pledge.model_validate(item) if item else None

    def due_on(self, day: str) -> list[str]:
        """The ids of the active pledges due on ``day``: a query of the sparse due index, keys only."""
        return self._ids(DUE_INDEX, Key("due_on").eq(day))

    def _ids(self, index: str, key: Any) -> list[str]:
        """The pledge ids a keys-only index holds under ``key``, every page of them."""
        arguments: dict[str, Any] = {"IndexName": index, "KeyConditionExpression": key}
        found: list[str] = []
        while True:
            page = self._table.query(**arguments)
            found += [str(item["pledge_id"]) for item in page["Items"]]
            if "LastEvaluatedKey" not in page:
                return found
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def mark_queued(self, pledge_id: str, day: str, now: datetime) -> RenewalMessage | None:
        """Take the right to queue the renewal due on ``day`` now: its message (the pledge's period and
        try), or None if a run queued it in the last REQUEUE_AFTER, or the pledge is no longer due that
        day (renewed, failed, changed since the index was read). A due day names one period's one try
        (each try is due on a later day), so it is the mark."""
        stale = (now - REQUEUE_AFTER).isoformat()
        not_queued = Attr("queued_for").not_exists() | Attr("queued_for").ne(day) | Attr("queued_at").lt(stale)
        try:
            item = conditional_update(
                self._table,
                {"pledge_id": pledge_id},
                {"queued_for": day, "queued_at": now.isoformat()},
                remove=None,
                condition=Attr("state").eq(PledgeState.ACTIVE.value) & Attr("due_on").eq(day) & not_queued,
                returning="ALL_NEW",
            )
        except ConditionFailed:
            return None
        pledge = Pledge.model_validate(item)
        return RenewalMessage(pledge_id=pledge_id, period=pledge.period, renewal_try=pledge.renewal_try)

    def needing_attention(self, limit: int, attention: str = NEEDS_ATTENTION) -> list[Pledge]:
        """Pledges whose last renewal failed (``attention``: ``needs_attention``, or ``lapsed`` for those
        whose dunning ended), oldest first (a query of the sparse attention index's partition)."""
        page = self._table.query(
            IndexName=ATTENTION_INDEX, KeyConditionExpression=Key("attention").eq(attention), Limit=limit
        )
        return [Pledge.model_validate(item) for item in page["Items"]]

    def advance(self, pledge: Pledge, donation_id: str) -> Pledge:
        """Record this period's renewal and move to the next, in one write; only from this period's
        current try, only while active (ConditionFailed otherwise: another delivery did it, or the
        pledge changed)."""
        next_on = following_charge_on(pledge.day_of_month, pledge.next_charge_on)
        return self._update(
            pledge.pledge_id,
            {
                "next_charge_on": next_on,
                "due_on": next_on,
                "last_period": pledge.period,
                "last_donation_id": donation_id,
                "renewals": pledge.renewals + 1,
                "renewal_try": 1,
            },
            # A renewal that waited for the donor a period ago is over (its link lasted 5 days): no longer waiting.
            remove=["retry_on", *_WAITING],
            condition=_at_try(pledge),
        )

    def record_failure(self, pledge: Pledge, donation_id: str, reason: str) -> Pledge:
        """This period's renewal failed: out of the due index, with the reason, until someone acts."""
        return self._update(
            pledge.pledge_id,
            {
                "state": PledgeState.NEEDS_ATTENTION.value,
                "last_failure": reason,
                "last_failure_period": pledge.period,
                "last_donation_id": donation_id,
                "attention": NEEDS_ATTENTION,
                "attention_since": utc_now(),
            },
            remove=["due_on", "retry_on"],
            condition=_at_try(pledge),
        )

    def await_donor(self, pledge: Pledge, donation_id: str, reason: str) -> Pledge:
        """This period's renewal waits for the donor to authenticate it (``authentication_required``): the
        pledge stays active and goes on to the next period, due on its charge day (that month is a new charge;
        this one is finished by the donor on its own PaymentIntent, or not at all: never charged again by the
        schedule), marked waiting (``awaiting_donor``; ``attention`` ``needs_attention`` for operators)."""
        next_on = following_charge_on(pledge.day_of_month, pledge.next_charge_on)
        return self._update(
            pledge.pledge_id,
            {
                "next_charge_on": next_on,
                "due_on": next_on,
                "renewal_try": 1,
                "awaiting_donor": donation_id,
                "awaiting_period": pledge.period,
                "last_failure": reason,
                "last_failure_period": pledge.period,
                "last_donation_id": donation_id,
                "attention": NEEDS_ATTENTION,
                "attention_since": utc_now(),
            },
            remove=["retry_on"],
            condition=_at_try(pledge),
        )

    def schedule_retry(self, pledge: Pledge, failed: FailedTry, retry_on: str) -> Pledge:
        """The try failed softly and tries remain: the next one is due on ``retry_on`` (the due index's
        key, so the schedule finds it), the pledge stays active and the donor is told."""
        return self._update(
            pledge.pledge_id,
            {
                **failed.values(pledge, DunningNotice.RETRY_SCHEDULED),
                "renewal_try": pledge.renewal_try + 1,
                "retry_on": retry_on,
                "due_on": retry_on,
            },
            condition=_at_try(pledge),
        )

    def lapse(self, pledge: Pledge, failed: FailedTry) -> Pledge:
        """Dunning ended without a charge (last try, or a hard decline): never charged again on its own,
        out of the due index, in the attention index's ``lapsed`` partition for operators."""
        stamp = utc_now()
        return self._update(
            pledge.pledge_id,
            {
                **failed.values(pledge, DunningNotice.LAPSED),
                "state": PledgeState.LAPSED.value,
                "lapsed_at": stamp,
                "attention": LAPSED,
                "attention_since": stamp,
            },
            remove=["due_on", "retry_on"],
            condition=_at_try(pledge),
        )

    @property
    def table(self) -> Any:
        return self._table

    def for_donor(self, donor_key: str) -> list[DonorPledge]:
        """The pledges of the donor with this key (a query of the donor index: ids, state, first donation)."""
        page = self._table.query(IndexName=DONOR_INDEX, KeyConditionExpression=Key("donor_key").eq(donor_key), Limit=20)
        return [DonorPledge.model_validate(item) for item in page["Items"]]

    def cancel(self, pledge_id: str, *, by: str, nonce: str | None = None) -> Pledge:
        """Cancel: out of the due and attention indexes, never charged again (a renewal message already
        queued finds it canceled and charges nothing). With ``nonce``, only if that one-time token was
        never used on it, and the nonce is recorded. ConditionFailed if canceled already or the nonce used."""
        stamp = utc_now()
        condition = Attr("pledge_id").exists() & Attr("state").ne(PledgeState.CANCELED.value)
        values: dict[str, Any] = {
            ":state": PledgeState.CANCELED.value,
            ":at": stamp,
            ":by": by,
        }
        expression = "SET #state = :state, canceled_at = :at, canceled_by = :by, updated_at = :at"
        if nonce is not None:
            condition = condition & ~Attr("used_link_nonces").contains(nonce)
            expression += ", used_link_nonces = list_append(if_not_exists(used_link_nonces, :none), :nonce)"
            values |= {":none": [], ":nonce": [nonce]}
        try:
            item = self._table.update_item(
                Key={"pledge_id": pledge_id},
                UpdateExpression=expression
                + " REMOVE due_on, retry_on, attention, attention_since, queued_for, queued_at",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=values,
                ConditionExpression=condition,
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if condition_failed(error):
                raise ConditionFailed(pledge_id) from error
            raise
        return Pledge.model_validate(item)

    def change_by_donor(
        self,
        pledge: Pledge,
        nonce: str,
        values: dict[str, Any],
        *,
        note: str,
        remove: tuple[str, ...] = (),
        not_queued: bool = False,
    ) -> Pledge:
        """A change the donor made with a one-time token (donations.pledge_changes): ``values`` set and ``remove``
        removed in one write, the token's nonce recorded (``used_link_nonces``) and ``note`` added to
        ``donor_changes``. Conditional on the pledge as read (state, next charge day, try) and on the nonce never
        used: ConditionFailed otherwise (a replay, another tab, a renewal or an operator meanwhile). With
        ``not_queued``, also only while the schedule has not queued its due day (``mark_queued``)."""
        stamp = utc_now()
        names: dict[str, str] = {}
        sets, bound = [], {":at": stamp, ":none": [], ":nonce": [nonce], ":note": [f"{stamp} {note}"]}
        for number, (name, value) in enumerate(values.items()):
            names[f"#f{number}"] = name
            bound[f":f{number}"] = value
            sets.append(f"#f{number} = :f{number}")
        expression = "SET " + ", ".join([*sets, "updated_at = :at",
            "used_link_nonces = list_append(if_not_exists(used_link_nonces, :none), :nonce)",
            "donor_changes = list_append(if_not_exists(donor_changes, :none), :note)"])  # fmt: skip
        if remove:
            expression += " REMOVE " + ", ".join(remove)
        condition = (
            Attr("state").eq(pledge.state.value)
            & Attr("next_charge_on").eq(pledge.next_charge_on)
            & _try_is(pledge.renewal_try)
            & ~Attr("used_link_nonces").contains(nonce)
        )
        if not_queued:
            condition = condition & (Attr("queued_for").not_exists() | Attr("queued_for").ne(pledge.due_on or ""))
        try:
            item = self._table.update_item(
                Key={"pledge_id": pledge.pledge_id},
                UpdateExpression=expression,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=bound,
                ConditionExpression=condition,
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if condition_failed(error):
                raise ConditionFailed(pledge.pledge_id) from error
            raise
        return Pledge.model_validate(item)

    def resume(self, pledge: Pledge, today: date) -> Pledge:
        """Back on schedule (a canceled pledge, or one whose last renewal failed): active, due on its next
        charge day from ``today`` on, never a period it already charged or failed (charging a failed
        period again is not this write's to decide). ConditionFailed if it changed since it was read."""
        next_on = resume_on(pledge, today)
        return self._update(
            pledge.pledge_id,
            {"state": PledgeState.ACTIVE.value, "next_charge_on": next_on, "due_on": next_on, "renewal_try": 1},
            remove=[
                "attention",
                "attention_since",
                "queued_period",
                "queued_at",
                "canceled_at",
                "canceled_by",
                "canceled_reason",
                "paused_at",
            ],
            condition=Attr("state").eq(pledge.state.value) & Attr("next_charge_on").eq(pledge.next_charge_on),
        )

    def record_new_card(self, pledge: Pledge, setup: CardSetup, today: date) -> Pledge:
        """The donor's new card (a succeeded SetupIntent on the pledge's Customer) is the one the pledge charges
        from now on: an active pledge keeps its schedule (a retry still due is tried on the new card); one that
        lapsed or waits for the donor is active again, due on its next charge day from ``today`` on (never a
        period it already charged or failed, as ``resume``). ConditionFailed if this SetupIntent was recorded
        already, or the pledge was canceled or changed since it was read."""
        values: dict[str, Any] = {
            "payment_method_id": setup.payment_method_id,
            "card_brand": setup.card_brand,
            "card_last4": setup.card_last4,
            "card_setup_id": setup.id,
            "card_updated_at": utc_now(),
            # Another card: the old one's expiry and network updates no longer describe it (None removes them).
            "card_exp_month": None,
            "card_exp_year": None,
            "card_details_as_of": None,
        }
        remove: list[str] = []
        if pledge.state in (PledgeState.LAPSED, PledgeState.NEEDS_ATTENTION):
            next_on = resume_on(pledge, today)
            values |= {"state": PledgeState.ACTIVE.value, "next_charge_on": next_on, "due_on": next_on}
            values["renewal_try"] = 1
            remove = ["attention", "attention_since", "retry_on", "queued_for", "queued_at"]
        at_read = Attr("state").eq(pledge.state.value) & Attr("next_charge_on").eq(pledge.next_charge_on)
        # Once per SetupIntent; again only to add the card's brand and last 4 when the webhook, which has no
        # Stripe key to read them, recorded it first.
        first_time = Attr("card_setup_id").not_exists() | Attr("card_setup_id").ne(setup.id)
        first_time = first_time | Attr("card_last4").not_exists()
        return self._update(pledge.pledge_id, values, remove=remove, condition=at_read & first_time)

    def on_payment_method(self, payment_method_id: str) -> list[str]:
        """The ids of the pledges that charge this PaymentMethod (a query of the keys-only card index)."""
        return self._ids(PAYMENT_METHOD_INDEX, Key("payment_method_id").eq(payment_method_id))

    def record_updated_card(self, pledge: Pledge, card: UpdatedCard, today: date) -> Pledge:
        """The card network updated the pledge's card in place (same PaymentMethod): the pledge shows the new
        brand, last 4 and expiry. A pledge that lapsed on a decline the update cures (dunning.CURED_BY_UPDATED_CARD,
        after the update's time: the caller decides) is active again from its next charge day, as ``resume``
        (never a period it charged or failed). ConditionFailed if a newer update was recorded, the pledge
        charges another card now, or it changed since it was read."""
        values: dict[str, Any] = {
            "card_brand": card.brand,
            "card_last4": card.last4,
            "card_exp_month": card.exp_month,
            "card_exp_year": card.exp_year,
            "card_details_as_of": card.as_of,
        }
        remove: list[str] = []
        if pledge.state is PledgeState.LAPSED and cured_by(pledge, card):
            next_on = resume_on(pledge, today)
            values |= {"state": PledgeState.ACTIVE.value, "next_charge_on": next_on, "due_on": next_on}
            values["renewal_try"] = 1
            remove = ["attention", "attention_since", "retry_on", "queued_for", "queued_at"]
        newer = Attr("card_details_as_of").not_exists() | Attr("card_details_as_of").lt(card.as_of)
        at_read = Attr("state").eq(pledge.state.value) & Attr("next_charge_on").eq(pledge.next_charge_on)
        same_card = Attr("payment_method_id").eq(card.payment_method_id)
        return self._update(pledge.pledge_id, values, remove=remove, condition=at_read & same_card & newer)

    def record_authenticated(self, pledge: Pledge, donation_id: str) -> Pledge:
        """The donor authenticated the renewal that was waiting for them (``donation_id``): it is charged, and
        counted on the pledge, which is no longer waiting, in one write; its schedule (already on the next
        period) is unchanged. ConditionFailed if it was recorded already or the pledge no longer waits for it.
        A pledge written before (state ``needs_attention``, left on that period) is active again and moves on."""
        if pledge.state is PledgeState.NEEDS_ATTENTION:
            return self._record_authenticated_before(pledge, donation_id)
        values: dict[str, Any] = {"renewals": pledge.renewals + 1}
        if pledge.awaiting_period and pledge.awaiting_period > (pledge.last_period or ""):
            values["last_period"] = pledge.awaiting_period
        remove = ["awaiting_donor", "awaiting_period"]
        condition = Attr("awaiting_donor").eq(donation_id) & Attr("renewals").eq(pledge.renewals)
        if pledge.attention == NEEDS_ATTENTION:  # a lapse of a later period keeps its own mark
            remove += ["attention", "attention_since"]
            condition = condition & Attr("attention").eq(NEEDS_ATTENTION)
        return self._update(pledge.pledge_id, values, remove=remove, condition=condition)

    def _record_authenticated_before(self, pledge: Pledge, donation_id: str) -> Pledge:
        next_on = following_charge_on(pledge.day_of_month, pledge.next_charge_on)
        return self._update(
            pledge.pledge_id,
            {
                "state": PledgeState.ACTIVE.value,
                "next_charge_on": next_on,
                "due_on": next_on,
                "last_period": pledge.period,
                "last_donation_id": donation_id,
                "renewals": pledge.renewals + 1,
                "renewal_try": 1,
            },
            remove=["attention", "attention_since", "retry_on"],
            condition=Attr("state").eq(PledgeState.NEEDS_ATTENTION.value)
            & Attr("next_charge_on").eq(pledge.next_charge_on)
            & Attr("last_donation_id").eq(donation_id),
        )

    def stop_for_dispute(self, pledge_id: str, reason: str) -> bool:
        """A donor who disputes a gift is charged no more: canceled, out of the due and attention indexes,
        in one write. False if it was canceled already (a duplicate event) or there is no such pledge."""
        try:
            self._update(
                pledge_id,
                {"state": PledgeState.CANCELED.value, "canceled_at": utc_now(), "canceled_reason": reason},
                remove=["due_on", "retry_on", "attention", "attention_since"],
                condition=Attr("state").ne(PledgeState.CANCELED.value),
            )
        except ConditionFailed:
            return False
        return True

    def pledges_on_card(self, donor_key: str, card_brand: str, card_last4: str) -> list[str]:
        """The donor's pledges, not canceled, that charge a card shown as ``card_brand`` ending ``card_last4``
        (the donor index, then each pledge: the index does not hold the card)."""
        found = []
        for listed in self.for_donor(donor_key):
            if listed.state is PledgeState.CANCELED:
                continue
            pledge = self.get(listed.pledge_id)
            if pledge is not None and (pledge.card_brand, pledge.card_last4) == (card_brand, card_last4):
                found.append(pledge.pledge_id)
        return found

    def record_authenticated_renewal(self, pledge_id: str, donation_id: str) -> bool:
        """``record_authenticated`` from the ids alone (Stripe's webhook): False if the pledge does not wait
        for that renewal (recorded already by the page's return, resumed or canceled meanwhile)."""
        pledge = self.get(pledge_id)
        if pledge is None or not waits_for(pledge, donation_id):
            return False
        try:
            self.record_authenticated(pledge, donation_id)
        except ConditionFailed:
            return False
        return True

    def _update(
        self, pledge_id: str, values: dict[str, Any], *, condition: Any, remove: list[str] | None = None
    ) -> Pledge:
        item = conditional_update(
            self._table, {"pledge_id": pledge_id}, values, remove=remove, condition=condition, returning="ALL_NEW"
        )
        return Pledge.model_validate(item)


@dataclass(frozen=True)
class FailedTry:
    """One declined try of a pledge's period: its donation, the decline and what operators read."""

    donation_id: str
    decline_code: str
    reason: str

    def values(self, pledge: Pledge, notice: DunningNotice) -> dict[str, Any]:
        return {
            "last_failure": self.reason,
            "last_failure_period": pledge.period,
            "last_donation_id": self.donation_id,
            "last_decline_code": self.decline_code,
            "dunning_notice": notice.value,
            "dunning_notice_key": dunning_notice_key(pledge),
        }


def dunning_notice_key(pledge: Pledge) -> str:
    """``<period>#<try>`` of the pledge's current try: the key of the donor email about its failure."""
    return f"{pledge.period}#{pledge.renewal_try}"


def _at_try(pledge: Pledge) -> Any:
    """Still active, at this period and at this try of it (pledges written before tries count as try 1)."""
    at_try = _try_is(pledge.renewal_try)
    return Attr("next_charge_on").eq(pledge.next_charge_on) & Attr("state").eq(PledgeState.ACTIVE.value) & at_try


def _try_is(renewal_try: int) -> Any:
    at_try = Attr("renewal_try").eq(renewal_try)
    return Attr("renewal_try").not_exists() | at_try if renewal_try == 1 else at_try
