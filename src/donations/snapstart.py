"""Lambda SnapStart runtime hooks: what INIT leaves in the snapshot must be safe to resume, many times over.

With SnapStart on (template parameter ``SnapStart``) Lambda runs INIT once, when a version is
published, snapshots the execution environment, and resumes every new environment of that version
from the snapshot, possibly weeks later and several at once ("Handling uniqueness with Lambda
SnapStart", docs.aws.amazon.com/lambda/latest/dg/snapstart-uniqueness.html). Hence:

* **No connection crosses a restore.** Every HTTP connection pool of the clients built so far (the
  boto3 clients, the Stripe client's requests session) is closed before the snapshot and again after
  each restore. The clients stay: building them (service models, endpoint rules) is the costly part,
  and they open new connections on first use.
* **Randomness is re-seeded after each restore.** ``random``'s state would otherwise be the same in
  every resumed environment: botocore's and the Stripe SDK's retry jitter, Powertools' log sampling.
  UUIDs (Stripe's idempotency keys when none is given), ``secrets`` and X-Ray's trace and segment ids
  read ``os.urandom`` at each call; nothing of them is kept in the process.
* **No secret in the snapshot.** The provider key caches (Powertools Parameters) are emptied before
  it; after a restore the first use fetches the key, which is then cached for
  ``donations.secrets.SECRET_CACHE_SECONDS`` and fetched again once stale, as without SnapStart.

The hooks are registered with ``snapshot_restore_py``, the library Lambda's Python managed runtimes
include ("Lambda SnapStart runtime hooks for Python", docs.aws.amazon.com/lambda/latest/dg/
snapstart-runtime-hooks-python.html); the runtime calls them only when SnapStart is on, and only if
the handler module imported this one. Where the library is absent (the local stack, tests without it)
nothing is registered, and :func:`before_snapshot` / :func:`after_restore` can still be called.
"""

from __future__ import annotations

import random
import weakref
from typing import Protocol, TypeVar


class HoldsConnections(Protocol):
    def close(self) -> None:
        """Close its connection pools; the client stays usable and opens new connections when next used."""


class CachesSecrets(Protocol):
    def forget(self) -> None:
        """Drop every cached secret value."""


Connections = TypeVar("Connections", bound=HoldsConnections)
Secrets = TypeVar("Secrets", bound=CachesSecrets)

# Weak: a client or cache nobody uses any more is not kept alive by being watched.
_connections: weakref.WeakSet[HoldsConnections] = weakref.WeakSet()
_secret_caches: weakref.WeakSet[CachesSecrets] = weakref.WeakSet()


def holds_connections(client: Connections) -> Connections:
    """Close ``client``'s pools around every snapshot and restore; returns it, for use where it is built."""
    _connections.add(client)
    return client


def caches_secrets(cache: Secrets) -> Secrets:
    """Empty ``cache`` before every snapshot; returns it, for use where it is built."""
    _secret_caches.add(cache)
    return cache


def watched() -> tuple[list[HoldsConnections], list[CachesSecrets]]:
    """The clients and secret caches the hooks act on (those still in use)."""
    return list(_connections), list(_secret_caches)


def close_connections() -> int:
    """Close the pools of every client watched; returns how many."""
    clients = list(_connections)
    for client in clients:
        client.close()
    return len(clients)


def before_snapshot() -> None:
    close_connections()
    for cache in list(_secret_caches):
        cache.forget()


def after_restore() -> None:
    random.seed()  # from os.urandom: each resumed environment gets its own sequence
    close_connections()


def register_hooks() -> bool:
    """Register the hooks with Lambda's runtime; False where ``snapshot_restore_py`` is not installed."""
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:
        return False
    register_before_snapshot(before_snapshot)
    register_after_restore(after_restore)
    return True


HOOKS_REGISTERED = register_hooks()
