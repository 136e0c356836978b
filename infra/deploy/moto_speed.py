"""Two of moto's costs that grow with the data where DynamoDB's and SQS's do not, made flat.

* Every DynamoDB query (and scan) sorts all of the table's items, comparing ``DynamoType`` objects
  whose every comparison converts both values again (``cast_value``: a ``Decimal`` for a number).
  Sorting by the converted values, each computed once, gives the same order for a fraction of the
  cost: a table's key attributes have one type each (the key schema's), so the values compare alike.
* Every SQS receive asks each message in the queue whether it is visible and not delayed, and each
  answer reads the clock through two naive datetimes. ``time.time()`` is the same number.

Profiled on the 1,000-donor statements test: three quarters of its time went to these two. As with
:mod:`infra.deploy.moto_atomic`, the patch applies in the process moto runs in (the local stack's
moto server, or any process using ``mock_aws``), once.
"""

from __future__ import annotations

import time
from typing import Any


def make_moto_costs_flat() -> None:
    """Idempotent: replaces moto's DynamoDB item sorts and its SQS clock, once per process."""
    from moto.dynamodb.models.table import Table
    from moto.sqs import models as sqs_models

    if getattr(Table.all_items, "_flat", False):
        return

    def all_items(self: Table) -> list[Any]:
        """moto's Table.all_items: every item, by hash key then range key."""
        items: list[Any] = []
        for hash_set in self.items.values():
            if self.range_key_attr:
                items.extend(hash_set.values())
            else:
                items.append(hash_set)
        if self.range_key_attr:
            return sorted(items, key=lambda item: (item.hash_key.cast_value, item.range_key.cast_value))
        return sorted(items, key=lambda item: item.hash_key.cast_value)

    def sorted_items(
        self: Table, hash_key_attrs: list[str], range_key_attrs: list[str | None], items: list[Any]
    ) -> list[Any]:
        """moto's Table.sorted_items (an index query's order), with each key value converted once."""
        attributes = self._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs)
        items.sort(key=lambda item: tuple(item.attrs[name].cast_value for name in attributes))
        return items

    original_unix_time_millis = sqs_models.unix_time_millis  # type: ignore[attr-defined]

    def unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else float(original_unix_time_millis(dt))

    all_items._flat = True  # type: ignore[attr-defined]
    Table.all_items = all_items  # type: ignore[method-assign]
    Table.sorted_items = sorted_items  # type: ignore[method-assign]
    sqs_models.unix_time_millis = unix_time_millis  # type: ignore[attr-defined]
