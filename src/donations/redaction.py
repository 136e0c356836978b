"""Keep card data and donor emails out of logs and storage."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

# 13 to 19 digits, optionally grouped by spaces or dashes: the shapes a card number is typed in.
_PAN_CANDIDATE = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
# UUIDs (request ids, order ids) hold dash-separated digit runs that can pass Luhn by chance.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_CVC_KEY = re.compile(r"^(cvc|cvv|cvc2|cvv2|cid|csc|security_?code|card_?code)$", re.IGNORECASE)
_CARD_KEY = re.compile(r"^(card_?number|pan|cc_?number|credit_?card|number)$", re.IGNORECASE)


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def looks_like_card_number(text: str) -> bool:
    """True when the text holds a Luhn-valid 13-19 digit run (spaces and dashes allowed)."""
    for match in _PAN_CANDIDATE.finditer(_UUID.sub(" ", text)):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            return True
    return False


def find_card_data(value: Any, path: str = "") -> str | None:
    """The path of the first place in a JSON-like value that holds a card number or a CVC, else None.

    Keys named like a CVC or card number are refused whatever their value, so a form that
    posts raw card fields by mistake is stopped before anything is logged or stored.
    """
    for location, key, leaf in _walk(value, path):
        if key is not None and (_CVC_KEY.match(key) or _CARD_KEY.match(key)) and leaf not in (None, ""):
            return location
        if isinstance(leaf, str | int) and not isinstance(leaf, bool) and looks_like_card_number(str(leaf)):
            return location
    return None


def _walk(value: Any, path: str, key: str | None = None) -> Iterator[tuple[str, str | None, Any]]:
    if isinstance(value, dict):
        for child_key, child in value.items():
            child_path = f"{path}.{child_key}" if path else str(child_key)
            if looks_like_card_number(str(child_key)):
                yield child_path, str(child_key), str(child_key)
            yield from _walk(child, child_path, str(child_key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _walk(child, f"{path}[{index}]", key)
    else:
        yield path, key, value


def mask_email(email: str) -> str:
    """``ada@example.org`` → ``a***@e***.org``: enough to tell donors apart in logs, not to mail them."""
    local, _, domain = email.partition("@")
    if not domain:
        return "***"
    host, dot, tld = domain.rpartition(".")
    masked_domain = f"{host[:1]}***{dot}{tld}" if dot else f"{domain[:1]}***"
    return f"{local[:1]}***@{masked_domain}"
