"""Queue a year's statements (donations.statements): who gave in the year, who has theirs, queue the rest.

One run, two callers: the January schedule (the schedule-renewals function's ``year_end_statements``
event, template parameter ``StatementsRunDay``) and the operator (``donations-ops statements send``).

Who gave in a year, without a scan: the Donations table's ``day-index`` (keys only) is queried once
per UTC day from December 31 of the year before to January 1 of the year after (a gift's year is the
receipt's time zone's, up to 14 hours off UTC), then the records are read in batches of 100 and kept
if charged, dated in the year and not refunded in full. Who has theirs, or is on the way to it: the
Statements table's markers, read in batches of 100.

Resumable: each batch of ten messages on the receipt queue is followed by a ``queued_at`` on each
donor's marker, so a run cut off (the Lambda timeout, a dead terminal) leaves the queued donors
marked and the next run queues only the others. A run that dies between the send and the marks queues
those ten again: the consumer's claim sends each statement once. A queued marker older than
REQUEUE_AFTER no longer counts (its message may have been parked), so a later run queues it again.

This module is pure of the functions' logger and metrics (the operator tool imports it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from donations.identifiers import legacy_donor_key
from donations.models import Donation
from donations.statements import (
    MAX_IDS_IN_MESSAGE,
    SENT,
    STATEMENT_TYPE,
    StatementMessage,
    StatementStore,
    is_gift,
    statement_key,
)

SEND_BATCH = 10  # SendMessageBatch takes at most 10 entries
REQUEUE_AFTER = timedelta(hours=24)
STATEMENTS_EVENT = "year_end_statements"
"""The ``run`` of the schedule's constant input (template.yaml's StatementsRunRule)."""


class QueueRefused(Exception):
    """SQS refused part of a batch: the run stops; run it again (the refused donors are not marked)."""


@dataclass(frozen=True)
class YearOfDonors:
    year: int
    gifts: dict[str, list[str]]
    """Donor key (donations.statements.statement_key) -> the ids of their gifts in the year, for everyone
    with a gift in it."""
    sent: list[str]
    """Those whose statement was sent already."""
    queued: list[str] = field(default_factory=list)
    """Those queued by a recent run (or being sent), not sent yet."""

    @property
    def donors(self) -> list[str]:
        return sorted(self.gifts)

    @property
    def to_send(self) -> list[str]:
        done = set(self.sent) | set(self.queued)
        return [donor for donor in self.donors if donor not in done]


@dataclass(frozen=True)
class RunOutcome:
    year: int
    donors: int
    sent: int
    """Sent before this run."""
    queued_before: int
    queued: int
    """Queued by this run."""
    left: int
    """Still to queue: a run cut short leaves these to the next."""

    def as_dict(self) -> dict[str, int | bool]:
        return {
            "statements_year": self.year,
            "statements_donors": self.donors,
            "statements_sent": self.sent,
            "statements_queued": self.queued,
            "statements_left": self.left,
            "statements_finished": self.left == 0,
        }


def statements_year(now: datetime) -> int:
    """The year whose statements a January run sends: the one before."""
    return now.astimezone(UTC).year - 1


def days_around(year: int) -> list[date]:
    """The UTC days whose donations may be dated in ``year`` in some time zone."""
    first, last = date(year - 1, 12, 31), date(year + 1, 1, 1)
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def donors_of_year(store: StatementStore, year: int, time_zone: str, now: datetime | None = None) -> YearOfDonors:
    # One donor, one statement: grouped by address (its unkeyed hash), whichever donor key each record carries.
    by_address: dict[str, list[Donation]] = defaultdict(list)
    for day in days_around(year):
        for donation in store.donations(store.ids_of_day(day)):
            if donation.donor_key and is_gift(donation, year, time_zone):
                by_address[legacy_donor_key(donation.email)].append(donation)
    gifts = {statement_key(group): [d.donation_id for d in group] for group in by_address.values()}
    markers = store.markers(sorted(gifts), year)
    recent = ((now or datetime.now(UTC)) - REQUEUE_AFTER).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    sent = sorted(donor for donor, marker in markers.items() if marker.get("status") == SENT)
    on_the_way = sorted(
        donor
        for donor, marker in markers.items()
        if marker.get("status") != SENT and (marker.get("status") or str(marker.get("queued_at") or "") > recent)
    )
    return YearOfDonors(year, dict(gifts), sent, on_the_way)


def queue_statements(
    store: StatementStore, sqs: Any, queue_url: str, year: YearOfDonors, out_of_time: Callable[[], bool] = bool
) -> int:
    """One message per donor to send on the receipt queue, ten per call, each batch's donors marked queued;
    stops when ``out_of_time()`` says so. How many were queued."""
    donors, queued = year.to_send, 0
    for start in range(0, len(donors), SEND_BATCH):
        if out_of_time():
            break
        batch = donors[start : start + SEND_BATCH]
        _send_batch(sqs, queue_url, [_message(donor, year.year, year.gifts[donor]) for donor in batch])
        store.mark_queued(batch, year.year)
        queued += len(batch)
    return queued


def run_statements(
    store: StatementStore,
    sqs: Any,
    queue_url: str,
    *,
    year: int,
    time_zone: str,
    out_of_time: Callable[[], bool] = bool,
) -> RunOutcome:
    """The year's statements not sent nor queued yet, queued until done or out of time."""
    donors = donors_of_year(store, year, time_zone)
    queued = queue_statements(store, sqs, queue_url, donors, out_of_time)
    left = len(donors.to_send) - queued
    return RunOutcome(year, len(donors.donors), len(donors.sent), len(donors.queued), queued, left)


def _message(donor: str, year: int, ids: list[str]) -> StatementMessage:
    named = ids if len(ids) <= MAX_IDS_IN_MESSAGE else None  # the consumer finds them itself
    return StatementMessage(donor_key=donor, year=year, donation_ids=named)


def _send_batch(sqs: Any, queue_url: str, messages: list[StatementMessage]) -> None:
    entries = [
        {
            "Id": str(index),
            "MessageBody": message.model_dump_json(exclude_none=True),
            "MessageAttributes": {
                "type": {"DataType": "String", "StringValue": STATEMENT_TYPE},
                "statement_year": {"DataType": "String", "StringValue": str(message.year)},
            },
        }
        for index, message in enumerate(messages)
    ]
    response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
    failed = response.get("Failed") or []
    if failed:
        raise QueueRefused(f"SQS refused {len(failed)} statement message(s): {failed[0].get('Message')}; run again")
