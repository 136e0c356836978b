"""Form parameters checked against the SDK's generated TypedDicts, the way Stripe checks them.

stripe-python generates one TypedDict per endpoint (``stripe.params.PaymentIntentCreateParams``,
...) from Stripe's OpenAPI spec for the pinned API version: ``__required_keys__`` /
``__optional_keys__`` are the accepted parameters, annotations their types, nested TypedDicts the
hashes. This module turns those types into wire rules (form values are strings, hashes and
arrays) and reports what a request gets wrong, with Stripe's codes and wording
(docs.stripe.com/error-codes: parameter_unknown, parameter_missing, parameter_invalid_integer).

Enums: the SDK types every enum as ``Literal[...] | str`` so that values Stripe adds later do not
break old SDKs; for the pinned version the literal values are the enum, so ``str`` is dropped next
to a Literal (unless the Literal is only ``""``, Stripe's "unset" value).
"""

from __future__ import annotations

import functools
import json
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import stripe._request_options as request_options
from stripe._stripe_context import StripeContext
from stripe._stripe_object import UntypedStripeObject
from typing_extensions import is_typeddict

RequestOptions = request_options.RequestOptions
# Keys of the RequestOptions every params TypedDict extends: options of the SDK call, never sent.
OPTION_KEYS: frozenset[str] = RequestOptions.__required_keys__ | RequestOptions.__optional_keys__
# RequestOptions' annotations name things only its own module imports (some under TYPE_CHECKING).
_OPTION_NAMES: dict[str, Any] = {**vars(request_options), "StripeContext": StripeContext}
_INTEGER = re.compile(r"-?\d+")


@dataclass(frozen=True)
class Violation:
    """One thing Stripe refuses about a request's parameters."""

    param: str  # bracketed, as Stripe names it: "automatic_payment_methods[enabled]"
    code: str | None
    message: str
    docs: str | None = None  # a documentation page, when not the code's error-codes page


@dataclass(frozen=True)
class Scalar:
    kind: str  # "string", "integer", "boolean", "decimal"


@dataclass(frozen=True)
class Enum:
    values: tuple[str, ...]


@dataclass(frozen=True)
class ListOf:
    item: Node


@dataclass(frozen=True)
class MapOf:
    value: Node


@dataclass(frozen=True)
class HashRef:
    typed_dict: type  # resolved lazily through hash_spec: nested hashes are only built when used


@dataclass(frozen=True)
class Anything:
    pass


@dataclass(frozen=True)
class OneOf:
    options: tuple[Node, ...]


Node = Scalar | Enum | ListOf | MapOf | HashRef | Anything | OneOf


@dataclass(frozen=True)
class HashSpec:
    fields: Mapping[str, Node]
    required: tuple[str, ...]


@functools.cache
def hash_spec(typed_dict: type) -> HashSpec:
    """The parameters of one TypedDict (request options excluded), built once per class."""
    hints = get_type_hints(typed_dict, localns=_OPTION_NAMES)
    keys: frozenset[str] = typed_dict.__required_keys__ | typed_dict.__optional_keys__  # type: ignore[attr-defined]
    if keys >= OPTION_KEYS:  # a top-level params class: it extends RequestOptions
        keys -= OPTION_KEYS
    fields = {name: node_for(hints[name]) for name in hints if name in keys}
    required = tuple(name for name in fields if name in typed_dict.__required_keys__)  # type: ignore[attr-defined]
    return HashSpec(fields, required)


_SCALARS: dict[Any, str] = {str: "string", int: "integer", bool: "boolean", float: "decimal"}


def node_for(annotation: Any) -> Node:
    """The wire rule for one annotation; an unknown construct fails loudly (an SDK change to review)."""
    origin = get_origin(annotation)
    if annotation in _SCALARS:
        return Scalar(_SCALARS[annotation])
    if annotation is Any or annotation is UntypedStripeObject or origin is UntypedStripeObject:
        return Anything()
    if is_typeddict(annotation):
        return HashRef(annotation)
    if origin is Literal:
        return Enum(tuple(_wire_literal(v) for v in get_args(annotation)))
    if origin is Union or origin is types.UnionType:
        options = _close_enums([node_for(a) for a in get_args(annotation) if a is not type(None)])
        return options[0] if len(options) == 1 else OneOf(tuple(options))
    if origin is list:
        return ListOf(node_for(get_args(annotation)[0]))
    if origin is dict:
        return MapOf(node_for(get_args(annotation)[1]))
    raise TypeError(f"no wire rule for the SDK annotation {annotation!r}")


def _wire_literal(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _close_enums(options: list[Node]) -> list[Node]:
    has_enum = any(isinstance(o, Enum) and any(v != "" for v in o.values) for o in options)
    return [o for o in options if not (has_enum and o == Scalar("string"))]


# -- checking wire values ---------------------------------------------------------------------
def check_hash(spec: HashSpec, value: Mapping[str, Any], prefix: str = "") -> list[Violation]:
    """Violations of one hash: unknown keys and bad values in request order, then missing keys."""
    found: list[Violation] = []
    for name, item in value.items():
        param = f"{prefix}[{name}]" if prefix else name
        node = spec.fields.get(name)
        if node is None:
            found.append(Violation(param, "parameter_unknown", f"Received unknown parameter: {param}"))
        else:
            found.extend(check_value(node, item, param))
    for name in spec.required:
        if name not in value:
            param = f"{prefix}[{name}]" if prefix else name
            found.append(Violation(param, "parameter_missing", f"Missing required param: {param}."))
    return found


def check_value(node: Node, value: Any, param: str) -> list[Violation]:
    if isinstance(node, Anything):
        return []
    if isinstance(node, OneOf):
        return _check_one_of(node, value, param)
    if isinstance(node, Scalar):
        return _check_scalar(node.kind, value, param)
    if isinstance(node, Enum):
        ok = isinstance(value, str) and value in node.values
        return [] if ok else [_enum_violation(param, node.values)]
    if isinstance(node, ListOf):
        if not isinstance(value, list):
            return [Violation(param, None, "Invalid array")]
        return [v for i, item in enumerate(value) for v in check_value(node.item, item, f"{param}[{i}]")]
    if not isinstance(value, dict):
        return [Violation(param, None, "Invalid hash")]
    if isinstance(node, MapOf):
        return [v for key, item in value.items() for v in check_value(node.value, item, f"{param}[{key}]")]
    return check_hash(hash_spec(node.typed_dict), value, param)


def _check_scalar(kind: str, value: Any, param: str) -> list[Violation]:
    shown = value if isinstance(value, str) else json.dumps(value)
    if kind == "integer":
        ok = isinstance(value, str) and _INTEGER.fullmatch(value) is not None
        return [] if ok else [Violation(param, "parameter_invalid_integer", f"Invalid integer: {shown}")]
    if kind == "boolean":
        ok = value in ("true", "false")
        return [] if ok else [Violation(param, None, f"Invalid boolean: {shown}")]
    if kind == "decimal":
        ok = isinstance(value, str) and _is_decimal(value)
        return [] if ok else [Violation(param, None, f"Invalid decimal: {shown}")]
    return [] if isinstance(value, str) else [Violation(param, None, f"Invalid string: {shown}")]


def _is_decimal(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _check_one_of(node: OneOf, value: Any, param: str) -> list[Violation]:
    """A union: the options that fit the value's wire shape decide; any one accepting it is enough."""
    fits = [o for o in node.options if _shape_fits(o, value)] or [node.options[0]]
    reports = [check_value(option, value, param) for option in fits]
    if any(not report for report in reports):
        return []
    if isinstance(value, str):
        allowed = [v for o in fits if isinstance(o, Enum) for v in o.values]
        allowed += ["true", "false"] if Scalar("boolean") in fits else []
        if any(isinstance(o, Enum) for o in fits):
            return [_enum_violation(param, tuple(dict.fromkeys(allowed)))]
    return reports[0]


def _shape_fits(node: Node, value: Any) -> bool:
    if isinstance(node, Anything):
        return True
    if isinstance(value, dict):
        return isinstance(node, HashRef | MapOf)
    if isinstance(value, list):
        return isinstance(node, ListOf)
    return isinstance(node, Scalar | Enum)


def _enum_violation(param: str, values: tuple[str, ...]) -> Violation:
    shown = [v for v in values if v != ""] or list(values)
    listed = " or ".join(shown) if len(shown) <= 2 else f"{', '.join(shown[:-1])}, or {shown[-1]}"
    return Violation(param, None, f"Invalid {param}: must be one of {listed}")
