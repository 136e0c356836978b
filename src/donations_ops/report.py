"""The report for the people who run the fundraising: for a period, what came in, what was sent, what is stuck.

It answers "did all of yesterday's donors get their receipts?" in one line, and names every donation
whose receipt is missing, with why in plain words. Read from the day-index (one query per day) and
the records, in batches: no scan, no DLQ receive.

Monthly giving: the period's renewals are among those donations (linked to their pledge by
``pledge_id`` in their metadata). The pledges are counted, never read, from the Pledges table's two
sparse indexes: the active ones from the due index (only an active pledge carries ``due_on``, its next
charge day, which lies between the schedule's look-back and two months ahead: one count query per
day of that window, :data:`DUE_WINDOW_AHEAD` days ahead to leave room), those waiting for someone and
those that lapsed in the period from the attention index (one count query each).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from boto3.dynamodb.conditions import Key

from donations.attention import reason_group
from donations.models import Attention, Donation, DonationStatus, StepStatus
from donations.money import with_code
from donations.pledges import ATTENTION_INDEX, DUE_INDEX, LAPSED, LOOK_BACK_DAYS, NEEDS_ATTENTION, due_days
from donations_ops import operator_store
from donations_ops.aws import Clients
from donations_ops.lookup import receipt_state
from donations_ops.pledges_cli import PLEDGES_TABLE
from donations_ops.stack_resources import OpsError, Stack

MAX_DAYS = 92
# An active pledge's next charge day is at most two months ahead (a pledge made, renewed or resumed today);
# the count looks a month further than that, to spare.
DUE_WINDOW_AHEAD = 92

# Outcomes in words for people who are not engineers.
OUTCOME_WORDS = {
    DonationStatus.SUCCEEDED: "received",
    DonationStatus.DECLINED: "card declined",
    DonationStatus.REQUIRES_ACTION: "waiting for the donor's bank (3-D Secure)",
    DonationStatus.PENDING: "not finished (payment service unavailable, or in progress)",
    DonationStatus.FAILED: "payment failed",
    DonationStatus.CANCELED: "payment canceled (3-D Secure never finished)",
}


@dataclass(frozen=True)
class Problem:
    donation_id: str
    created_at: str
    amount: str
    what: str
    """What is missing, in plain words."""
    why: str


@dataclass
class MonthlyGiving:
    """Monthly pledges: the renewals tried in the period (their donations), and the pledges as they stand."""

    active_pledges: int | None = None
    """Pledges on schedule now (None: this stack has no Pledges table)."""
    pledges_needing_attention: int | None = None
    """Pledges now waiting for the donor or an operator after a renewal failed (donations-ops pledges list)."""
    pledges_lapsed: int | None = None
    """Pledges that lapsed in the period (dunning ended, or a hard decline) and are lapsed still."""
    renewals_charged: int = 0
    renewals_failed: int = 0
    """Renewal tries declined or failed, or canceled because the donor never authenticated."""
    renewals_waiting_for_donor: int = 0
    """Renewals the bank wants the donor to authenticate (the donor was emailed a link)."""
    renewals_not_finished: int = 0
    recurring_income: dict[str, str] = field(default_factory=dict)
    """Currency -> the renewals received in the period, before refunds (never summed across currencies)."""


@dataclass
class Report:
    first_day: date
    last_day: date
    donations: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    received: dict[str, str] = field(default_factory=dict)
    """Currency -> total received (formatted), succeeded donations only, before refunds."""
    refunded: dict[str, str] = field(default_factory=dict)
    disputed: dict[str, str] = field(default_factory=dict)
    """Currency -> the amounts of the period's donations under dispute, open or closed."""
    lost_to_disputes: dict[str, str] = field(default_factory=dict)
    net: dict[str, str] = field(default_factory=dict)
    """Currency -> what remains given: received less refunded and lost to disputes (never summed across currencies)."""
    disputes: dict[str, int] = field(default_factory=dict)
    """Dispute status -> how many of the period's donations have a dispute in it."""
    dispute_fees: dict[str, str] = field(default_factory=dict)
    """Currency of Stripe's balance -> the dispute fees Stripe charged: a cost to the charity, not in ``net``."""
    refunds_failed: dict[str, str] = field(default_factory=dict)
    """Currency -> refunds that failed after succeeding: a gift again (in ``net``), owed back another way."""
    receipts_due: int = 0
    receipts_sent: int = 0
    receipts_missing: list[Problem] = field(default_factory=list)
    cards_asked: int = 0
    cards_saved: int = 0
    cards_missing: list[Problem] = field(default_factory=list)
    stuck: list[Problem] = field(default_factory=list)
    """Background steps retrying or parked, and payments not finished."""
    rows: list[dict[str, str]] = field(default_factory=list)
    monthly: MonthlyGiving = field(default_factory=MonthlyGiving)

    @property
    def receipts_answer(self) -> str:
        """The question the fundraising team asks, answered in one line."""
        if self.receipts_due == 0:
            return "No received donations in this period, so no receipts were due."
        if not self.receipts_missing:
            return f"Yes: all {self.receipts_due} donors whose donation was received got their receipt."
        missing = len(self.receipts_missing)
        return f"No: {self.receipts_sent} of {self.receipts_due} receipts sent; {missing} missing (listed below)."


def days(first: date, last: date) -> list[date]:
    if last < first:
        raise OpsError("the period ends before it starts")
    count = (last - first).days + 1
    if count > MAX_DAYS:
        raise OpsError(f"at most {MAX_DAYS} days at once")
    return [first + timedelta(days=n) for n in range(count)]


def build(clients: Clients, stack: Stack, first: date, last: date) -> Report:
    table = operator_store.donations_table(clients, stack)
    report = Report(first, last)
    found = [donation for day in days(first, last) for donation in operator_store.by_day(table, day)]
    tally(report, found)
    pledges_table = _pledges_table(clients, stack)
    if pledges_table is not None:
        count_pledges(report.monthly, pledges_table, first, last, datetime.now(UTC).date())
    return report


def _pledges_table(clients: Clients, stack: Stack) -> Any | None:
    name = stack.tables.get(PLEDGES_TABLE)
    resource = getattr(clients, "resource", None)
    return resource("dynamodb").Table(name) if name and resource else None


def count_pledges(monthly: MonthlyGiving, table: Any, first: date, last: date, today: date) -> None:
    """The pledges as they stand today, and those that lapsed from ``first`` to ``last``: count queries only."""
    ahead = [(today + timedelta(days=n)).isoformat() for n in range(1, DUE_WINDOW_AHEAD + 1)]
    window = due_days(today, LOOK_BACK_DAYS) + ahead
    monthly.active_pledges = sum(_count(table, DUE_INDEX, Key("due_on").eq(day)) for day in window)
    monthly.pledges_needing_attention = _count(table, ATTENTION_INDEX, Key("attention").eq(NEEDS_ATTENTION))
    # attention_since is a UTC stamp: the period's stamps sort from its first day to before the next day.
    since = Key("attention_since").between(first.isoformat(), (last + timedelta(days=1)).isoformat())
    monthly.pledges_lapsed = _count(table, ATTENTION_INDEX, Key("attention").eq(LAPSED) & since)


def _count(table: Any, index: str, condition: Any) -> int:
    arguments: dict[str, Any] = {"IndexName": index, "KeyConditionExpression": condition, "Select": "COUNT"}
    total = 0
    while True:
        page = table.query(**arguments)
        total += int(page.get("Count", 0))
        if "LastEvaluatedKey" not in page:
            return total
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@dataclass
class _Money:
    """The period's sums per currency, in minor units."""

    received: Counter[str] = field(default_factory=Counter)
    refunded: Counter[str] = field(default_factory=Counter)
    disputed: Counter[str] = field(default_factory=Counter)
    lost: Counter[str] = field(default_factory=Counter)
    net: Counter[str] = field(default_factory=Counter)
    fees: Counter[str] = field(default_factory=Counter)
    refunds_failed: Counter[str] = field(default_factory=Counter)

    def add(self, donation: Donation) -> None:
        code = donation.currency
        self.received[code] += donation.amount
        self.refunded[code] += donation.amount_refunded
        self.disputed[code] += donation.dispute_amount or 0
        self.lost[code] += donation.amount_lost_to_dispute
        self.net[code] += donation.net_amount
        self.refunds_failed[code] += donation.amount_refund_failed
        if donation.dispute_fee:
            self.fees[donation.dispute_fee_currency or code] += donation.dispute_fee


def _shown(sums: Counter[str], *, zeros: bool = False) -> dict[str, str]:
    return {c: with_code(a, c) for c, a in sorted(sums.items()) if a or zeros}


def tally(report: Report, found: list[Donation]) -> Report:
    outcomes: Counter[str] = Counter()
    money = _Money()
    disputes: Counter[str] = Counter()
    recurring: Counter[str] = Counter()
    for donation in found:
        outcomes[OUTCOME_WORDS[donation.status]] += 1
        report.rows.append(_row(donation))
        if donation.metadata.get("pledge_id"):
            _renewal(report.monthly, recurring, donation)
        if donation.status is DonationStatus.SUCCEEDED:
            money.add(donation)
            if donation.dispute_status:
                disputes[donation.dispute_status] += 1
            _receipt(report, donation)
            _card(report, donation)
        elif donation.status in (DonationStatus.PENDING, DonationStatus.REQUIRES_ACTION):
            report.stuck.append(_problem(donation, "payment not finished", OUTCOME_WORDS[donation.status]))
    report.donations = len(found)
    report.outcomes = dict(outcomes.most_common())
    report.received = _shown(money.received, zeros=True)
    report.refunded = _shown(money.refunded)
    report.disputed = _shown(money.disputed)
    report.lost_to_disputes = _shown(money.lost)
    report.net = _shown(money.net, zeros=True)
    report.disputes = dict(sorted(disputes.items()))
    report.dispute_fees = _shown(money.fees)
    report.refunds_failed = _shown(money.refunds_failed)
    report.monthly.recurring_income = _shown(recurring)
    return report


_RENEWAL_FAILED = (DonationStatus.DECLINED, DonationStatus.FAILED, DonationStatus.CANCELED)


def _renewal(monthly: MonthlyGiving, recurring: Counter[str], donation: Donation) -> None:
    if donation.status is DonationStatus.SUCCEEDED:
        monthly.renewals_charged += 1
        recurring[donation.currency] += donation.amount
    elif donation.status in _RENEWAL_FAILED:
        monthly.renewals_failed += 1
    elif donation.status is DonationStatus.REQUIRES_ACTION:
        monthly.renewals_waiting_for_donor += 1
    else:
        monthly.renewals_not_finished += 1


def _receipt(report: Report, donation: Donation) -> None:
    report.receipts_due += 1
    if donation.receipt_status is StepStatus.DONE:
        report.receipts_sent += 1
        return
    problem = _problem(donation, "receipt not sent", _why_receipt(donation))
    report.receipts_missing.append(problem)
    if donation.attention_step is not None or donation.failed_step is not None:
        report.stuck.append(problem)


def _card(report: Report, donation: Donation) -> None:
    if not donation.save_card:
        return
    report.cards_asked += 1
    if donation.card_status is StepStatus.DONE:
        report.cards_saved += 1
        return
    why = _why_step(donation, "card", donation.card_status)
    report.cards_missing.append(_problem(donation, "card not saved", why))


def _why_receipt(donation: Donation) -> str:
    return _why_step(donation, "receipt", donation.receipt_status)


def _why_step(donation: Donation, what: str, status: StepStatus) -> str:
    if status is StepStatus.DISCARDED:
        notes = [e.get("note", "") for e in donation.operator_log if e.get("action") == "discard"]
        return f"an operator decided not to send it: {notes[-1] if notes else 'no note'}"
    step = "send_receipt" if what == "receipt" else "tokenize"
    if donation.attention_step is not None and donation.attention_step.value == step:
        reason = reason_group(donation.last_error or "")
        if donation.attention is Attention.PARKED:
            return f"failed and set aside for an operator ({reason})"
        return f"being retried ({reason})" if donation.attention is Attention.RETRYING else "retried by an operator"
    if status is StepStatus.FAILED:
        return f"failed ({reason_group(donation.failure_reason or '')})"
    if status is StepStatus.IN_PROGRESS:
        return "being sent right now"
    return "on its way (queued)"


def _problem(donation: Donation, what: str, why: str) -> Problem:
    amount = with_code(donation.amount, donation.currency)
    return Problem(donation.donation_id, donation.created_at, amount, what, why)


def _row(donation: Donation) -> dict[str, str]:
    problem = ""
    if donation.status is DonationStatus.SUCCEEDED and donation.receipt_status is not StepStatus.DONE:
        problem = _why_receipt(donation)
    return {
        "donation_id": donation.donation_id,
        "created_at": donation.created_at,
        "outcome": OUTCOME_WORDS[donation.status],
        "amount": f"{donation.amount}",
        "currency": donation.currency.upper(),
        "amount_display": with_code(donation.amount, donation.currency),
        "amount_refunded": f"{donation.amount_refunded}",
        "net_amount": f"{donation.net_amount}" if donation.status is DonationStatus.SUCCEEDED else "0",
        "dispute": donation.dispute_status or "",
        "dispute_fee": f"{donation.dispute_fee}" if donation.dispute_fee else "",
        "refund_failed": f"{donation.amount_refund_failed}" if donation.amount_refund_failed else "",
        "receipt": receipt_state(donation),
        "receipt_sent_at": donation.receipt_sent_at or "",
        "card_saved": {True: "yes", False: "no"}[donation.card_status is StepStatus.DONE] if donation.save_card else "",
        "problem": problem,
        "pledge_id": donation.metadata.get("pledge_id", ""),
        "renewal_period": donation.metadata.get("renewal_period", ""),
    }


CSV_COLUMNS = (
    "donation_id", "created_at", "outcome", "amount", "currency", "amount_display",
    "amount_refunded", "net_amount", "dispute", "dispute_fee", "refund_failed",
    "receipt", "receipt_sent_at", "card_saved", "problem", "pledge_id", "renewal_period",
)  # fmt: skip


def as_csv(report: Report) -> str:
    """One row per donation, for a spreadsheet (amounts in minor units and as shown)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(report.rows)
    return out.getvalue()


def parse_day(text: str) -> date:
    if text in ("today", "yesterday"):
        today = datetime.now(UTC).date()
        return today if text == "today" else today - timedelta(days=1)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise OpsError(f"not a day: {text!r} (YYYY-MM-DD, today or yesterday; days are UTC)") from None
