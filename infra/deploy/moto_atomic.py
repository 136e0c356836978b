"""DynamoDB's per-item atomicity, which moto lacks: its conditional writes check, then write, unlocked.

DynamoDB applies each write to an item atomically: of two conditional updates racing for the same
item, one wins and the other fails its condition. moto evaluates the condition and applies the
update without a lock, so two threads (a batch's records handled side by side, or the charge and
the Stripe webhook) can both pass the same condition, and a receipt claim could be taken twice.
That would be moto's bug, not ours, so every write to moto's DynamoDB goes through one lock here:
in the process moto runs in (``simulator.local.moto_process``, or any process using ``mock_aws``).

Each request as a whole takes the lock too: moto's request handler deep-copies the item an update
finds before the backend writes it, and a copy taken while another thread's write changes that item
fails ("dictionary changed size during iteration").
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")

_lock = threading.RLock()


def make_dynamodb_writes_atomic() -> None:
    """Idempotent: wraps moto's DynamoDB backend write methods, and its request handler, once per process."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    for owner, name in [*((DynamoDBBackend, write) for write in _WRITES), (DynamoHandler, "call_action")]:
        write = getattr(owner, name)
        if getattr(write, "_atomic", False):
            continue

        def atomic(*args: Any, _write: Any = write, **kwargs: Any) -> Any:
            with _lock:
                return _write(*args, **kwargs)

        functools.update_wrapper(atomic, write)
        atomic._atomic = True  # type: ignore[attr-defined]
        setattr(owner, name, atomic)
