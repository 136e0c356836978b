"""Stripe objects as the SDK declares them: every field of the pinned version, nothing invented.

The resource classes of stripe-python (``stripe.PaymentIntent``, ``stripe.Charge``, their nested
classes such as ``stripe.PaymentMethod.Card``) are generated from Stripe's OpenAPI spec for the
pinned API version; their class annotations are the object's fields. ``shaped`` builds an object
with every declared field (null where the emulator does not model it) and refuses fields the SDK
does not declare, so the emulator cannot answer with a shape the real API would not have.
"""

from __future__ import annotations

import functools
import secrets
import string
from typing import Any, ClassVar, get_origin

Json = dict[str, Any]

_ALNUM = string.ascii_letters + string.digits
# Declared, but only present on a deleted object: the SDK documents `deleted` as "Always true for a
# deleted object", and a live object's JSON has no such key.
_ONLY_WHEN_DELETED = frozenset({"deleted"})


@functools.cache
def declared_fields(resource: type) -> tuple[str, ...]:
    """The fields the SDK class declares for the pinned API version (class constants excluded)."""
    annotations: dict[str, Any] = vars(resource).get("__annotations__", {})
    return tuple(
        name
        for name, annotation in annotations.items()
        if not name.startswith("_") and get_origin(annotation) is not ClassVar and name not in _ONLY_WHEN_DELETED
    )


def shaped(resource: type, values: Json) -> Json:
    """``values`` completed to every field ``resource`` declares, in declaration order."""
    fields = declared_fields(resource)
    unknown = set(values) - set(fields)
    if unknown:
        raise ValueError(f"{resource.__qualname__} declares no field(s) {sorted(unknown)}")
    return {name: values.get(name) for name in fields}


def rand(n: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def new_id(prefix: str) -> str:
    return f"{prefix}_{rand(24)}"


def new_request_id() -> str:
    return f"req_{rand(14)}"


def copy_json(obj: Json) -> Json:
    """Deep copy of a JSON object, so callers never share state with the emulator."""
    return {k: _deep(v) for k, v in obj.items()}


def _deep(value: Any) -> Any:
    # Cheaper than copy.deepcopy for plain JSON data.
    if isinstance(value, dict):
        return {k: _deep(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep(v) for v in value]
    return value
