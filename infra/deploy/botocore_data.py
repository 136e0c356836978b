"""botocore's data files read once per process, not once per session, where one process plays many.

botocore reads its JSON data (the service models, the endpoint rules, the list of services) through a
``Loader`` that caches what it read, and each botocore session makes a loader of its own. On Lambda that
is one session per cold start. Here one process plays many: the local stack runs every function's cold
start in one interpreter, moto builds a session per backend, and the tests build the functions' clients
again for each test. Profiled on two integration test files, a fifth of their CPU went to parsing the
same JSON files again (7 of 35 s).

The files are botocore's own, read-only and the same for every session of a process, so one loader
serves them all. Nothing else about a session is shared (credentials, config, region, events).
"""

from __future__ import annotations

from functools import cache

import botocore.loaders
import botocore.session


def share_botocore_data() -> None:
    """Idempotent: every botocore session made after this call in this process reads through one loader
    per data path."""
    if getattr(botocore.session.create_loader, "_shared", False):
        return
    create_loader = cache(botocore.loaders.create_loader)
    create_loader._shared = True  # type: ignore[attr-defined]
    botocore.session.create_loader = create_loader
