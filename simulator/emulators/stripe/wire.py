"""Stripe wire formats: bracket-nested form bodies and the search query language."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

_KEY_RE = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_BRACKET_RE = re.compile(r"\[([^\[\]]*)\]")


class FormError(ValueError):
    """A form key that cannot be decoded (e.g. ``a[b]=1&a=2``)."""


def parse_form(body: str) -> dict[str, Any]:
    """Decode ``metadata[k]=v&expand[0]=x&items[0][price]=p`` into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        _insert(root, _split_key(key), value)
    result = _listify(root)
    assert isinstance(result, dict)
    return result


def _split_key(key: str) -> list[str]:
    match = _KEY_RE.fullmatch(key)
    if match is None:
        raise FormError(f"Invalid parameter name: {key}")
    return [match[1], *_BRACKET_RE.findall(match[2])]


def _insert(root: dict[str, Any], parts: list[str], value: str) -> None:
    node = root
    for part in parts[:-1]:
        part = part or str(len(node))  # "a[]" appends
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise FormError(f"Invalid hash: parameter {part!r} is both a value and a hash")
        node = child
    last = parts[-1] or str(len(node))
    if isinstance(node.get(last), dict):
        raise FormError(f"Invalid value: parameter {last!r} is both a hash and a value")
    node[last] = value


def _listify(node: Any) -> Any:
    # Stripe sends arrays as indexed hashes (expand[0]=...); turn all-numeric keys into lists.
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


# -- search ------------------------------------------------------------------------
class SearchQueryError(ValueError):
    pass


@dataclass(frozen=True)
class Clause:
    field: str  # "status" or "metadata.<key>"
    op: str  # ":", "~", ">", "<", ">=", "<="
    value: str | float | None
    negated: bool


_CLAUSE_RE = re.compile(
    r"""\s*(?P<neg>-)?
    (?P<field>metadata\[(?:'[^']*'|"[^"]*")\]|[a-z_]+)
    (?P<op>:|~|>=|<=|>|<)
    (?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s'"]+)\s*""",
    re.VERBOSE,
)
_JOIN_RE = re.compile(r"\s+(AND|OR)\s+")


def parse_search(query: str) -> tuple[list[Clause], str]:
    """Parse ``metadata['donation_id']:'X' AND status:'succeeded'`` into clauses and the joiner."""
    clauses: list[Clause] = []
    joiners: set[str] = set()
    pos = 0
    while True:
        match = _CLAUSE_RE.match(query, pos)
        if match is None:
            raise SearchQueryError(f"Invalid search query near position {pos}: {query!r}")
        clauses.append(_clause(match))
        pos = match.end()
        if pos >= len(query):
            break
        join = _JOIN_RE.match(query, pos - 1 if query[pos - 1].isspace() else pos)
        if join is None:
            raise SearchQueryError(f"Expected AND or OR at position {pos}: {query!r}")
        joiners.add(join[1])
        pos = join.end()
    if len(joiners) > 1:
        raise SearchQueryError("A search query cannot combine AND and OR clauses.")
    return clauses, joiners.pop() if joiners else "AND"


def _clause(match: re.Match[str]) -> Clause:
    field = match["field"]
    if field.startswith("metadata["):
        field = "metadata." + field[len("metadata[") + 1 : -2]
    raw = match["value"]
    value: str | float | None
    if raw[0] in "'\"":
        value = re.sub(r"\\(.)", r"\1", raw[1:-1])
    elif raw == "null":
        value = None
    else:
        try:
            value = float(raw)
        except ValueError:
            raise SearchQueryError(f"Invalid value {raw!r}: strings must be quoted") from None
    return Clause(field, match["op"], value, bool(match["neg"]))


def clause_matches(clause: Clause, actual: Any) -> bool:
    hit = _compare(clause.op, actual, clause.value)
    return not hit if clause.negated else hit


_NUMERIC_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
}


def _compare(op: str, actual: Any, expected: str | float | None) -> bool:
    if op in _NUMERIC_OPS:
        if not isinstance(actual, int | float) or not isinstance(expected, float):
            return False
        return _NUMERIC_OPS[op](float(actual), expected)
    if expected is None:
        return actual is None
    if actual is None:
        return False
    if isinstance(expected, float):
        return isinstance(actual, int | float) and float(actual) == expected
    if op == "~":  # substring match, as Stripe's `~` operator
        return expected.lower() in str(actual).lower()
    return str(actual).lower() == expected.lower()
