"""List endpoints' pagination, as docs.stripe.com/api/pagination describes it.

Objects come newest first. ``starting_after=<id>`` gives the page after that object (older ones),
``ending_before=<id>`` the page before it (newer ones, still newest first); ``has_more`` says whether
more objects lie beyond the page in the direction of travel. ``created`` filters by an exact unix
time or a hash of gt / gte / lt / lte.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulator.emulators.stripe import errors, params

Json = dict[str, Any]

_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


def list_page(
    objects: list[Json],
    p: Json,
    url: str,
    render: Callable[[Json], Json],
    *,
    kind: str,
    keep: Callable[[Json], bool] = lambda _: True,
) -> Json:
    """One page as Stripe's list object: ``objects`` (insertion order) filtered by ``keep`` and
    ``created``; cursors may name any of ``objects``."""
    if "starting_after" in p and "ending_before" in p:
        raise errors.exclusive("starting_after", "ending_before")
    limit = params.limit(p)
    ordered = sorted(reversed(objects), key=_created, reverse=True)  # newest first; ties: last made first
    after, before = params.text(p, "starting_after"), params.text(p, "ending_before")
    if after is not None:
        ordered = ordered[_position(ordered, after, "starting_after", kind) + 1 :]
    elif before is not None:
        ordered = ordered[: _position(ordered, before, "ending_before", kind)]
    wanted = [o for o in ordered if keep(o) and created_matches(o["created"], p.get("created"))]
    page = wanted[-limit:] if before is not None else wanted[:limit]
    return {"object": "list", "data": [render(o) for o in page], "has_more": len(wanted) > limit, "url": url}


def created_matches(created: int, condition: Any) -> bool:
    if condition is None:
        return True
    if isinstance(condition, str):
        return created == int(condition)
    return all(_COMPARE[op](created, int(bound)) for op, bound in condition.items())


def _created(obj: Json) -> int:
    return int(obj["created"])


def _position(objects: list[Json], cursor: str, param: str, kind: str) -> int:
    for index, obj in enumerate(objects):
        if obj["id"] == cursor:
            return index
    raise errors.no_such(kind, cursor, param, status=400)
