"""The one JSON reading of a request body: strict where the standard library is lenient.

``json.loads`` accepts what a payment API must not: a repeated key silently keeps its last value
(a WAF rule, a proxy or a log line reading the first one sees another amount than the one charged),
``NaN`` and ``Infinity`` (not JSON, RFC 8259 section 6), escaped lone surrogates that no UTF-8
encoder can write back out, nesting deep enough to exhaust the interpreter's recursion limit, and
numbers long enough to trip its int-digits limit. Each is refused here as a 400 the donor can act
on, before anything is validated, logged, charged or stored.
"""

from __future__ import annotations

import json
import re
from typing import Any

from donations.errors import InvalidDonation

# A donation nests two levels (the body, its metadata); this leaves room and stays far below the
# interpreter's recursion limit, which a few thousand brackets inside the size limit would exhaust.
MAX_DEPTH = 16
# Top-level fields whose name is safe to echo: any other key may be data the donor pasted by mistake.
_NAMEABLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_INVALID_JSON = "The body must be a JSON object describing the donation."


def loads_strict(text: str | bytes) -> Any:
    """Parse a request body, refusing repeated keys, non-JSON constants, deep nesting and lone surrogates.

    Raises InvalidDonation with code ``duplicate_key``, ``json_too_deep``, ``invalid_encoding`` or
    ``invalid_json``. Plain syntax errors stay ``json.JSONDecodeError`` (the caller's own answer).
    """
    try:
        value = json.loads(text, object_pairs_hook=_refuse_repeated_keys, parse_constant=_refuse_constant)
    except RecursionError:
        raise _too_deep() from None
    except json.JSONDecodeError:
        raise
    except ValueError:  # a number beyond the interpreter's int-digits limit (4,300 by default)
        raise InvalidDonation(_INVALID_JSON, code="invalid_json") from None
    _check_depth_and_strings(value)
    return value


def _refuse_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            nameable = _NAMEABLE_KEY.match(key) is not None
            raise InvalidDonation(
                f"The key {key!r} appears more than once in one object; send each field once."
                if nameable
                else "A key appears more than once in one object; send each field once.",
                field=key if nameable else None,
                code="duplicate_key",
            )
        seen.add(key)
    return dict(pairs)


def _refuse_constant(name: str) -> Any:
    raise InvalidDonation(f"{name} is not a JSON value. {_INVALID_JSON}", code="invalid_json")


def _check_depth_and_strings(value: Any) -> None:
    """Walk the parsed value without recursion: nesting depth, and strings a UTF-8 encoder would refuse."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, str):
            if _LONE_SURROGATE.search(node):
                raise invalid_encoding()
            continue
        if isinstance(node, dict):
            if depth > MAX_DEPTH:
                raise _too_deep()
            pending.extend((key, depth) for key in node)
            pending.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            if depth > MAX_DEPTH:
                raise _too_deep()
            pending.extend((child, depth + 1) for child in node)


def _too_deep() -> InvalidDonation:
    return InvalidDonation(f"The body must not nest deeper than {MAX_DEPTH} levels.", code="json_too_deep")


def invalid_encoding() -> InvalidDonation:
    """The refusal for a body that is not valid UTF-8 (also used by the HTTP edge's early checks)."""
    return InvalidDonation("The body must be valid UTF-8 text.", code="invalid_encoding")
