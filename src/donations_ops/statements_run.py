"""The stack's side of the year-end statements for operators: its Statements table, receipt queue and the
parameters a statement reads. The run itself is the core's (donations.statement_run), shared with the
January schedule."""

from __future__ import annotations

from typing import Any

from donations.statements import StatementStore
from donations_ops import operator_store
from donations_ops.aws import Clients
from donations_ops.stack_resources import OpsError, Stack

STATEMENTS_TABLE = "StatementsTable"
RECEIPT_QUEUE = "ReceiptQueue"
TIME_ZONE_PARAMETER = "ReceiptTimeZone"


def statements_table(clients: Clients, stack: Stack) -> Any:
    name = stack.tables.get(STATEMENTS_TABLE)
    if name is None:
        raise OpsError(f"stack {stack.name!r} has no {STATEMENTS_TABLE}")
    return clients.resource("dynamodb").Table(name)  # type: ignore[attr-defined]


def statement_store(clients: Clients, stack: Stack) -> StatementStore:
    return StatementStore(operator_store.donations_table(clients, stack), statements_table(clients, stack))


def receipt_queue_url(stack: Stack) -> str:
    queue = stack.queues.get(RECEIPT_QUEUE)
    if queue is None:
        raise OpsError(f"stack {stack.name!r} has no {RECEIPT_QUEUE}")
    return queue.url


def stack_parameters(clients: Clients, stack: Stack) -> dict[str, str]:
    described = clients("cloudformation").describe_stacks(StackName=stack.name)["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in described.get("Parameters", [])}


def receipt_time_zone(clients: Clients, stack: Stack) -> str:
    """The time zone receipts are dated in (the stack's ReceiptTimeZone; UTC when it has none)."""
    return stack_parameters(clients, stack).get(TIME_ZONE_PARAMETER) or "UTC"
