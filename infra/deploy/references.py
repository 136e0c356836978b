"""Which logical ids a template fragment refers to: Ref, GetAtt, Sub and DependsOn."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

_PSEUDO_PARAMETER_PREFIX = "AWS::"


def references(node: Any) -> set[str]:
    """Logical ids a template fragment refers to (Ref, GetAtt, Sub, DependsOn); no pseudo parameters."""
    found: set[str] = set()
    for name in _walk_references(node):
        if not name.startswith(_PSEUDO_PARAMETER_PREFIX):
            found.add(name)
    return found


def _walk_references(node: Any) -> Iterator[str]:
    if isinstance(node, list):
        for item in node:
            yield from _walk_references(item)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key == "Ref" and isinstance(value, str):
            yield value
        elif key == "Fn::GetAtt":
            yield (value.split(".", 1)[0] if isinstance(value, str) else str(value[0]))
        elif key == "Fn::Sub":
            yield from _sub_references(value)
        elif key == "DependsOn":
            yield from [value] if isinstance(value, str) else value
        else:
            yield from _walk_references(value)


def _sub_references(value: Any) -> Iterator[str]:
    text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1])
    for field_name in _sub_variables(text):
        name = field_name.split(".", 1)[0]
        if name not in variables:
            yield name
    yield from _walk_references(variables)


def _sub_variables(text: str) -> Iterator[str]:
    start = text.find("${")
    while start != -1:
        end = text.find("}", start)
        if end == -1:
            return
        if not text.startswith("${!", start):  # ${!Literal} is an escaped literal
            yield text[start + 2 : end]
        start = text.find("${", end)
