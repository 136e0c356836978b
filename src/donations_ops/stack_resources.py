"""Find the pipeline's resources from its CloudFormation stack: queues and their DLQs, tables, topics, alarms."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from donations_ops.aws import Clients

QUEUE_TYPE = "AWS::SQS::Queue"
TABLE_TYPE = "AWS::DynamoDB::Table"
TOPIC_TYPE = "AWS::SNS::Topic"
ALARM_TYPE = "AWS::CloudWatch::Alarm"
DONATIONS_TABLE = "DonationsTable"
"""Logical id of the table whose records say why a step failed."""


class OpsError(Exception):
    """A usage or configuration problem the CLI reports with exit code 2."""


class StackNotFound(OpsError):
    pass


class QueueNotFound(OpsError):
    pass


@dataclass(frozen=True)
class Queue:
    logical_id: str
    url: str
    arn: str
    dlq_arn: str | None = None
    """Where this queue's RedrivePolicy sends messages (None: it has no DLQ)."""
    max_receive_count: int | None = None

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Stack:
    name: str
    queues: dict[str, Queue]
    """Logical id -> queue, in the stack's order."""
    tables: dict[str, str] = field(default_factory=dict)
    """Logical id -> table name."""
    topics: dict[str, str] = field(default_factory=dict)
    """Logical id -> topic ARN."""
    alarm_names: tuple[str, ...] = ()
    """Alarms that are stack resources (on AWS; moto skips them, see :mod:`donations_ops.alarms`)."""

    def dlqs(self) -> list[Queue]:
        """Queues that another stack queue's RedrivePolicy points at."""
        targets = {q.dlq_arn for q in self.queues.values() if q.dlq_arn}
        return [q for q in self.queues.values() if q.arn in targets]

    def source_of(self, dlq: Queue) -> Queue:
        """The queue whose failed messages land in ``dlq``: where a redrive sends them back."""
        sources = [q for q in self.queues.values() if q.dlq_arn == dlq.arn]
        if len(sources) != 1:
            # Several sources could share a DLQ; then a redrive cannot tell where each message came from.
            found = ", ".join(q.logical_id for q in sources) or "none"
            raise QueueNotFound(f"{dlq.logical_id}: expected exactly one source queue, found {found}")
        return sources[0]

    def pairs(self) -> list[tuple[Queue, Queue | None]]:
        """(source queue, its DLQ or None) for every queue that is not itself a DLQ."""
        dlq_arns = {q.arn for q in self.dlqs()}
        by_arn = {q.arn: q for q in self.queues.values()}
        return [
            (q, by_arn.get(q.dlq_arn) if q.dlq_arn else None) for q in self.queues.values() if q.arn not in dlq_arns
        ]

    @property
    def donations_table(self) -> str | None:
        return self.tables.get(DONATIONS_TABLE)


def discover(clients: Clients, stack_name: str) -> Stack:
    """Read the stack's resources and the queues' redrive settings."""
    resources = _stack_resources(clients("cloudformation"), stack_name)
    by_type: dict[str, dict[str, str]] = {}
    for logical_id, (kind, physical_id) in resources.items():
        by_type.setdefault(kind, {})[logical_id] = physical_id
    sqs = clients("sqs")
    queues = {lid: _queue(sqs, lid, url) for lid, url in by_type.get(QUEUE_TYPE, {}).items()}
    return Stack(
        name=stack_name,
        queues=queues,
        tables=by_type.get(TABLE_TYPE, {}),
        topics=by_type.get(TOPIC_TYPE, {}),
        alarm_names=tuple(by_type.get(ALARM_TYPE, {}).values()),
    )


def physical_id(clients: Clients, stack_name: str, logical_id: str) -> str:
    """The name or id of one of the stack's resources."""
    found = _stack_resources(clients("cloudformation"), stack_name).get(logical_id)
    if found is None:
        raise OpsError(f"stack {stack_name!r} has no {logical_id}: is it this pipeline's stack?")
    return found[1]


def _stack_resources(cloudformation: Any, stack_name: str) -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    try:
        for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name):
            for summary in page["StackResourceSummaries"]:
                if summary.get("PhysicalResourceId"):  # a failed or deleted resource has none
                    found[summary["LogicalResourceId"]] = (summary["ResourceType"], summary["PhysicalResourceId"])
    except ClientError as error:
        # CloudFormation answers ValidationError "Stack with id X does not exist".
        if error.response["Error"].get("Code") == "ValidationError" and "does not exist" in str(error):
            hint = "check --stack-name, the region and the endpoint"
            raise StackNotFound(f"stack {stack_name!r} not found ({hint})") from None
        raise
    return found


def _queue(sqs: Any, logical_id: str, url: str) -> Queue:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", "RedrivePolicy"])["Attributes"]
    policy = json.loads(attributes["RedrivePolicy"]) if attributes.get("RedrivePolicy") else {}
    max_receives = policy.get("maxReceiveCount")
    return Queue(
        logical_id=logical_id,
        url=url,
        arn=attributes["QueueArn"],
        dlq_arn=policy.get("deadLetterTargetArn"),
        max_receive_count=int(max_receives) if max_receives is not None else None,
    )


def _normalized(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def resolve_dlq(stack: Stack, name: str) -> Queue:
    """A DLQ by logical id (``ReceiptDLQ``), short name (``receipt``, ``receipt-dlq``), queue name or URL."""
    dlqs = stack.dlqs()
    if not dlqs:
        raise QueueNotFound(f"stack {stack.name!r} has no dead-letter queues")
    wanted = _normalized(name)
    exact = [q for q in dlqs if name in (q.logical_id, q.url, q.arn, q.name)]
    if exact:
        return exact[0]
    matches = [q for q in dlqs if wanted in _dlq_aliases(stack, q)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(q.logical_id for q in dlqs)
    if not matches:
        raise QueueNotFound(f"no dead-letter queue {name!r} in stack {stack.name!r} (known: {known})")
    raise QueueNotFound(f"{name!r} matches several dead-letter queues: {', '.join(q.logical_id for q in matches)}")


def _dlq_aliases(stack: Stack, dlq: Queue) -> set[str]:
    logical = _normalized(dlq.logical_id)
    aliases = {logical, _normalized(dlq.name), logical.removesuffix("dlq"), logical.removesuffix("deadletterqueue")}
    for source in stack.queues.values():
        if source.dlq_arn == dlq.arn:  # "receipt" also names ReceiptQueue's DLQ
            short = _normalized(source.logical_id).removesuffix("queue")
            aliases |= {short, f"{short}dlq"}
    return aliases - {""}
