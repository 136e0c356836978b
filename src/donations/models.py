"""Domain models: what a donor submits, what we store, what we queue and what we show."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic.networks import import_email_validator, validate_email
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from donations.currencies import amount_problem
from donations.redaction import find_card_data

PAYMENT_METHOD_PATTERN = r"^pm_[A-Za-z0-9_]{1,250}$"
MAX_METADATA_KEYS = 20
# Every month has these days; a donor who wants "the last day" gets the 28th (no month skipped).
MAX_DAY_OF_MONTH = 28
# The charge writes these into the PaymentIntent's metadata itself (donations.payments).
# Ours on the PaymentIntent: the donation's, and a renewal's link to its pledge (which a webhook, the
# reconciler and a dispute act on: a donor naming someone's pledge could otherwise cancel it by disputing).
RESERVED_METADATA_KEYS = frozenset({"donation_id", "charge_attempt", "pledge_id", "renewal_period", "renewal_try"})

MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")]
MetadataValue = Annotated[str, StringConstraints(max_length=500)]


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


if TYPE_CHECKING:
    EmailAddress = str
else:

    class EmailAddress:
        """pydantic's ``EmailStr`` (same check, normalisation, errors and JSON schema), except that
        ``email_validator`` is imported by the first validation, not when a model using it is defined:
        every function imports this module, only the charge function validates a donor's email."""

        @classmethod
        def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
            return core_schema.no_info_after_validator_function(cls._validate, core_schema.str_schema())

        @classmethod
        def __get_pydantic_json_schema__(cls, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
            field_schema = handler(schema)
            field_schema.update(type="string", format="email")
            return field_schema

        @classmethod
        def _validate(cls, value: str, /) -> str:
            return deliverable_address(validate_email(value)[1])


def deliverable_address(address: str) -> str:
    """The address as the receipt will be sent to it: its domain in ASCII (IDNA) form.

    ``ada+gift@bücher.de`` becomes ``ada+gift@xn--bcher-kva.de``, the form every mail system takes
    (email_validator's ``ascii_email``). SendGrid's v3 Mail Send does not take Unicode in addresses
    ("Mail Send limitations"; "Invalid email addresses": Unicode before the @ needs SMTPUTF8, which
    depends on the provider), so an address whose local part needs SMTPUTF8 (``ascii_email`` is
    None) is refused here, before anything is charged, rather than charged and never receipted.
    """
    import email_validator  # loaded by validate_email just before (the charge function's INIT)

    ascii_form = email_validator.validate_email(address, check_deliverability=False).ascii_email
    if ascii_form is None:
        raise PydanticCustomError(
            "email_not_deliverable",
            "our mail provider cannot deliver to non-ASCII characters before the @; please use another address",
        )
    return str(ascii_form)


def load_email_validation() -> None:
    """Import ``email_validator`` now: for the charge function's INIT, so that its first donation does not
    pay for it (about 20 ms); the functions that never validate an email skip it."""
    import_email_validator()


@dataclass(frozen=True)
class RequestLimits:
    """What a donation may be, by this deployment's settings (ChargeSettings.request_limits)."""

    allowed_currencies: frozenset[str]
    min_amount: int
    max_amount: int


class DonationRequest(BaseModel):
    """The body of ``POST /donations``. Unknown fields are refused; so is anything like card data.

    The amount and currency rules depend on the deployment's limits: validate with a model bound
    to them, ``DonationRequest.with_limits(limits)`` (the charge function builds one at INIT).
    """

    # defer_build: this class never validates (it has no limits), so its validator is not built (INIT's CPU time,
    # docs/warm-up.md); a class bound to limits builds its own when it is made (BOUND_CONFIG), not at first use.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)
    BOUND_CONFIG: ClassVar[ConfigDict] = ConfigDict(defer_build=False)
    limits: ClassVar[RequestLimits | None] = None

    @classmethod
    def with_limits(cls, limits: RequestLimits) -> type[DonationRequest]:
        """This model, validating amounts and currencies against ``limits`` (same name in OpenAPI)."""
        namespace = {"limits": limits, "__module__": cls.__module__, "model_config": cls.BOUND_CONFIG}
        bound: type[DonationRequest] = type(cls.__name__, (cls,), namespace)
        return bound

    @classmethod
    def _limits(cls) -> RequestLimits:
        if cls.limits is None:
            raise TypeError("DonationRequest has no limits: validate with DonationRequest.with_limits(...)")
        return cls.limits

    # Currency first: the amount's rules depend on it (validators see the fields declared before theirs).
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{3}$")] = Field(examples=["usd"])
    amount: StrictInt = Field(
        description="Amount in the currency's minor units as Stripe counts them (cents for usd).", examples=[2500]
    )
    email: EmailAddress = Field(max_length=254, examples=["ada@example.org"])
    name: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
    payment_method: Annotated[str, StringConstraints(pattern=PAYMENT_METHOD_PATTERN)] = Field(
        description="A Stripe PaymentMethod id produced by Stripe.js on the form.", examples=["pm_card_visa"]
    )
    save_card: StrictBool = False
    monthly: StrictBool = Field(
        default=False,
        description="Give this amount every month on the saved card (a pledge); implies save_card.",
    )
    day_of_month: int | None = Field(
        default=None,
        description=f"The day of the month the monthly gift is charged, 1 to {MAX_DAY_OF_MONTH} "
        "(every month has it); default: today's (UTC), 28 at most. Only with monthly.",
        examples=[10],
    )
    metadata: dict[MetadataKey, MetadataValue] = Field(default_factory=dict, max_length=MAX_METADATA_KEYS)

    @model_validator(mode="before")
    @classmethod
    def _refuse_card_data(cls, data: Any) -> Any:
        # Runs before field validation so a card number never reaches an error message or a log line.
        location = find_card_data(data)
        if location is not None:
            raise PydanticCustomError(
                "card_data",
                "Card numbers and security codes must never be sent to this API; use Stripe.js.",
                {"location": location},
            )
        if isinstance(data, dict) and data.get("monthly") is True and "save_card" not in data:
            # A monthly gift is charged on the saved card: asking for one is asking to save it.
            return {**data, "save_card": True}
        return data

    @field_validator("monthly")
    @classmethod
    def _monthly_saves_the_card(cls, monthly: bool, info: ValidationInfo) -> bool:
        if monthly and info.data.get("save_card") is False:
            raise PydanticCustomError(
                "monthly_needs_saved_card",
                "a monthly gift is charged on the saved card: send save_card true, or leave it out",
            )
        return monthly

    @field_validator("day_of_month", mode="before")
    @classmethod
    def _day_of_month(cls, day: Any, info: ValidationInfo) -> Any:
        if day is None:
            return None
        if not info.data.get("monthly"):
            raise PydanticCustomError("day_without_monthly", "day_of_month is only for a monthly gift (monthly true)")
        if type(day) is not int or not 1 <= day <= MAX_DAY_OF_MONTH:
            raise PydanticCustomError(
                "day_of_month_out_of_range",
                "day_of_month must be a whole number from 1 to {max}",
                {"max": MAX_DAY_OF_MONTH},
            )
        return day

    @field_validator("amount")
    @classmethod
    def _amount_chargeable(cls, amount: int, info: ValidationInfo) -> int:
        currency = info.data.get("currency")
        if currency is None:
            return amount  # the currency was refused; that is the error the donor sees
        limits = cls._limits()
        problem = amount_problem(amount, currency, floor=limits.min_amount, ceiling=limits.max_amount)
        if problem is not None:
            raise PydanticCustomError("amount_out_of_range", problem)
        return amount

    @field_validator("currency")
    @classmethod
    def _currency_allowed(cls, currency: str) -> str:
        currency = currency.lower()
        allowed = cls._limits().allowed_currencies
        if currency not in allowed:
            raise PydanticCustomError(
                "currency_not_allowed", "currency must be one of {allowed}", {"allowed": ", ".join(sorted(allowed))}
            )
        return currency

    @field_validator("metadata")
    @classmethod
    def _metadata_not_reserved(cls, metadata: dict[str, str]) -> dict[str, str]:
        reserved = RESERVED_METADATA_KEYS & metadata.keys()
        if reserved:
            raise PydanticCustomError("metadata_reserved", "metadata key {key} is reserved", {"key": min(reserved)})
        return metadata

    def fingerprint(self) -> str:
        """A stable hash of the request, so a reused Idempotency-Key with another body is caught."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class DonationStatus(StrEnum):
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    FAILED = "failed"
    CANCELED = "canceled"


class StepStatus(StrEnum):
    NOT_REQUESTED = "not_requested"
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    FAILED = "failed"
    # An operator decided the step will not be done (donations-ops dlq discard, with a note on the record).
    DISCARDED = "discarded"


class Attention(StrEnum):
    """Why a donation is in the operators' sparse ``attention-index`` (donations.store)."""

    RETRYING = "retrying"  # its step failed and is being retried with backoff
    PARKED = "parked"  # its message is in the step's DLQ
    REDRIVEN = "redriven"  # an operator sent it back to its queue; the step has not succeeded yet


class FailureKind(StrEnum):
    TRANSIENT = "transient"  # retryable, but every receive failed (an outage): a redrive can succeed
    PERMANENT = "permanent"  # parked at once: it fails the same way until its cause is fixed


class RefundState(StrEnum):
    """How much of a charged donation went back to the donor (``Donation.amount_refunded``)."""

    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


def refund_state(amount: int, amount_refunded: int) -> RefundState | None:
    if amount_refunded <= 0:
        return None
    return RefundState.REFUNDED if amount_refunded >= amount else RefundState.PARTIALLY_REFUNDED


# A dispute's statuses once it is over (stripe.Dispute.status of the pinned API version; Stripe's
# ``charge.dispute.closed`` "occurs when ... the dispute status changes to lost, warning_closed, or won").
CLOSED_DISPUTE_STATUSES = frozenset({"won", "lost", "warning_closed", "prevented"})


class Step(StrEnum):
    TOKENIZE = "tokenize"
    SEND_RECEIPT = "send_receipt"


class Donation(BaseModel):
    """A row of the Donations table, the source of truth. It never holds card numbers or CVCs."""

    model_config = ConfigDict(extra="ignore")

    donation_id: str
    status: DonationStatus
    amount: int
    currency: str
    email: str
    email_masked: str
    name: str
    payment_method: str
    save_card: bool
    pledge_day_of_month: int | None = None
    """Set for a monthly gift: the day its pledge renews on. The tokenize step makes the pledge
    (donations.pledges.pledge_id_for this donation) when it has saved the card."""
    metadata: dict[str, str] = Field(default_factory=dict)
    request_hash: str
    correlation_id: str = ""
    created_at: str
    updated_at: str
    payment_intent_id: str | None = None
    payment_method_id: str | None = None
    decline_code: str | None = None
    followups_published: bool = False
    card_status: StepStatus = StepStatus.NOT_REQUESTED
    customer_id: str | None = None
    card_brand: str | None = None
    card_last4: str | None = None
    card_exp_month: int | None = None
    card_exp_year: int | None = None
    receipt_status: StepStatus = StepStatus.PENDING
    receipt_message_id: str | None = None
    receipt_claim_until: int | None = None
    receipt_sent_at: str | None = None
    failed_step: Step | None = None
    failure_reason: str | None = None
    # Present while we may still owe this donation work (not final, or charged with follow-ups
    # unpublished); the reconciler's sparse index holds only such donations. See DonationStore.
    unsettled_since: str | None = None
    # Whoever publishes the follow-ups holds this lease (unix seconds) meanwhile; see publish_follow_ups.
    followups_claim_until: int | None = None
    # The request charging this pending donation holds this lease (unix seconds): a resubmission
    # meanwhile is told to retry (409), not sent to Stripe a second time. See DonationStore.create_pending.
    charging_until: int | None = None
    # Stripe idempotency keys are per charge attempt (donations.charge, "Stored server errors"): the
    # attempt the next call uses, when it was first sent, and whether Stripe stored a server error
    # under its key (a replay returns that error for 24 h).
    charge_attempt: int = 0
    charge_attempt_started_at: str | None = None
    charge_attempt_spent: bool = False
    # When the attempt was found spent: its PaymentIntent, if any, was created between the attempt's
    # start and this time (PaymentsStripe.find_attempt reads only that stretch of Stripe's list).
    charge_attempt_spent_at: str | None = None
    # Stripe took the money while this record said canceled, failed or declined: what it said then
    # (donations.settlement). The donor may have been told otherwise: an operator follows up.
    corrected_from: DonationStatus | None = None
    # The same for the tokenize step's Customer and attach keys (donations.steps.save_card).
    card_attempt: int = 0
    # Money moving back after the charge (donations.refunds): the sum refunded so far in minor units, as
    # Stripe's Charge ``amount_refunded`` says it, only ever growing; its state; when it last grew.
    amount_refunded: int = 0
    refund_state: RefundState | None = None
    refunded_at: str | None = None
    # The refunded total the donor was last told about (the refund notice, donations.steps), and the
    # lease of the consumer sending the next one: one notice per refunded total.
    refund_notice_amount: int = 0
    refund_notice_claim_until: int | None = None
    refund_notice_message_id: str | None = None
    refund_notice_sent_at: str | None = None
    # Refunds that succeeded, then failed (the bank refused the money back; ``refund.failed``): their ids, so
    # none is taken off twice, the sum they took off ``amount_refunded``, when the last failed, and why.
    refunds_failed: list[str] = Field(default_factory=list)
    amount_refund_failed: int = 0
    refund_failed_at: str | None = None
    refund_failure_reason: str | None = None
    # A chargeback (donations.refunds): Stripe's Dispute id, reason, status (open ones, then won, lost,
    # warning_closed), the amount disputed, when it opened, closed, and when evidence is due.
    dispute_id: str | None = None
    dispute_reason: str | None = None
    dispute_status: str | None = None
    dispute_amount: int | None = None
    disputed_at: str | None = None
    dispute_closed_at: str | None = None
    dispute_evidence_due_by: str | None = None
    dispute_open: str | None = None  # "open" while it is: the sparse dispute-index's key (donations-ops disputes)
    # The money the dispute moved (its balance transactions, ``stripe.Dispute.balance_transactions``): how many
    # there were (0, 1 withdrawn, 2 withdrawn and reinstated; only ever more, so an older event changes nothing),
    # and Stripe's dispute fee they charged, in their currency.
    dispute_balance_transactions: int = 0
    dispute_fee: int = 0
    dispute_fee_currency: str | None = None
    # The UTC day an operator was last reminded that this open dispute's evidence is due (the reconciler).
    dispute_reminded_on: str | None = None
    # -- for operators (donations_ops) ---------------------------------------------------------------
    # Lookups: the donor's key (Identifiers.donor_key; the email itself is never an index key) and the UTC day
    # it was made, keys of the donor-index and day-index; when it was charged and the card's last 4.
    donor_key: str | None = None
    created_day: str | None = None
    charged_at: str | None = None
    # A step that keeps failing or was parked: in the sparse attention-index (attention_step,
    # attention_since) until it succeeds or an operator discards it. ``last_error`` is the latest
    # failure's reason, ``attempts`` the receive it failed on; ``parked_message`` the DLQ message as
    # parked (ids only: body and attributes), so operators can look at it without receiving it.
    attention_step: Step | None = None
    attention_since: str | None = None
    attention: Attention | None = None
    last_error: str | None = None
    attempts: int | None = None
    failure_kind: FailureKind | None = None
    parked_at: str | None = None
    parked_message: dict[str, Any] | None = None
    # What operators did (redrives, discards, email fixes), with their notes; kept across redrives.
    redrives: int = 0
    operator_log: list[dict[str, str]] = Field(default_factory=list)
    # The donor asked to be forgotten (donations_ops.donor_data): name, email and donor key are gone, the
    # money (amounts, dates, Stripe ids) stays for the books.
    erased_at: str | None = None
    # The Stripe Customer (customer_id) was deleted after an erasure (donations.customer_erasure).
    customer_deleted_at: str | None = None

    @property
    def amount_lost_to_dispute(self) -> int:
        """What a lost dispute took back (the disputed amount); nothing while open, won or never disputed."""
        return (self.dispute_amount or 0) if self.dispute_status == "lost" else 0

    @property
    def net_amount(self) -> int:
        """What remains a gift: the amount less refunds and a lost dispute (never below zero)."""
        return max(0, self.amount - self.amount_refunded - self.amount_lost_to_dispute)

    def public_view(self) -> PublicDonation:
        card_saved: bool | None = None
        if self.save_card:
            card_saved = self.card_status == StepStatus.DONE
        return PublicDonation(
            donation_id=self.donation_id,
            status=self.status,
            amount=self.amount,
            currency=self.currency,
            created_at=self.created_at,
            card_saved=card_saved,
            receipt_sent=self.receipt_status == StepStatus.DONE,
            failed_step=self.failed_step,
        )


class PublicDonation(BaseModel):
    """What ``GET /donations/{id}`` shows: progress only, no email, no card data."""

    donation_id: str
    status: DonationStatus
    amount: int
    currency: str
    created_at: str
    card_saved: bool | None
    receipt_sent: bool
    failed_step: Step | None


class DonationAnswer(BaseModel):
    """201 (succeeded) or 202 (requires_action, with the client_secret for Stripe.js)."""

    donation_id: str
    status: Literal["succeeded", "requires_action"]
    client_secret: str | None = None


class Challenge(BaseModel):
    """The CAPTCHA widget to show (403 challenge_required): Cloudflare Turnstile's site key and script."""

    provider: Literal["turnstile"]
    site_key: str
    script: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None
    decline_code: str | None = None
    challenge: Challenge | None = None


class ErrorAnswer(BaseModel):
    error: ErrorDetail


class FollowUpMessage(BaseModel):
    """The body of a follow-up message on a queue: ids only, the consumer reads the record."""

    model_config = ConfigDict(extra="ignore")

    schema_version: Literal[1] = 1
    type: Step
    donation_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    correlation_id: str = ""
    # On the receipt queue: which mail is owed, the receipt or the refund notice (the record says for which
    # refunded total), or a pledge's (a manage link, a renewal to authenticate, a failed renewal try's dunning
    # notice, a donor's cancellation confirmed). Absent (None) means the receipt, so messages from before this
    # field read as they did, and a receipt's is sent as it was.
    mail: Literal["receipt", "refund_notice", "manage_link", "authenticate", "dunning", "canceled"] | None = None
    # A pledge's email (donations.pledge_manage): the pledge, and what the email answers (the request asking
    # for a link, the renewal to authenticate, the failed try's ``<period>#<try>``); ``donation_id`` is the
    # pledge's first gift or that renewal (its failures are recorded there, as a receipt's are).
    pledge_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    request_id: Annotated[str, StringConstraints(max_length=128)] | None = None
