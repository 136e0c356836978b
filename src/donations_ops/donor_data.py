"""One donor's data on request: everything we hold about them (export), or their personal data gone (erase).

What we hold about a donor, found by their address without a scan: their donations (the Donations
table's ``donor-index``, keyed and legacy donor keys), their pledges (the Pledges table's
``donor-index``, and any pledge their renewals name) and the year-end statements sent to them (the
Statements table, keyed by donor key).

Erasure policy (docs/statements-and-privacy.md): personal data goes, the books stay.

- Each pledge is canceled first, in a write of its own, so that no renewal charges the donor again
  even if the rest of the erasure fails; then its name, address and donor key are removed.
- Each donation keeps what the charity's books and Stripe's need: amount, currency, refunds,
  disputes, status, dates and Stripe's ids (PaymentIntent, Customer, PaymentMethod). Its name,
  address (clear and masked), donor key (the keyed hash that finds it by address), card brand, last 4
  digits and expiry, the request fingerprint (a hash of the form, address included), its free-form
  metadata and the operators' notes (which may quote the donor) are removed, and ``erased_at`` is set.
  Without a donor key it leaves the donor index: the address finds nothing any more.
- The statement markers (donor key and year) are deleted.
- The donor's Stripe Customers are deleted by the tokenize function (this tool holds no Stripe key):
  one message per Customer on the tokenize queue (donations.customer_erasure), sent before the
  records lose what finds them, so a failed erase run again sends them again (deleting twice is safe).
  The function stamps ``customer_deleted_at`` on the donations naming it: ``deletions_done`` reads it.

A donor with a donation still in flight (not final, or its receipt not yet sent) is refused: erase
again once it settled. Erasing twice is harmless: the second run finds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Attr, Key

from donations.conditional import conditional_update
from donations.customer_erasure import CustomerDeletion, deletions_for
from donations.identifiers import legacy_donor_key
from donations.models import Donation, DonationStatus, StepStatus, utc_now
from donations.pledges import Pledge, PledgeState, PledgeStore
from donations.redaction import mask_email
from donations_ops import operator_store
from donations_ops.aws import Clients
from donations_ops.stack_resources import OpsError, Stack
from donations_ops.statements_run import statements_table

PLEDGES_TABLE = "PledgesTable"
TOKENIZE_QUEUE = "TokenizeQueue"
SEND_BATCH = 10  # SendMessageBatch takes at most 10 entries
PLEDGE_DONOR_INDEX = "donor-index"
ERASED = ""
# Metadata the product writes itself (a renewal's pledge and period): not the donor's words, kept.
_KEPT_METADATA = frozenset({"pledge_id", "renewal_period"})
_DONATION_PERSONAL = ["donor_key", "card_brand", "card_last4", "card_exp_month", "card_exp_year"]
# The card's expiry, as on a donation (the card network's updates write it on the pledge); brand and last 4 stay.
_PLEDGE_PERSONAL = ["donor_key", "card_exp_month", "card_exp_year"]


class DonorBusy(OpsError):
    """A donation of the donor is still in flight: erasing now would lose its receipt."""


@dataclass
class DonorData:
    """Everything held about one donor."""

    donor_keys: list[str]
    donations: list[Donation]
    pledges: list[Pledge]
    statements: list[dict[str, Any]] = field(default_factory=list)

    def export(self) -> dict[str, Any]:
        return {
            "exported_at": utc_now(),
            "donations": [d.model_dump(mode="json", exclude_none=True) for d in self.donations],
            "pledges": [p.model_dump(mode="json", exclude_none=True) for p in self.pledges],
            "statements": [_plain(marker) for marker in self.statements],
        }


@dataclass(frozen=True)
class Erased:
    donor: str
    """The address, masked: what the operator's terminal and logs show."""
    pledges_canceled: int
    pledges_erased: int
    donations_erased: int
    statements_deleted: int
    customer_deletions: list[CustomerDeletion] = field(default_factory=list)
    """The Stripe Customers whose deletion was queued (the tokenize function deletes them)."""


def find(clients: Clients, stack: Stack, email: str) -> DonorData:
    donations_table = operator_store.donations_table(clients, stack)
    identifiers = operator_store.identifiers(clients, stack)
    keys = [identifiers.donor_key(email), legacy_donor_key(email)]
    donations = operator_store.by_email(donations_table, email, identifiers)
    pledges = _pledges(_pledge_store(clients, stack), _pledges_table(clients, stack), keys, donations)
    statements = statements_table(clients, stack)
    markers = [m for key in keys for m in statements.query(KeyConditionExpression=Key("donor_key").eq(key))["Items"]]
    return DonorData(keys, donations, pledges, markers)


def erase(clients: Clients, stack: Stack, email: str) -> Erased:
    held = find(clients, stack, email)
    busy = [d.donation_id for d in held.donations if _in_flight(d)]
    if busy:
        raise DonorBusy(f"{len(busy)} donation(s) still in flight ({busy[0]}, ...): erase again once they settled")
    pledges_table = _pledges_table(clients, stack)
    canceled = sum(_cancel(pledges_table, pledge) for pledge in held.pledges)
    # After the pledges stopped (no renewal charges the Customer), before the records lose the donor key.
    deletions = deletions_for(held.donations, [pledge.customer_id for pledge in held.pledges])
    queue_customer_deletions(clients, stack, deletions)
    for pledge in held.pledges:
        _erase_pledge(pledges_table, pledge)
    donations_table = operator_store.donations_table(clients, stack)
    for donation in held.donations:
        _erase_donation(donations_table, donation)
    statements = statements_table(clients, stack)
    for marker in held.statements:
        statements.delete_item(Key={"donor_key": marker["donor_key"], "year": marker["year"]})
    return Erased(mask_email(email), canceled, len(held.pledges), len(held.donations), len(held.statements), deletions)


def queue_customer_deletions(clients: Clients, stack: Stack, deletions: list[CustomerDeletion]) -> None:
    """One message per Customer on the tokenize queue, ten per call."""
    queue = stack.queues.get(TOKENIZE_QUEUE)
    if queue is None:
        raise OpsError(f"stack {stack.name!r} has no {TOKENIZE_QUEUE}")
    for start in range(0, len(deletions), SEND_BATCH):
        entries = [
            {
                "Id": str(index),
                "MessageBody": deletion.model_dump_json(),
                "MessageAttributes": {"type": {"DataType": "String", "StringValue": deletion.type}},
            }
            for index, deletion in enumerate(deletions[start : start + SEND_BATCH])
        ]
        failed = clients("sqs").send_message_batch(QueueUrl=queue.url, Entries=entries).get("Failed") or []
        if failed:
            raise OpsError(f"SQS refused {len(failed)} Customer deletion(s): {failed[0].get('Message')}; erase again")


def deletions_done(clients: Clients, stack: Stack, deletions: list[CustomerDeletion]) -> list[str]:
    """The Customers among ``deletions`` the tokenize function deleted: stamped on a donation naming them."""
    ids = [donation_id for deletion in deletions for donation_id in deletion.donation_ids]
    found = operator_store.many(operator_store.donations_table(clients, stack), ids)
    return sorted(
        deletion.customer_id
        for deletion in deletions
        if any(found[i].customer_deleted_at for i in deletion.donation_ids if i in found)
    )


def _in_flight(donation: Donation) -> bool:
    if donation.status in (DonationStatus.PENDING, DonationStatus.REQUIRES_ACTION):
        return True
    receipt_owed = donation.receipt_status in (StepStatus.PENDING, StepStatus.IN_PROGRESS)
    return donation.status is DonationStatus.SUCCEEDED and receipt_owed


def _cancel(table: Any, pledge: Pledge) -> bool:
    """Cancel the pledge (out of the due and attention indexes); False if it was canceled already."""
    if pledge.state is PledgeState.CANCELED:
        return False
    conditional_update(
        table,
        {"pledge_id": pledge.pledge_id},
        {"state": PledgeState.CANCELED.value},
        remove=["due_on", "attention", "attention_since"],
        condition=None,
        returning="NONE",
    )
    return True


def _erase_pledge(table: Any, pledge: Pledge) -> None:
    conditional_update(
        table,
        {"pledge_id": pledge.pledge_id},
        {"email": ERASED, "email_masked": ERASED, "name": ERASED, "erased_at": utc_now()},
        remove=_PLEDGE_PERSONAL,
        condition=Attr("state").eq(PledgeState.CANCELED.value),
        returning="NONE",
    )


def _erase_donation(table: Any, donation: Donation) -> None:
    kept_metadata = {k: v for k, v in donation.metadata.items() if k in _KEPT_METADATA}
    # What operators did stays (when, what); their notes and the addresses they quoted go.
    kept_log = [{k: v for k, v in entry.items() if k in ("at", "action", "step")} for entry in donation.operator_log]
    values = {
        "email": ERASED,
        "email_masked": ERASED,
        "name": ERASED,
        "request_hash": ERASED,
        "metadata": kept_metadata,
        "operator_log": [*kept_log, {"at": utc_now(), "action": "erase"}],
        "erased_at": utc_now(),
    }
    # Conditional on the record being as read: a step or an operator writing meanwhile makes us stop.
    operator_store.write_as_read(table, donation, values, _DONATION_PERSONAL)


def _pledges_table(clients: Clients, stack: Stack) -> Any:
    name = stack.tables.get(PLEDGES_TABLE)
    if name is None:
        raise OpsError(f"stack {stack.name!r} has no {PLEDGES_TABLE}")
    return clients.resource("dynamodb").Table(name)  # type: ignore[attr-defined]


def _pledge_store(clients: Clients, stack: Stack) -> PledgeStore:
    return PledgeStore(_pledges_table(clients, stack))


def _pledges(store: PledgeStore, table: Any, keys: list[str], donations: list[Donation]) -> list[Pledge]:
    """The donor's pledges: by donor key (the Pledges table's donor-index), and any their renewals name."""
    ids = [
        str(item["pledge_id"])
        for key in keys
        for item in table.query(IndexName=PLEDGE_DONOR_INDEX, KeyConditionExpression=Key("donor_key").eq(key))["Items"]
    ]
    ids += [d.metadata["pledge_id"] for d in donations if "pledge_id" in d.metadata]
    found = [store.get(pledge_id) for pledge_id in dict.fromkeys(ids)]
    return [pledge for pledge in found if pledge is not None]


def _plain(value: Any) -> Any:
    """A marker as JSON: DynamoDB's numbers come back as Decimal (whole numbers here: years, minor units)."""
    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
