"""The core's ports: what taking a donation, the background steps, the webhooks and the reconciler
need from the outside world, and the values that cross them (free of SDK types).

The real adapters satisfy these structurally: ``DonationStore`` (DynamoDB, donations.store),
``StripePayments`` (donations.payments), ``ReceiptMailer`` (SendGrid, donations.mail) and
``FollowUpPublisher`` (SQS, donations.followups). donations.wiring returns them as these types, so
mypy checks that they fit; tests/support/fakes.py holds in-memory ones for the unit tier.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from donations.models import (
    CLOSED_DISPUTE_STATUSES,
    Donation,
    DonationRequest,
    DonationStatus,
    FollowUpMessage,
    RefundState,
    Step,
    refund_state,
)

if TYPE_CHECKING:
    from donations.pledges import Pledge

# -- values --------------------------------------------------------------------------------------


class ChargeState(StrEnum):
    SUCCEEDED = "succeeded"
    REQUIRES_ACTION = "requires_action"


@dataclass(frozen=True)
class ChargeOutcome:
    state: ChargeState
    payment_intent_id: str
    payment_method_id: str | None
    client_secret: str | None = None
    card_brand: str | None = None
    card_last4: str | None = None
    """The card charged, when Stripe said (operators find a donor by it: donations_ops.lookup)."""


@dataclass(frozen=True)
class IntentSnapshot:
    """What the reconciler and the charge's recovery need to know about a PaymentIntent, free of SDK types."""

    id: str
    status: str
    payment_method_id: str | None
    decline_code: str | None = None
    """Set when the last payment attempt was a card decline (donor-safe code, as in CardDeclined)."""
    issuer_decline_code: str | None = None
    """The same decline's code before donor-safe masking (CardDeclined.issuer_decline_code)."""
    authentication_failed: bool = False
    client_secret: str | None = None
    donation_id: str | None = None
    """``metadata['donation_id']``: the donation it charges, if it is one of ours (or another stack's)."""
    amount: int | None = None
    currency: str | None = None


@dataclass(frozen=True)
class CardSetup:
    """A SetupIntent that saves a new card for a pledge, free of SDK types (donations.pledge_manage)."""

    id: str
    status: str
    customer_id: str | None
    client_secret: str | None = None
    """For Stripe.js ``confirmCardSetup`` in the donor's page: never logged, never stored."""
    payment_method_id: str | None = None
    card_brand: str | None = None
    card_last4: str | None = None
    pledge_id: str | None = None
    """``metadata['pledge_id']``: the pledge it was made for."""


@dataclass(frozen=True)
class CurrentCharge:
    """A Stripe event's PaymentIntent, as the donation's current charge: the charge attempt its metadata
    names, not spent (a spent attempt is being replaced by the next), and no other PaymentIntent
    recorded. A failure of anything else (a superseded attempt) must not end the donation."""

    attempt: int
    payment_intent_id: str

    def holds_for(self, donation: Donation) -> bool:
        """Tested on a record read before; the store's write checks it again."""
        return (
            donation.charge_attempt == self.attempt
            and not donation.charge_attempt_spent
            and donation.payment_intent_id in (None, self.payment_intent_id)
        )


@dataclass(frozen=True)
class SavedCard:
    customer_id: str
    payment_method_id: str
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None


@dataclass(frozen=True)
class ParkedMessage:
    """A message as a consumer sends it to its DLQ (ids only: no PII in queue bodies), for the record."""

    message_id: str
    body: str
    attributes: dict[str, str]
    attempts: int
    """The receive it failed on (ApproximateReceiveCount)."""
    permanent: bool
    """Parked at once (retrying cannot help) rather than after its last receive."""

    def as_item(self) -> dict[str, object]:
        return {"message_id": self.message_id, "body": self.body, "attributes": dict(self.attributes)}


@dataclass(frozen=True)
class RefundFailure:
    """A refund that succeeded, then failed (Stripe's ``refund.failed``; ``stripe.Refund.failure_reason``)."""

    refund_id: str
    amount: int
    reason: str
    failed_at: str

    def record_values(self, donation: Donation) -> dict[str, Any]:
        """The donation's refund fields once this refund is taken off its refunded total. The donor was last
        told of at most the new total, so the next real refund is told again."""
        refunded = max(0, donation.amount_refunded - self.amount)
        return {
            "amount_refunded": refunded,
            "refund_state": refund_state(donation.amount, refunded),
            "refund_notice_amount": min(donation.refund_notice_amount, refunded),
            "refunds_failed": [*donation.refunds_failed, self.refund_id],
            "amount_refund_failed": donation.amount_refund_failed + self.amount,
            "refund_failed_at": self.failed_at,
            "refund_failure_reason": self.reason,
        }


@dataclass(frozen=True)
class DisputeFacts:
    """One Stripe Dispute as an event shows it (donations.refunds)."""

    dispute_id: str
    reason: str
    status: str
    amount: int
    opened_at: str
    changed_at: str
    """When this event happened: the dispute's closing time for a closed one."""
    evidence_due_by: str | None
    balance_transactions: int = 0
    """How many balance transactions the dispute has: 1 once funds were withdrawn, 2 once reinstated."""
    fee: int = 0
    """Stripe's dispute fee, the sum of its balance transactions' ``fee``."""
    fee_currency: str | None = None

    @property
    def closed(self) -> bool:
        return self.status in CLOSED_DISPUTE_STATUSES

    def record_values(self) -> dict[str, Any]:
        """The donation's dispute fields as this event sets them (None removes one)."""
        values: dict[str, Any] = {
            "dispute_id": self.dispute_id,
            "dispute_reason": self.reason,
            "dispute_status": self.status,
            "dispute_amount": self.amount,
            "disputed_at": self.opened_at,
            "dispute_evidence_due_by": self.evidence_due_by,
            "dispute_balance_transactions": self.balance_transactions,
            "dispute_fee": self.fee,
            "dispute_fee_currency": self.fee_currency,
        }
        if self.closed:
            return values | {"dispute_closed_at": self.changed_at, "dispute_open": None}
        # The sparse dispute-index needs both its keys: an open dispute without a deadline sorts first.
        return values | {"dispute_open": "open", "dispute_evidence_due_by": self.evidence_due_by or self.opened_at}


@dataclass(frozen=True)
class ReceiptClaim:
    claimed: bool
    donation: Donation | None


# -- ports ---------------------------------------------------------------------------------------


class Store(Protocol):
    """The Donations table. Every state change is conditional: a lost condition raises
    donations.store.ConditionFailed (see each method of DonationStore for its condition)."""

    def get(self, donation_id: str) -> Donation | None: ...
    def require(self, donation_id: str) -> Donation: ...

    # taking a donation (donations.charge)
    def create_pending(
        self,
        donation_id: str,
        request: DonationRequest,
        correlation_id: str,
        *,
        lease_seconds: int,
        now: float | None = None,
    ) -> Donation: ...
    def discard_refused(self, donation_id: str, correlation_id: str) -> None: ...
    def release_charging(self, donation_id: str) -> None: ...
    def mark_charge_attempt_spent(self, donation_id: str, attempt: int) -> None: ...
    def next_charge_attempt(self, donation_id: str, spent_attempt: int) -> Donation: ...
    def mark_charged(
        self,
        donation_id: str,
        payment_intent_id: str,
        payment_method_id: str | None,
        *,
        claim_followups_seconds: int | None = None,
        now: float | None = None,
        card: tuple[str | None, str | None] | None = None,
    ) -> Donation: ...
    def mark_requires_action(self, donation_id: str, payment_intent_id: str) -> Donation: ...
    def mark_declined(
        self,
        donation_id: str,
        decline_code: str,
        payment_intent_id: str | None,
        *,
        current: CurrentCharge | None = None,
    ) -> Donation: ...
    def mark_failed(self, donation_id: str, reason: str, *, current: CurrentCharge | None = None) -> Donation: ...
    def mark_canceled(
        self, donation_id: str, reason: str, payment_intent_id: str | None, *, current: CurrentCharge | None = None
    ) -> Donation: ...
    def record_money_taken(
        self, donation_id: str, payment_intent_id: str, payment_method_id: str | None, *, recorded_as: DonationStatus
    ) -> Donation: ...

    # follow-ups (donations.followups) and the reconciler's query
    def claim_followups(self, donation_id: str, lease_seconds: int, now: float | None = None) -> bool: ...
    def release_followups_claim(self, donation_id: str) -> None: ...
    def mark_followups_published(self, donation_id: str) -> None: ...
    def waiting(self, status: DonationStatus, *, since: str | None, before: str, limit: int) -> list[str]: ...

    # the background steps (donations.steps, donations.consumer)
    def next_card_attempt(self, donation_id: str, spent_attempt: int) -> None: ...
    def record_card(self, donation_id: str, card: SavedCard) -> None: ...
    def claim_receipt(self, donation_id: str, lease_seconds: int, now: float | None = None) -> ReceiptClaim: ...
    def mark_receipt_sent(self, donation_id: str, message_id: str) -> None: ...
    def release_receipt_claim(self, donation_id: str) -> None: ...
    def record_step_retry(self, donation_id: str, step: Step, reason: str, attempts: int) -> None: ...
    def record_step_failure(
        self, donation_id: str, step: Step, reason: str, *, parked: ParkedMessage | None = None
    ) -> None: ...
    def clear_step_failure(self, donation_id: str, step: Step) -> None: ...

    # Stripe's webhooks and the operators' refunds (donations.webhooks, donations.refunds)
    def find_by_payment_intent(self, payment_intent_id: str) -> str | None: ...
    def record_refund(
        self, donation_id: str, amount_refunded: int, refunded_at: str, state: RefundState | None
    ) -> Donation: ...
    def claim_refund_notice(self, donation_id: str, lease_seconds: int, now: float | None = None) -> ReceiptClaim: ...
    def mark_refund_notice_sent(self, donation_id: str, amount_refunded: int, message_id: str) -> None: ...
    def release_refund_notice_claim(self, donation_id: str) -> None: ...
    def record_dispute(self, donation_id: str, dispute: DisputeFacts) -> Donation: ...
    def record_refund_failure(self, donation_id: str, failure: RefundFailure) -> Donation | None: ...


class Payments(Protocol):
    """Stripe, keyed for idempotency by donation id and attempt. Raises donations.errors' types
    (CardDeclined, InvalidDonation, ChargeIndeterminate, ServiceUnavailable, StoredServerError...)."""

    def charge(self, donation: Donation) -> ChargeOutcome: ...
    def find_attempt(self, donation: Donation) -> IntentSnapshot | None: ...
    def lookup(self, payment_intent_id: str) -> IntentSnapshot: ...
    def find_for_donation(self, donation_id: str) -> list[IntentSnapshot]: ...
    def cancel(self, donation_id: str, payment_intent_id: str) -> IntentSnapshot: ...
    def succeeded_between(self, start: int, end: int, *, max_pages: int) -> tuple[list[IntentSnapshot], bool]: ...
    def save_card(self, donation: Donation) -> SavedCard: ...
    def card_fingerprint(self, payment_method_id: str) -> str | None: ...


class Mailer(Protocol):
    """The receipt's mail send; the provider's message id. Raises RetryableStepFailure or
    PermanentStepFailure."""

    def send(self, donation: Donation) -> str: ...
    def send_refund_notice(self, donation: Donation) -> str:
        """The corrected receipt for ``donation.amount_refunded`` (a refund notice when nothing remains)."""
        ...


class Publisher(Protocol):
    """The follow-up messages of a charged donation onto their queues; raises if any send failed."""

    def publish(self, donation: Donation, correlation_id: str) -> list[FollowUpMessage]: ...
    def publish_refund_notice(self, donation_id: str, correlation_id: str) -> FollowUpMessage:
        """The refund notice's message onto the receipt queue (the record says which total it is for)."""
        ...


class PledgeCards(Protocol):
    """The Pledges table, as a donor's new card needs it (donations.card_update; donations.pledges.PledgeStore)."""

    def get(self, pledge_id: str) -> Pledge | None: ...

    def record_new_card(self, pledge: Pledge, setup: CardSetup, today: date) -> Pledge: ...


@dataclass(frozen=True)
class UpdatedCard:
    """A saved card the card network updated in place (Stripe's ``payment_method.automatically_updated``: the
    PaymentMethod keeps its id, its ``card`` has the new details), as of the event's ``created``."""

    payment_method_id: str
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    as_of: int
    """The event's ``created`` (Unix seconds): an older update, delivered late, never overwrites a newer one."""


class PledgeStopper(PledgeCards, Protocol):
    """The Pledges table, as the webhooks need it (donations.pledges.PledgeStore): a dispute stops a pledge,
    a renewal paid after the donor authenticated it moves it on, a card the donor saved is recorded."""

    def stop_for_dispute(self, pledge_id: str, reason: str) -> bool:
        """Stop the pledge (no further charges); False if it was already stopped or does not exist."""
        ...

    def pledges_on_card(self, donor_key: str, card_brand: str, card_last4: str) -> list[str]:
        """The donor's pledges, not canceled, on the card shown as this brand and last 4."""
        ...

    def record_authenticated_renewal(self, pledge_id: str, donation_id: str) -> bool:
        """A renewal that waited for the donor's authentication was paid: the pledge is active again and on
        to its next period; False if it was recorded already or the pledge no longer waits for it."""
        ...

    def on_payment_method(self, payment_method_id: str) -> list[str]:
        """The ids of the pledges that charge this PaymentMethod (any state)."""
        ...

    def record_updated_card(self, pledge: Pledge, card: UpdatedCard, today: date) -> Pledge:
        """The network's update of the pledge's card; ConditionFailed if a newer one was recorded, the pledge
        charges another card now, or it changed since it was read."""
        ...


# -- card testing (donations.screening) ----------------------------------------------------------


@dataclass(frozen=True)
class Client:
    """Who is asking: API Gateway's ``requestContext.identity.sourceIp`` and, when the form sends one,
    the token of the CAPTCHA widget (the ``Challenge-Token`` header)."""

    ip: str
    challenge_token: str | None = None


@dataclass(frozen=True)
class Tally:
    """One velocity key (an address, an email) after counting an attempt, or finding it over a limit."""

    kind: str
    attempts: int
    declines: int
    over: str | None
    """None; "attempts" (a soft limit: a CAPTCHA is asked for); "declines" (hard: refused until the bucket ends)."""
    resets_in_seconds: int


@dataclass(frozen=True)
class Offender:
    kind: str
    label: str
    declines: int


@dataclass(frozen=True)
class AttackMode:
    """Whether the donation endpoint asks every new donation for a CAPTCHA, and why."""

    under_attack: bool
    until: float | None = None
    """Unix seconds: when the mode ends by itself (or the operator's setting expires)."""
    reason: str | None = None
    forced: str | None = None
    """"on" or "off" while an operator's setting holds, else None."""


@dataclass(frozen=True)
class ChallengeVerdict:
    success: bool
    error_codes: tuple[str, ...] = ()


class Velocity(Protocol):
    """Counters per address, email and card (donations.velocity)."""

    def count_attempt(self, donation_id: str, ip: str, email: str, *, soft_limits: bool = True) -> list[Tally]: ...
    def card_declines(self, fingerprint: str) -> int: ...
    def record_decline(self, donation_id: str, ip: str, email: str, fingerprint: str | None) -> None: ...


class AttackModeSwitch(Protocol):
    """The one record of the attack mode (donations.attack_mode), read through a short cache."""

    def cached(self, max_age_seconds: float) -> AttackMode | None: ...
    def current(self, max_age_seconds: float = 0) -> AttackMode: ...
    def note_attempt(self) -> None: ...
    def note_decline(self) -> AttackMode: ...
    def note_refusal(self) -> None: ...


class Challenges(Protocol):
    """The CAPTCHA provider's server-side verification (donations.challenge)."""

    def verify(self, token: str, remote_ip: str, idempotency_key: str) -> ChallengeVerdict: ...


class CardLookup(Protocol):
    """The card fingerprint behind a PaymentMethod (StripePayments.card_fingerprint)."""

    def card_fingerprint(self, payment_method_id: str) -> str | None: ...
