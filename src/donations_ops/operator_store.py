"""The Donations table for operators: donations by id, by donor, by day, and the operators' own writes.

Reads go through the table's key or its operator indexes (donor-index, day-index, attention-index;
see template.yaml), never a scan. Every operator write is conditional on the record being as it
was read (``updated_at``), so two operators (or an operator and a consumer) cannot overwrite each
other: the loser is told to look again. Each write appends to the record's ``operator_log``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date
from typing import Any

from boto3.dynamodb.conditions import Attr, Key

from donations.conditional import ConditionFailed, conditional_update
from donations.identifiers import Identifiers, legacy_donor_key
from donations.models import Attention, Donation, Step, StepStatus, utc_now
from donations.redaction import mask_email
from donations.secrets import ApiKeys
from donations.store import ATTENTION_ATTRIBUTES, DAY_INDEX, DONOR_INDEX
from donations_ops.aws import Clients
from donations_ops.stack_resources import OpsError, Stack

BATCH_GET = 100  # BatchGetItem takes at most 100 keys


class RecordChanged(OpsError):
    """The record changed since it was read (another operator, or the step itself): look again."""


class DonationMissing(OpsError):
    pass


def donations_table(clients: Clients, stack: Stack) -> Any:
    """The stack's Donations table as a boto3 Table resource."""
    if stack.donations_table is None:
        raise OpsError(f"stack {stack.name!r} has no DonationsTable")
    resource = getattr(clients, "resource", None)
    if resource is None:
        raise OpsError("these clients cannot make a DynamoDB resource")
    return resource("dynamodb").Table(stack.donations_table)


# --------------------------------------------------------------------------- reads


def get(table: Any, donation_id: str) -> Donation | None:
    item = table.get_item(Key={"donation_id": donation_id}, ConsistentRead=True).get("Item")
    return Donation.model_validate(item) if item else None


def require(table: Any, donation_id: str) -> Donation:
    found = get(table, donation_id)
    if found is None:
        raise DonationMissing(f"no donation {donation_id!r} in this stack")
    return found


def many(table: Any, donation_ids: Iterable[str]) -> dict[str, Donation]:
    """Donations by id, read in batches of 100 (eventually consistent: a listing, not a decision)."""
    ids = list(dict.fromkeys(donation_ids))
    found: dict[str, Donation] = {}
    client = table.meta.client
    for start in range(0, len(ids), BATCH_GET):
        request: dict[str, Any] = {table.name: {"Keys": [{"donation_id": i} for i in ids[start : start + BATCH_GET]]}}
        for _ in range(10):  # unprocessed keys are asked again, a bounded number of times
            response = client.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(table.name, []):
                donation = Donation.model_validate(item)
                found[donation.donation_id] = donation
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
    return found


def _keys(table: Any, index: str, condition: Any, limit: int) -> Iterator[str]:
    arguments: dict[str, Any] = {"IndexName": index, "KeyConditionExpression": condition}
    seen = 0
    while True:
        page = table.query(**arguments)
        for item in page.get("Items", []):
            yield str(item["donation_id"])
            seen += 1
            if seen >= limit:
                return
        if "LastEvaluatedKey" not in page:
            return
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


IDENTIFIER_SECRET_PARAMETER = "IdentifierSecretName"  # noqa: S105 - the parameter's name, not a secret


def identifiers(clients: Clients, stack: Stack) -> Identifiers:
    """The stack's keyed identifiers, from the secret its charge function reads (the operator needs
    ssm:GetParameter on it, as for any SecureString)."""
    described = clients("cloudformation").describe_stacks(StackName=stack.name)["Stacks"][0]
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in described.get("Parameters", [])}
    name = parameters.get(IDENTIFIER_SECRET_PARAMETER)
    if not name:
        raise OpsError(f"stack {stack.name!r} has no {IDENTIFIER_SECRET_PARAMETER} parameter")
    keys = ApiKeys(clients("ssm"))
    return Identifiers(lambda: keys.get(name))


def by_email(table: Any, email: str, identifiers: Identifiers, *, limit: int = 200) -> list[Donation]:
    """A donor's donations, newest last (donor-index: a keyed HMAC of the lower-cased address, or the
    unkeyed hash records made before those carry)."""
    keys = (identifiers.donor_key(email), legacy_donor_key(email))
    ids = list(dict.fromkeys(i for key in keys for i in _keys(table, DONOR_INDEX, Key("donor_key").eq(key), limit)))
    found = many(table, ids[:limit])
    return sorted(found.values(), key=lambda d: d.created_at)


def by_day(table: Any, day: date, *, limit: int = 100_000) -> list[Donation]:
    """The donations made on one UTC day, oldest first (day-index, then the records in batches)."""
    ids = list(_keys(table, DAY_INDEX, Key("created_day").eq(day.isoformat()), limit))
    found = many(table, ids)
    return sorted(found.values(), key=lambda d: d.created_at)


def by_card(table: Any, last4: str, day: date) -> list[Donation]:
    """A day's donations charged (or saved) with a card ending in ``last4``."""
    return [d for d in by_day(table, day) if d.card_last4 == last4]


# --------------------------------------------------------------------------- the operators' writes


def _log(donation: Donation, action: str, note: str, **details: str) -> list[dict[str, str]]:
    entry = {"at": utc_now(), "action": action, "note": note, **details}
    return [*donation.operator_log, entry]


def write_as_read(table: Any, donation: Donation, values: dict[str, Any], remove: list[str] | None = None) -> None:
    """Update the donation only if it is still as read (its ``updated_at``); else RecordChanged."""
    try:
        conditional_update(
            table,
            {"donation_id": donation.donation_id},
            values,
            remove=remove,
            condition=Attr("updated_at").eq(donation.updated_at),
            returning="NONE",
        )
    except ConditionFailed:
        raise RecordChanged(f"{donation.donation_id} changed while you acted on it; look at it again") from None


def append_log(table: Any, donation: Donation, action: str, note: str, **details: str) -> None:
    """Note what an operator did on the record (donations_ops.refunding), if it is still as it was read."""
    write_as_read(table, donation, {"operator_log": _log(donation, action, note, **details)})


def record_redrive(table: Any, donation: Donation, step: Step, note: str = "") -> int:
    """One more redrive of the donation's step: the count is kept on the donation, across redrives."""
    count = donation.redrives + 1
    values: dict[str, Any] = {"redrives": count, "operator_log": _log(donation, "redrive", note, step=step.value)}
    if donation.attention_step is step:
        values["attention"] = Attention.REDRIVEN.value
    write_as_read(table, donation, values)
    return count


def record_discard(table: Any, donation: Donation, step: Step, note: str) -> None:
    """The operator decided the step will not be done: noted, and out of the attention-index."""
    status_field = "card_status" if step is Step.TOKENIZE else "receipt_status"
    if getattr(donation, status_field) is StepStatus.DONE:
        raise OpsError(f"{donation.donation_id}: its {step.value} step is done; nothing to discard")
    values = {
        status_field: StepStatus.DISCARDED.value,
        "operator_log": _log(donation, "discard", note, step=step.value),
    }
    remove = ["failed_step"] if donation.failed_step is step else []
    remove += list(ATTENTION_ATTRIBUTES) if donation.attention_step is step else []
    write_as_read(table, donation, values, remove)


def record_email_fix(table: Any, donation: Donation, email: str, donor_key: str, note: str) -> None:
    """A corrected address, and the receipt to be sent (again) to it."""
    if donation.receipt_status is StepStatus.IN_PROGRESS:
        raise OpsError(f"{donation.donation_id}: its receipt is being sent right now; try again in a minute")
    was = donation.email_masked
    values = {
        "email": email,
        "email_masked": mask_email(email),
        "donor_key": donor_key,
        "receipt_status": StepStatus.PENDING.value,
        "operator_log": _log(donation, "fix_email", note, was=was, now=mask_email(email)),
    }
    write_as_read(table, donation, values, _receipt_trouble(donation))


def _receipt_trouble(donation: Donation) -> list[str]:
    """What the receipt step's failure left on the record (a tokenize failure stays)."""
    remove = ["failed_step", "failure_reason"] if donation.failed_step is Step.SEND_RECEIPT else []
    return remove + (list(ATTENTION_ATTRIBUTES) if donation.attention_step is Step.SEND_RECEIPT else [])
