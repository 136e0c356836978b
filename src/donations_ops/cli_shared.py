"""What every donations-ops command module shares: exit codes, argument types and how output is printed."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.text import Text

OK, PROBLEMS, USAGE, SKIPPED, INTERRUPTED = 0, 1, 2, 3, 130
"""Exit codes: 3 is a redrive that moved nothing, or left messages that would fail again."""


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def stdout_console(*, soft_wrap: bool = False) -> Console:
    """A console on the current sys.stdout (looked up at call time, so tests capturing it see the output);
    no colour unless a terminal. ``soft_wrap``: lines are not wrapped, so a command in a hint stays copyable."""
    return Console(file=sys.stdout, width=200, highlight=False, soft_wrap=soft_wrap)


def print_json(value: Any) -> None:
    print(json.dumps(plain(value), indent=2, default=str))


def plain(value: Any) -> Any:
    """Dataclasses, dicts, lists and datetimes (as UTC ISO 8601) as JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def cell(value: Any) -> Text:
    # Text, not a markup string: a reason like "[x]" must print as it is.
    return Text("—" if value is None or value == "" else str(value))
