"""Evidence deadlines: operators are reminded of an open dispute whose evidence is due soon and not submitted.

Stripe's ``evidence_details.due_by`` is the last moment to respond; after it the dispute is lost by default
(docs.stripe.com/disputes/responding). The dispute alarm pages when a dispute opens, and a page is easy to
miss; so the notifier's scheduled run (every 15 minutes, already there for growth notices) also reads the
sparse ``dispute-index`` (open disputes, sorted by deadline: one small query, no scan) up to the reminder
window, and tells operators through the operator topic, at most once per dispute per UTC day. Nothing is
added to the fixed bill: no alarm, no metric, no schedule.

Evidence not submitted: the dispute still ``needs_response`` (``warning_needs_response`` for an inquiry);
Stripe moves it to ``under_review`` once evidence is submitted (``stripe.Dispute.status`` of the pinned SDK).
The day's reminder is claimed with a conditional write before it is published and given back if publishing
fails, so two overlapping runs remind once and a failed publish is tried again by the next run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from boto3.dynamodb.conditions import Attr, Key

from donations.conditional import ConditionFailed, conditional_update
from donations.observability import logger
from donations.store import DISPUTE_INDEX, DISPUTE_OPEN

REMINDER_WINDOW = timedelta(days=3)
SECTION = "dispute-evidence-due"
_AWAITING_EVIDENCE = ["needs_response", "warning_needs_response"]
_REMINDED_ON = "dispute_reminded_on"


@dataclass(frozen=True)
class EvidenceDue:
    donation_id: str
    due_by: str


def due_soon(table: Any, now: datetime) -> list[EvidenceDue]:
    """Open disputes whose evidence deadline falls before the end of the reminder window (past ones too:
    a deadline just missed is still worth a word), nearest first."""
    until = _iso(now + REMINDER_WINDOW)
    arguments: dict[str, Any] = {
        "IndexName": DISPUTE_INDEX,
        "KeyConditionExpression": Key(DISPUTE_OPEN).eq("open") & Key("dispute_evidence_due_by").lte(until),
    }
    found: list[EvidenceDue] = []
    while True:
        page = table.query(**arguments)
        found += [EvidenceDue(str(i["donation_id"]), str(i["dispute_evidence_due_by"])) for i in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return found
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def claim_todays_reminder(table: Any, due: EvidenceDue, today: str) -> bool:
    """Today's reminder for this dispute, if it still awaits evidence and nobody reminded of it today."""
    try:
        conditional_update(
            table,
            {"donation_id": due.donation_id},
            {_REMINDED_ON: today},
            remove=None,
            condition=Attr(DISPUTE_OPEN).eq("open")
            & Attr("dispute_status").is_in(_AWAITING_EVIDENCE)
            & (Attr(_REMINDED_ON).not_exists() | Attr(_REMINDED_ON).ne(today)),
            returning="NONE",
        )
    except ConditionFailed:
        return False
    return True


def give_back(table: Any, due: EvidenceDue) -> None:
    conditional_update(
        table, {"donation_id": due.donation_id}, {_REMINDED_ON: None}, remove=None, condition=None, returning="NONE"
    )


def remind(table: Any, now: datetime, publish: Callable[[EvidenceDue], None]) -> list[EvidenceDue]:
    """Remind operators of each dispute due soon, once a day; the reminders sent."""
    today = now.date().isoformat()
    sent = []
    for due in due_soon(table, now):
        if not claim_todays_reminder(table, due, today):
            continue
        try:
            publish(due)
        except Exception:
            give_back(table, due)
            raise
        logger.warning("Dispute evidence due soon; operators reminded", extra={"donation_id": due.donation_id})
        sent.append(due)
    return sent


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
