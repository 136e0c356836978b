"""donations-ops card-testing: the attack mode, its recent counts and the day's worst offenders; on/off.

Reads and writes the same VelocityTable items the charge function does (donations.attack_mode,
donations.velocity), through the operator's own credentials. Forcing the mode is an item write; the
charge functions see it within their cache time (CARD_TESTING_MODE_CACHE_SECONDS, 5 s).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from donations.attack_mode import DECLINES, REFUSALS, AttackModeRecord, ModeSettings, mode_of, per_minute
from donations.ports import AttackMode, Offender
from donations.velocity import VelocityCounters, VelocityLimits
from donations_ops.aws import Clients
from donations_ops.stack_resources import OpsError, Stack

VELOCITY_TABLE = "VelocityTable"
KINDS = ("ip", "email", "card")
RECENT_MINUTES = 10


@dataclass(frozen=True)
class CardTestingStatus:
    mode: AttackMode
    opened_at: float | None
    declines_per_minute: dict[int, int]
    """The last RECENT_MINUTES minutes (unix minute -> count), as the attack-mode record holds them."""
    refusals_per_minute: dict[int, int]
    offenders: dict[str, list[Offender]] = field(default_factory=dict)
    """Kind (ip, email, card) -> the day's keys with the most declines."""


def _table(stack: Stack) -> str:
    table = stack.tables.get(VELOCITY_TABLE)
    if table is None:
        raise OpsError(f"stack {stack.name!r} has no {VELOCITY_TABLE} (deployed before card testing was added?)")
    return table


def _record(clients: Clients, stack: Stack) -> AttackModeRecord:
    # The settings only matter to the charge's own counting; operators read and force.
    return AttackModeRecord(clients("dynamodb"), _table(stack), ModeSettings())


def card_testing_status(clients: Clients, stack: Stack, *, top: int = 10, day: str | None = None) -> CardTestingStatus:
    record = _record(clients, stack)
    item = record.read()
    now = time.time()
    first = int(now) // 60 - RECENT_MINUTES + 1

    def recent(prefix: str) -> dict[int, int]:
        return {minute: count for minute, count in sorted(per_minute(item, prefix).items()) if minute >= first}

    counters = VelocityCounters(clients("dynamodb"), _table(stack), VelocityLimits())
    opened = item.get("opened_at", {}).get("N")
    return CardTestingStatus(
        mode=mode_of(item, now),
        opened_at=float(opened) if opened else None,
        declines_per_minute=recent(DECLINES),
        refusals_per_minute=recent(REFUSALS),
        offenders={kind: counters.top_offenders(kind, limit=top, day=day) for kind in KINDS},
    )


def force_attack_mode(clients: Clients, stack: Stack, *, on: bool, minutes: int, by: str) -> AttackMode:
    """Hold the attack mode on (a CAPTCHA for every new donation) or off (declines cannot open it)."""
    return _record(clients, stack).force(on, minutes * 60, by)


def automatic_attack_mode(clients: Clients, stack: Stack, *, close: bool) -> AttackMode:
    """Release an operator's setting; ``close`` also ends a mode the declines opened."""
    return _record(clients, stack).release(close=close)
