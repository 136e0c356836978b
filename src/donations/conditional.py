"""One DynamoDB item changed only under a condition: the update expression, its failure, leases on it.

Every write of the Donations table (donations.store) goes through :func:`conditional_update`: the
item must exist and meet the caller's condition, else :class:`ConditionFailed`. A :class:`Lease`
is an attribute saying until when (unix seconds) its holder may act on the item.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError

from donations.models import utc_now


class ConditionFailed(Exception):
    """A conditional write lost: the record is not in the state the caller expected."""


@dataclass(frozen=True)
class Lease:
    """A lease held on the record: the attribute says until when (unix seconds) its holder may act.

    The store's three leases: ``charging_until`` (the request charging a pending donation),
    ``followups_claim_until`` (whoever publishes the follow-ups, donations.followups) and
    ``receipt_claim_until`` (the consumer sending the receipt). A holder that dies keeps its lease
    until it runs out; one that failed gives it back by removing the attribute.
    """

    attribute: str

    @staticmethod
    def ends(now: float, seconds: int) -> int:
        return int(now) + seconds

    def until(self, now: float, seconds: int) -> dict[str, int]:
        """The attribute to write to take the lease for ``seconds`` from ``now``."""
        return {self.attribute: self.ends(now, seconds)}

    def expired(self, now: float) -> Any:
        return Attr(self.attribute).lt(int(now))

    def free(self, now: float) -> Any:
        """Nobody holds it: never taken, given back, or run out."""
        return Attr(self.attribute).not_exists() | self.expired(now)


def clock(now: float | None) -> float:
    return time.time() if now is None else now


def conditional_update(
    table: Any,
    key: dict[str, Any],
    values: dict[str, Any],
    *,
    remove: list[str] | None,
    condition: Any,
    returning: str,
    if_missing: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Set ``values`` (and stamp ``updated_at``) and remove ``remove`` on the item at ``key``, if it exists
    and meets ``condition``; else ConditionFailed. The item as ``returning`` says (ALL_NEW, ALL_OLD, NONE).
    Attributes named in ``if_missing`` keep the value they have, if any (``if_not_exists``)."""
    # None removes the attribute (it reads back as None all the same): DynamoDB refuses a NULL
    # in an index key, such as payment_intent_id in mark_declined(..., None).
    remove = [*(remove or []), *(name for name, value in values.items() if value is None)]
    values = {**{name: value for name, value in values.items() if value is not None}, "updated_at": utc_now()}
    names = {f"#{index}": name for index, name in enumerate(values)}
    set_clause = ", ".join(
        f"#{index} = if_not_exists(#{index}, :{index})" if name in if_missing else f"#{index} = :{index}"
        for index, name in enumerate(values)
    )
    attribute_values = {f":{index}": value for index, value in enumerate(values.values())}
    removed = {f"#r{index}": name for index, name in enumerate(remove or [])}
    expression = f"SET {set_clause}" + (f" REMOVE {', '.join(removed)}" if removed else "")
    key_exists = Attr(next(iter(key))).exists()
    arguments: dict[str, Any] = {
        "Key": key,
        "UpdateExpression": expression,
        "ExpressionAttributeNames": {**names, **removed},
        "ExpressionAttributeValues": attribute_values,
        "ConditionExpression": key_exists & condition if condition is not None else key_exists,
        "ReturnValues": returning,
    }
    try:
        return dict(table.update_item(**arguments).get("Attributes", {}))
    except ClientError as error:
        if condition_failed(error):
            raise ConditionFailed(str(next(iter(key.values())))) from error
        raise


def attempt_is(name: str, attempt: int) -> Any:
    # Records written before attempts were counted have no such attribute: they are at attempt 0.
    return Attr(name).eq(attempt) | Attr(name).not_exists() if attempt == 0 else Attr(name).eq(attempt)


def condition_failed(error: ClientError) -> bool:
    return bool(error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")
