"""INIT without the cyclic garbage collector: the charge function's imports and clients, then the collector back on.

INIT allocates about 150,000 objects that live as long as the execution environment (modules, classes,
pydantic's validators, botocore's service models) and almost no garbage (about 1,000 objects). Left on,
the collector runs about 200 times during it (once every 700 allocations, the older generations
traversed again and again) and finds next to nothing: a tenth of the charge's INIT CPU time
(docs/warm-up.md, "INIT: what it spends its time on").

So INIT runs with the collector off, and at its end :func:`end` freezes what INIT built before turning
it back on: ``gc.freeze()`` moves every tracked object to a permanent generation that no later
collection traverses ("gc.freeze", docs.python.org/3/library/gc.html#gc.freeze, which gives the same
disable-early, freeze-then-enable recipe for forked servers). Without it, the first collection after
INIT would traverse all of them during the first donation.

Only on Lambda (``LAMBDA_TASK_ROOT``, which the runtime sets, as Powertools' Tracer checks it): tests
and the local stack import and reload handlers in one long process, where freezing would keep every
object alive at that moment out of reach of the collector for good.
"""

from __future__ import annotations

import gc
import os

_disabled_by_us = False


def begin() -> None:
    """Turn the collector off for INIT (on Lambda, and only if it was on)."""
    global _disabled_by_us
    if "LAMBDA_TASK_ROOT" in os.environ and gc.isenabled():
        gc.disable()
        _disabled_by_us = True


def end() -> None:
    """INIT is done: freeze what it built, then turn the collector back on (if :func:`begin` turned it off)."""
    global _disabled_by_us
    if _disabled_by_us:
        gc.freeze()
        gc.enable()
        _disabled_by_us = False
