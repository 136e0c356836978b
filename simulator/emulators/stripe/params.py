"""Reading parameters that already passed the contract (``contract``): types are right, these
helpers only convert them and apply the rules the SDK's types cannot carry."""

from __future__ import annotations

import re
from typing import Any

from simulator.emulators.stripe import errors
from simulator.emulators.stripe.currencies import MAXIMUM_AMOUNT, MINIMUM_AMOUNT, SUPPORTED_CURRENCIES, shown_amount

Json = dict[str, Any]

_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MAX_LIMIT = 100
DEFAULT_LIMIT = 10


def text(params: Json, name: str) -> str | None:
    raw = params.get(name)
    return None if raw is None or raw == "" else str(raw)


def integer(params: Json, name: str) -> int | None:
    raw = params.get(name)
    return None if raw is None else int(raw)


def flag(params: Json, name: str) -> bool:
    return params.get(name) == "true"


def expand(params: Json, allowed: set[str]) -> list[str]:
    """Expandable fields asked for (docs.stripe.com/api/expanding_objects); "data." prefixes on lists."""
    asked = list(params.get("expand", []))
    for name in asked:
        if name.removeprefix("data.") not in allowed:
            raise errors.invalid(f"This property cannot be expanded ({name}).", param="expand")
    return [name.removeprefix("data.") for name in asked]


def metadata(params: Json) -> Json:
    """docs.stripe.com/metadata: up to 50 keys, keys up to 40 characters, values up to 500."""
    raw: Json = params.get("metadata", {})
    if len(raw) > 50:
        raise errors.invalid("You can specify up to 50 keys in metadata.", param="metadata")
    for key, value in raw.items():
        if len(key) > 40 or len(value) > 500:
            raise errors.invalid(
                f"Invalid metadata[{key}]: keys must be at most 40 characters and values strings of at "
                "most 500 characters.",
                param=f"metadata[{key}]",
            )
    return {k: v for k, v in raw.items() if v != ""}


def email(params: Json, name: str) -> str | None:
    value = text(params, name)
    if value is not None and not _EMAIL_RE.fullmatch(value):
        raise errors.invalid(f"Invalid email address: {value}", param=name, code="email_invalid")
    return value


def currency(params: Json) -> str:
    code = str(params["currency"]).lower()
    if code not in SUPPORTED_CURRENCIES:
        supported = ", ".join(sorted(SUPPORTED_CURRENCIES))
        raise errors.invalid(
            f"Invalid currency: {code}. Stripe currently supports these currencies: {supported}", param="currency"
        )
    return code


def amount(params: Json, code: str) -> int:
    value = int(params["amount"])
    if value < 1:
        raise errors.invalid(
            "This value must be greater than or equal to 1.", param="amount", code="parameter_invalid_integer"
        )
    if value > MAXIMUM_AMOUNT:
        raise errors.invalid(f"Amount must be no more than {MAXIMUM_AMOUNT}", param="amount", code="amount_too_large")
    minimum = MINIMUM_AMOUNT.get(code)
    if minimum is not None and value < minimum:
        raise errors.invalid(
            f"Amount must be at least {shown_amount(minimum, code)} {code}", param="amount", code="amount_too_small"
        )
    return value


def limit(params: Json) -> int:
    """docs.stripe.com/api/pagination: ``limit`` between 1 and 100, default 10."""
    value = integer(params, "limit")
    if value is None:
        return DEFAULT_LIMIT
    if not 1 <= value <= MAX_LIMIT:
        raise errors.invalid("This value must be between 1 and 100.", param="limit")
    return value
