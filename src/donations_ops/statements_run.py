"""Queue the year-end statements of one year (donations.statements): who gave, who has theirs, queue the rest.

Who gave in a year, without a scan: the Donations table's ``day-index`` (keys only) is queried once
per UTC day from December 31 of the year before to January 1 of the year after (a gift's year is the
receipt's time zone's, up to 14 hours off UTC), then the records are read in batches of 100 and kept
if charged, dated in the year and not refunded in full. Who has theirs: the Statements table's markers,
read in batches of 100. One message per remaining donor goes on the receipt queue, ten per call.

A run that dies midway is run again: the donors whose statement was sent are skipped by their marker,
and a donor queued twice is sent one statement (the consumer's claim).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from donations.statements import MAX_IDS_IN_MESSAGE, SENT, StatementMessage, is_gift
from donations_ops import operator_store
from donations_ops.aws import Clients
from donations_ops.stack_resources import OpsError, Stack

STATEMENTS_TABLE = "StatementsTable"
RECEIPT_QUEUE = "ReceiptQueue"
TIME_ZONE_PARAMETER = "ReceiptTimeZone"
SEND_BATCH = 10  # SendMessageBatch takes at most 10 entries


@dataclass(frozen=True)
class YearOfDonors:
    year: int
    gifts: dict[str, list[str]]
    """Donor key -> the ids of their gifts in the year, for everyone with a gift in it."""
    sent: list[str]
    """Those whose statement was sent already."""

    @property
    def donors(self) -> list[str]:
        return sorted(self.gifts)

    @property
    def to_send(self) -> list[str]:
        done = set(self.sent)
        return [donor for donor in self.donors if donor not in done]


def statements_table(clients: Clients, stack: Stack) -> Any:
    name = stack.tables.get(STATEMENTS_TABLE)
    if name is None:
        raise OpsError(f"stack {stack.name!r} has no {STATEMENTS_TABLE}")
    return clients.resource("dynamodb").Table(name)  # type: ignore[attr-defined]


def stack_parameters(clients: Clients, stack: Stack) -> dict[str, str]:
    described = clients("cloudformation").describe_stacks(StackName=stack.name)["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in described.get("Parameters", [])}


def receipt_time_zone(clients: Clients, stack: Stack) -> str:
    """The time zone receipts are dated in (the stack's ReceiptTimeZone; UTC when it has none)."""
    return stack_parameters(clients, stack).get(TIME_ZONE_PARAMETER) or "UTC"


def days_around(year: int) -> list[date]:
    """The UTC days whose donations may be dated in ``year`` in some time zone."""
    first, last = date(year - 1, 12, 31), date(year + 1, 1, 1)
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def donors_of_year(donations: Any, statements: Any, year: int, time_zone: str) -> YearOfDonors:
    gifts: dict[str, list[str]] = defaultdict(list)
    for day in days_around(year):
        for donation in operator_store.by_day(donations, day):
            if donation.donor_key and is_gift(donation, year, time_zone):
                gifts[donation.donor_key].append(donation.donation_id)
    return YearOfDonors(year, dict(gifts), sent_of(statements, sorted(gifts), year))


def sent_of(statements: Any, donors: list[str], year: int) -> list[str]:
    """The donors among ``donors`` whose statement for ``year`` was sent (BatchGetItem, 100 keys a call)."""
    client = statements.meta.client
    sent: set[str] = set()
    for start in range(0, len(donors), operator_store.BATCH_GET):
        keys = [{"donor_key": donor, "year": year} for donor in donors[start : start + operator_store.BATCH_GET]]
        request: dict[str, Any] = {statements.name: {"Keys": keys, "ProjectionExpression": "donor_key, #s"}}
        request[statements.name]["ExpressionAttributeNames"] = {"#s": "status"}
        for _ in range(10):  # unprocessed keys are asked again, a bounded number of times
            response = client.batch_get_item(RequestItems=request)
            sent |= {str(i["donor_key"]) for i in response["Responses"].get(statements.name, []) if i["status"] == SENT}
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
    return sorted(sent)


def queue_statements(sqs: Any, queue_url: str, year: YearOfDonors) -> int:
    """One message per donor not sent yet on the receipt queue, ten per call; how many were queued."""
    messages = [_message(donor, year.year, year.gifts[donor]) for donor in year.to_send]
    for start in range(0, len(messages), SEND_BATCH):
        _send_batch(sqs, queue_url, messages[start : start + SEND_BATCH])
    return len(messages)


def _message(donor: str, year: int, ids: list[str]) -> StatementMessage:
    named = ids if len(ids) <= MAX_IDS_IN_MESSAGE else None  # the consumer finds them itself
    return StatementMessage(donor_key=donor, year=year, donation_ids=named)


def _send_batch(sqs: Any, queue_url: str, messages: list[StatementMessage]) -> None:
    entries = [
        {
            "Id": str(index),
            "MessageBody": message.model_dump_json(exclude_none=True),
            "MessageAttributes": {
                "type": {"DataType": "String", "StringValue": "send_statement"},
                "statement_year": {"DataType": "String", "StringValue": str(message.year)},
            },
        }
        for index, message in enumerate(messages)
    ]
    response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
    failed = response.get("Failed") or []
    if failed:
        raise OpsError(f"SQS refused {len(failed)} statement message(s): {failed[0].get('Message')}; run again")
