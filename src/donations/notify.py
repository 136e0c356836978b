"""Operator notifications: every alarm state change relayed with its scale, and a notice when trouble grows.

CloudWatch alarms publish to the alarm topic; the notifier function relays each change to the
operator topic, adding what the alarm alone cannot say: which step is failing, how many donations
are retrying or parked, how many messages the DLQ holds, the top failure reasons, the first command
and the runbook section. The INSUFFICIENT_DATA -> OK change every new alarm makes is dropped: it is
start-up, not news. An alarm pages once when it fires; a step whose trouble keeps growing is
reported by the scheduled growth notice (at most one per step per window), never once per message. The
same scheduled run reminds operators of a dispute whose evidence is due soon (donations.dispute_reminders).

Each notification is an SNS message with a text for people (email, SMS) and, for machines (SQS,
HTTPS, Lambda subscribers and the local console), the alarm's JSON with a ``Notifier`` section.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from donations import attention, dispute_reminders
from donations.models import Step
from donations.observability import logger
from donations.settings import NotifierSettings

# The step each alarm is about, by the start of its name after the stack's prefix (template.yaml).
_STEP_PREFIXES = (
    ("tokenize-", Step.TOKENIZE),
    ("receipt-", Step.SEND_RECEIPT),
    ("send-receipt-", Step.SEND_RECEIPT),
    ("sendgrid-", Step.SEND_RECEIPT),
)
# Every AlarmDescription reads "<cause> First: <command> | Runbook: RUNBOOK.md#<section>" (a test keeps it so).
_DESCRIPTION = re.compile(
    r"^(?P<cause>.*?)\s*First:\s*(?P<first>.*?)\s*\|\s*Runbook:\s*RUNBOOK\.md#(?P<section>[\w-]+)"
)
_SUBJECT_LIMIT = 100  # SNS: at most 100 printable ASCII characters


@dataclass(frozen=True)
class StepContext:
    step: Step
    dlq_messages: int
    queue_messages: int
    summary: attention.StepSummary

    def as_dict(self) -> dict[str, Any]:
        s = self.summary
        return {
            "step": self.step.value,
            "dlq_messages": self.dlq_messages,
            "queue_messages": self.queue_messages,
            "donations_retrying": s.retrying,
            "donations_parked": s.parked,
            "donations_redriven": s.redriven,
            "parked_permanent": s.permanent,
            "top_reasons": [[reason, count] for reason, count in s.top_reasons],
            "failing_since": s.oldest_since,
        }

    def headline(self) -> str:
        s = self.summary
        return f"{s.retrying} retrying, {s.parked} parked, DLQ {self.dlq_messages}"

    def lines(self) -> list[str]:
        s = self.summary
        reasons = ", ".join(f"{reason} ({count})" for reason, count in s.top_reasons) or "none recorded"
        return [
            f"Step {self.step.value}: {s.donations} donation(s) need attention: {s.retrying} retrying, "
            f"{s.parked} parked ({s.permanent} permanent), {s.redriven} redriven.",
            f"Messages: {self.dlq_messages} in the DLQ, {self.queue_messages} in the queue.",
            f"Top reasons: {reasons}",
        ]


@dataclass(frozen=True)
class Notification:
    subject: str
    text: str
    document: dict[str, Any]

    def sns_message(self) -> str:
        """SNS MessageStructure "json": the text for people, the JSON for machine subscribers."""
        machine = json.dumps(self.document, default=str)
        return json.dumps({"default": self.text, "email": self.text, "sms": self.subject, "sqs": machine,
                           "https": machine, "http": machine, "lambda": machine, "email-json": machine})  # fmt: skip


def is_startup(alarm: dict[str, Any]) -> bool:
    """The first evaluation of a new alarm (AWS starts them in INSUFFICIENT_DATA): nobody needs to hear of it."""
    return alarm.get("OldStateValue") == "INSUFFICIENT_DATA" and alarm.get("NewStateValue") == "OK"


def step_of_alarm(section: str) -> Step | None:
    return next((step for prefix, step in _STEP_PREFIXES if section.startswith(prefix)), None)


def describe(alarm: dict[str, Any], prefix: str) -> tuple[str, str, str]:
    """(cause, first command, runbook section) from an alarm's description and name."""
    found = _DESCRIPTION.match(" ".join(str(alarm.get("AlarmDescription") or "").split()))
    name = str(alarm.get("AlarmName", ""))
    section = found["section"] if found else name.removeprefix(prefix)
    return (
        (found["cause"] if found else str(alarm.get("AlarmDescription") or name)),
        (found["first"] if found else ""),
        section,
    )


def compose(
    alarm: dict[str, Any], context: StepContext | None, settings: NotifierSettings, *, problem: str | None = None
) -> Notification:
    cause, first, section = describe(alarm, settings.alarm_name_prefix)
    state, old = str(alarm.get("NewStateValue", "?")), str(alarm.get("OldStateValue", "?"))
    runbook = f"{settings.runbook_url}#{section}"
    headline = ("cleared; " if state == "OK" else "") + (context.headline() if context else cause)
    lines = [f"{state}: {alarm.get('AlarmName')}", cause, ""]
    lines += context.lines() if context else []
    if problem:
        lines.append(f"(Counts unavailable: {problem})")
    lines += [f"First: {first}" if first else "", f"Runbook: {runbook}", ""]
    lines.append(f"{old} -> {state} at {alarm.get('StateChangeTime')}: {alarm.get('NewStateReason')}")
    document = {
        **alarm,
        "Notifier": {
            "kind": "alarm",
            "section": section,
            "runbook": runbook,
            "first_command": first,
            "cause": cause,
            "summary": headline,
            **({"context": context.as_dict()} if context else {}),
        },
    }
    return Notification(_subject(f"{state}: {section}: {headline}"), "\n".join(lines).strip(), document)


def growth_notice(
    context: StepContext, new: int, settings: NotifierSettings, now: datetime
) -> Notification:  # fmt: skip
    section = f"{'receipt' if context.step is Step.SEND_RECEIPT else 'tokenize'}-" + (
        "step-failing" if context.summary.retrying else "dlq-not-empty"
    )
    minutes = settings.digest_window_seconds // 60 or 1
    headline = f"+{new} in {minutes} min; {context.headline()}"
    runbook = f"{settings.runbook_url}#{section}"
    lines = [
        f"GROWING: {context.step.value} kept failing: {new} more donation(s) in trouble in the last {minutes} minutes.",
        "",
        *context.lines(),
        f"Runbook: {runbook}",
    ]
    document = {
        "AlarmName": f"{settings.alarm_name_prefix}{section}",
        "NewStateValue": "GROWING",
        "StateChangeTime": now.isoformat(),
        "Notifier": {"kind": "growth", "section": section, "runbook": runbook, "summary": headline,
                     "new_in_window": new, "context": context.as_dict()},
    }  # fmt: skip
    return Notification(_subject(f"GROWING: {section}: {headline}"), "\n".join(lines), document)


def evidence_reminder(due: dispute_reminders.EvidenceDue, settings: NotifierSettings, now: datetime) -> Notification:
    """An open dispute's evidence is due soon and not submitted (donations.dispute_reminders)."""
    stack = settings.alarm_name_prefix.removesuffix("-")
    first = f"donations-ops --stack-name {stack} disputes"
    runbook = f"{settings.runbook_url}#dispute"
    headline = f"evidence for donation {due.donation_id} due by {due.due_by}"
    lines = [
        f"DUE SOON: a dispute's evidence is due by {due.due_by} and not submitted (donation {due.donation_id}).",
        "Respond in the Stripe Dashboard before then, or the dispute is lost.",
        "",
        f"First: {first}",
        f"Then: donations-ops --stack-name {stack} donor show {due.donation_id}",
        f"Runbook: {runbook} (Evidence due soon)",
    ]
    document = {
        "AlarmName": f"{settings.alarm_name_prefix}dispute",
        "NewStateValue": "DUE_SOON",
        "StateChangeTime": now.isoformat(),
        "Notifier": {"kind": "evidence_due", "section": "dispute", "runbook": runbook, "first_command": first,
                     "summary": headline, "donation_id": due.donation_id, "evidence_due_by": due.due_by},
    }  # fmt: skip
    return Notification(_subject(f"DUE SOON: dispute: {headline}"), "\n".join(lines), document)


def _subject(text: str) -> str:
    printable = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)
    return printable[: _SUBJECT_LIMIT - 3] + "..." if len(printable) > _SUBJECT_LIMIT else printable


class Notifier:
    """Relays alarm changes and growth notices to the operator topic (SNS), with counts from SQS and DynamoDB."""

    def __init__(self, settings: NotifierSettings, *, sns: Any, sqs: Any, table: Any) -> None:
        self.settings = settings
        self._sns, self._sqs, self._table = sns, sqs, table

    def relay(self, alarm: dict[str, Any]) -> Notification | None:
        if is_startup(alarm):
            logger.info("Start-up OK dropped", extra={"alarm": alarm.get("AlarmName")})
            return None
        _, _, section = describe(alarm, self.settings.alarm_name_prefix)
        step, context, problem = step_of_alarm(section), None, None
        if step is not None:
            try:
                context = self.context(step)
            except Exception as error:  # the page must go out even when the counts cannot be read
                logger.exception("Counts unavailable; relaying the alarm without them")
                problem = type(error).__name__
        notification = compose(alarm, context, self.settings, problem=problem)
        self._publish(notification)
        return notification

    def growth(self, now: datetime) -> list[Notification]:
        since = (now - timedelta(seconds=self.settings.digest_window_seconds)).isoformat(timespec="milliseconds")
        since = since.replace("+00:00", "Z")
        sent = []
        for step in (Step.SEND_RECEIPT, Step.TOKENIZE):
            found = attention.entries(self._table, step)
            new = sum(1 for entry in found if entry.since >= since)
            # Trouble that began within the window was just paged by its alarm; growth is news only after.
            if new and any(entry.since < since for entry in found):
                notification = growth_notice(self._context(step, found), new, self.settings, now)
                self._publish(notification)
                sent.append(notification)
        return sent

    def evidence_reminders(self, now: datetime) -> list[Notification]:
        """Open disputes whose evidence is due within days: each reminded once a day (donations.dispute_reminders)."""
        sent: list[Notification] = []

        def publish(due: dispute_reminders.EvidenceDue) -> None:
            notification = evidence_reminder(due, self.settings, now)
            self._publish(notification)
            sent.append(notification)

        dispute_reminders.remind(self._table, now, publish)
        return sent

    def context(self, step: Step) -> StepContext:
        return self._context(step, attention.entries(self._table, step))

    def _context(self, step: Step, found: list[attention.AttentionEntry]) -> StepContext:
        queue, dlq = (
            (self.settings.receipt_queue_url, self.settings.receipt_dlq_url)
            if step is Step.SEND_RECEIPT
            else (self.settings.tokenize_queue_url, self.settings.tokenize_dlq_url)
        )
        return StepContext(step, self._count(dlq), self._count(queue), attention.summarize(step, found))

    def _count(self, queue_url: str) -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attributes = self._sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
        return sum(int(attributes.get(name, 0)) for name in names)

    def _publish(self, notification: Notification) -> None:
        self._sns.publish(
            TopicArn=self.settings.operator_topic_arn,
            Subject=notification.subject,
            Message=notification.sns_message(),
            MessageStructure="json",
        )
        logger.info("Operators notified", extra={"subject": notification.subject})
