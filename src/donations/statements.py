"""Year-end statements: one email per donor and calendar year listing the year's gifts, net of refunds.

Who is a donor: an address, known by its donor key (donations.identifiers; every donation and renewal
carries its donor's; older records the address's legacy key, :func:`statement_key`). The January run
(donations.statement_run: the schedule, or ``donations-ops statements send --year Y``) finds the
year's donors through the Donations table's ``day-index`` (one query per day of the year, keys only,
then the records) and queues one :class:`StatementMessage` per donor on the receipt queue; the
send-receipt function sends each one (donations.statement_queue.send_statement). This module is the statement
itself and its store, without the functions' logger and metrics, so the operator tool and the local
stack can import it before the functions' environment is set.

Exactly once per donor and year, the way a receipt is sent once (donations.steps.send_receipt): a
marker item in the Statements table (``donor_key``, ``year``) is claimed with a conditional write
before sending (a lease) and marked sent with SendGrid's ``X-Message-Id`` after. A rerun of the
operator's run, a duplicate message or a second consumer finds the marker claimed or sent and sends
nothing. The same crash window as the receipt's remains: a consumer that dies after SendGrid
accepted the mail and before the marker says so sends it again once its lease ran out (SendGrid has
no idempotency key); we accept that rare duplicate over a statement that is never sent.

A donor's gifts are read through the ``donor-index`` (keys only) and the records themselves: a query,
never a scan. Gifts in several currencies are totalled per currency, never summed into one number.
A gift is in the year in which its receipt is dated (the receipt's time zone), and counts for what
remains after refunds and a lost dispute (``Donation.net_amount``); a gift with nothing left is left out.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal, Protocol
from zoneinfo import ZoneInfo

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from donations import money
from donations.conditional import ConditionFailed, Lease, clock, condition_failed
from donations.errors import RetryableStepFailure
from donations.identifiers import legacy_donor_key
from donations.models import Donation, DonationStatus, utc_now
from donations.settings import MailSettings
from donations.store import DAY_INDEX, DONOR_INDEX

STATEMENT_TYPE = "send_statement"
SENT = "sent"
SENDING = "sending"
_CLAIM = Lease("claim_until")
# A message stays far below SQS's 256 KB with this many ids (about 35 bytes each); a donor with more
# (a weekly gift for 20 years) gets a message without ids, and the consumer queries the donor index.
MAX_IDS_IN_MESSAGE = 1_000
BATCH_GET = 100  # BatchGetItem takes at most 100 keys
BATCH_GET_ROUNDS = 5


class StatementMessage(BaseModel):
    """The body of a statement message on the receipt queue: the donor's key and the year, nothing more."""

    model_config = ConfigDict(extra="ignore")

    schema_version: Literal[1] = 1
    type: Literal["send_statement"] = "send_statement"
    donor_key: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
    year: int = Field(ge=2000, le=2999)
    # The year's gifts the operator's run found (it read them already): read by key, no index query.
    # Absent: the consumer finds the donor's donations itself (donor-index).
    donation_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=MAX_IDS_IN_MESSAGE
    )


@dataclass(frozen=True)
class Gift:
    """One line of a statement."""

    donation_id: str
    created_at: str
    amount: int
    refunded: int
    currency: str
    monthly: bool
    disputed: int = 0
    """Taken back by a dispute the charity lost."""

    @property
    def net(self) -> int:
        return max(0, self.amount - self.refunded - self.disputed)


@dataclass(frozen=True)
class Statement:
    """What one donor gave in one year: the address and name of their latest gift, and the gifts."""

    donor_key: str
    year: int
    email: str
    name: str
    gifts: tuple[Gift, ...]

    def totals(self) -> dict[str, int]:
        """Net total per currency (never one sum across currencies)."""
        totals: dict[str, int] = defaultdict(int)
        for gift in self.gifts:
            totals[gift.currency] += gift.net
        return dict(sorted(totals.items()))


def year_of(timestamp: str, time_zone: str) -> int:
    """The calendar year of a UTC timestamp in the receipt's time zone (the year its receipt is dated)."""
    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return moment.astimezone(ZoneInfo(time_zone)).year


def is_gift(donation: Donation, year: int, time_zone: str) -> bool:
    """On the year's statement: charged, dated in ``year``, something left after refunds, not erased."""
    return (
        donation.status is DonationStatus.SUCCEEDED
        and bool(donation.email)
        and donation.net_amount > 0
        and year_of(donation.created_at, time_zone) == year
    )


def statement_key(donations: list[Donation]) -> str:
    """The key one donor's statement goes by (its marker's and message's), whichever keys their records carry.

    Records written before donor keys were keyed carry the unkeyed ``legacy_donor_key`` of the same
    address: the donor's keyed key if any record has it, else the legacy one. One donor, one statement."""
    keys = {d.donor_key for d in donations if d.donor_key}
    keyed = sorted(key for key in keys if not any(key == legacy_donor_key(d.email) for d in donations if d.email))
    return keyed[0] if keyed else sorted(keys)[0]


def theirs(donor_key: str, donations: list[Donation]) -> list[Donation]:
    """Those still this donor's (an erased record has no key any more): carrying their key, or the legacy
    key of an address their records carrying it have."""
    legacy = {legacy_donor_key(d.email) for d in donations if d.donor_key == donor_key and d.email}
    return [d for d in donations if d.donor_key is not None and (d.donor_key == donor_key or d.donor_key in legacy)]


def statement_of(donor_key: str, year: int, donations: list[Donation], time_zone: str) -> Statement | None:
    """The donor's statement for ``year`` from their donations (any years, any order); None without a gift.

    A gift: charged, dated in ``year``, with something left after refunds. The address and name are
    the latest gift's (the donor may have corrected them since the first)."""
    gifts = sorted(
        (
            Gift(
                donation_id=d.donation_id,
                created_at=d.created_at,
                amount=d.amount,
                refunded=d.amount_refunded,
                currency=d.currency,
                # A renewal names its pledge; the first gift of a monthly pledge carries its day of month.
                monthly="pledge_id" in d.metadata or d.pledge_day_of_month is not None,
                disputed=d.amount_lost_to_dispute,
            )
            for d in donations
            if is_gift(d, year, time_zone)
        ),
        key=lambda gift: (gift.created_at, gift.donation_id),
    )
    if not gifts:
        return None
    latest = max((d for d in donations if d.donation_id in {g.donation_id for g in gifts}), key=lambda d: d.created_at)
    return Statement(donor_key, year, latest.email, latest.name, tuple(gifts))


def statement_data(statement: Statement, settings: MailSettings) -> dict[str, Any]:
    """The dynamic template data (src/donations_ops/statement_template/ reads exactly these keys)."""
    locale, zone = settings.receipt_locale, settings.receipt_time_zone
    gifts = [
        {
            "date": money.format_day(gift.created_at, locale, zone),
            "receipt_number": gift.donation_id,
            "kind": "Monthly" if gift.monthly else "One-time",
            "amount_display": money.format_money(gift.net, gift.currency, locale),
            "refund_note": _refund_note(gift, locale),
        }
        for gift in statement.gifts
    ]
    totals = [
        {"currency": currency.upper(), "total_display": money.format_money(total, currency, locale)}
        for currency, total in statement.totals().items()
    ]
    return {
        "donor_name": statement.name,
        "year": str(statement.year),
        "gifts": gifts,
        "gift_count": str(len(gifts)),
        "totals": totals,
        "org_name": settings.org_name,
        "org_address": settings.org_address,
        "org_tax_id": settings.org_tax_id,
        "goods_or_services_statement": settings.goods_or_services_statement,
        "support_email": settings.support_email,
    }


def _refund_note(gift: Gift, locale: str) -> str:
    """``"$25.00 given, $10.00 refunded"`` for a gift that did not stay whole; empty for one that did."""
    parts = [f"{money.format_money(gift.amount, gift.currency, locale)} given"]
    if gift.refunded:
        parts.append(f"{money.format_money(gift.refunded, gift.currency, locale)} refunded")
    if gift.disputed:
        parts.append(f"{money.format_money(gift.disputed, gift.currency, locale)} lost to a dispute")
    return ", ".join(parts) if len(parts) > 1 else ""


class StatementMailer(Protocol):
    def send_statement(self, statement: Statement) -> str:
        """Send it; SendGrid's X-Message-Id. Raises RetryableStepFailure or PermanentStepFailure."""
        ...


class StatementStore:
    """The donor's donations (Donations table) and the statement markers (Statements table)."""

    def __init__(self, donations: Any, statements: Any) -> None:
        # boto3 DynamoDB Table resources.
        self._donations = donations
        self._statements = statements

    def donations_of(self, donor_key: str) -> list[Donation]:
        """Every donation carrying this donor key: the donor-index (keys only), then the records, 100 a call."""
        return self.donations(self._ids(DONOR_INDEX, Key("donor_key").eq(donor_key)))

    def ids_of_day(self, day: date) -> list[str]:
        """The ids of the donations made on one UTC day (the day-index, keys only)."""
        return self._ids(DAY_INDEX, Key("created_day").eq(day.isoformat()))

    def _ids(self, index: str, condition: Any) -> list[str]:
        arguments: dict[str, Any] = {"IndexName": index, "KeyConditionExpression": condition}
        ids: list[str] = []
        while True:
            page = self._donations.query(**arguments)
            ids += [str(item["donation_id"]) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return ids
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def donations(self, ids: list[str]) -> list[Donation]:
        """The donations with these ids (those that exist), read 100 a call."""
        return [
            Donation.model_validate(item)
            for start in range(0, len(ids), BATCH_GET)
            for item in self._records(ids[start : start + BATCH_GET])
        ]

    def _records(self, ids: list[str]) -> list[dict[str, Any]]:
        """BatchGetItem of up to 100 ids; keys DynamoDB left unprocessed are asked again (a retryable failure
        if they still are, so the statement is never sent without a gift)."""
        name = self._donations.name
        request: dict[str, Any] = {name: {"Keys": [{"donation_id": i} for i in ids]}}
        found: list[dict[str, Any]] = []
        for _ in range(BATCH_GET_ROUNDS):
            response = self._donations.meta.client.batch_get_item(RequestItems=request)
            found += response.get("Responses", {}).get(name, [])
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return found
        raise RetryableStepFailure("send_statement:donations_unprocessed")

    def markers(self, donors: list[str], year: int) -> dict[str, dict[str, Any]]:
        """The markers of these donors for ``year`` (those that exist), read 100 a call."""
        name = self._statements.name
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(donors), BATCH_GET):
            keys = [{"donor_key": donor, "year": year} for donor in donors[start : start + BATCH_GET]]
            request: dict[str, Any] = {name: {"Keys": keys, "ConsistentRead": True}}
            for _ in range(BATCH_GET_ROUNDS):
                response = self._statements.meta.client.batch_get_item(RequestItems=request)
                found |= {str(item["donor_key"]): dict(item) for item in response.get("Responses", {}).get(name, [])}
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                raise RetryableStepFailure("statements:markers_unprocessed")
        return found

    def mark_queued(self, donors: list[str], year: int) -> None:
        """A run queued these donors' statements: a later run leaves them alone (donations.statement_run)."""
        now = utc_now()
        for donor in donors:
            self._statements.update_item(
                Key={"donor_key": donor, "year": year},
                UpdateExpression="SET queued_at = :now",
                ExpressionAttributeValues={":now": now},
            )

    def marker(self, donor_key: str, year: int) -> dict[str, Any] | None:
        item = self._statements.get_item(Key={"donor_key": donor_key, "year": year}, ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def claim(self, donor_key: str, year: int, lease_seconds: int, now: float | None = None) -> bool:
        """Take the right to send this statement: False if it was sent or another consumer holds a live lease."""
        now = clock(now)
        claimable = Attr("status").not_exists() | (Attr("status").eq(SENDING) & _CLAIM.expired(now))
        try:
            self._statements.update_item(
                Key={"donor_key": donor_key, "year": year},
                UpdateExpression="SET #status = :sending, #claim = :until, #updated = :now",
                ConditionExpression=claimable,
                ExpressionAttributeNames={"#status": "status", "#claim": _CLAIM.attribute, "#updated": "updated_at"},
                ExpressionAttributeValues={
                    ":sending": SENDING,
                    ":until": _CLAIM.ends(now, lease_seconds),
                    ":now": utc_now(),
                },
            )
        except ClientError as error:
            if condition_failed(error):
                return False
            raise
        return True

    def release(self, donor_key: str, year: int) -> None:
        """Give the claim back after a failed send, so the retry does not wait for the lease."""
        try:
            self._statements.delete_item(
                Key={"donor_key": donor_key, "year": year}, ConditionExpression=Attr("status").eq(SENDING)
            )
        except ClientError as error:
            if not condition_failed(error):
                raise

    def mark_sent(self, statement: Statement, message_id: str) -> None:
        """What was sent, for the donor's export: ids and totals, never the address or the name."""
        try:
            self._statements.update_item(
                Key={"donor_key": statement.donor_key, "year": statement.year},
                UpdateExpression="SET #status = :sent, message_id = :id, sent_at = :now, updated_at = :now, "
                "donation_ids = :ids, totals = :totals REMOVE #claim",
                ConditionExpression=Attr("status").eq(SENDING),
                ExpressionAttributeNames={"#status": "status", "#claim": _CLAIM.attribute},
                ExpressionAttributeValues={
                    ":sent": SENT,
                    ":id": message_id,
                    ":now": utc_now(),
                    ":ids": [gift.donation_id for gift in statement.gifts],
                    ":totals": statement.totals(),
                },
            )
        except ClientError as error:
            if condition_failed(error):
                raise ConditionFailed(statement.donor_key) from error
            raise
