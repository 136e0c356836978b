"""The attack mode ("under attack"): one item in the VelocityTable that every charge invocation reads.

The circuit breaker of the card-testing defences (donations.screening). Its item, ``attack-mode``:

* ``d<minute>``: declines per UTC minute (unix seconds // 60), added by every decline; ``a<minute>``:
  new donations admitted towards Stripe per minute (each container adds its count at most every few
  seconds). The mode opens when the last ``window_seconds`` hold at least ``breaker_declines``
  declines (the minimum volume: fewer are left to the per-address, email and card limits) *and*
  those declines are at least ``breaker_decline_rate`` of the window's attempts: a busy campaign
  with an honest 5-10 % decline rate reaches the count, not the rate (docs/card-testing-thresholds.md).
  ``open_until`` is then set ``quiet_seconds`` ahead (``opened_at``, ``opened_reason`` say since when and why);
* ``r<minute>``: refused attempts per minute while the mode is open (each container adds its count
  at most every few seconds). While declines go on, or refusals reach ``pressure_per_minute``, the
  mode is kept open ``quiet_seconds`` ahead; after that long without such pressure it ends by itself;
* ``forced``, ``forced_until``, ``forced_by``: an operator's setting (donations-ops card-testing
  on|off) holds until it expires or is released; "off" also keeps declines from opening the mode.

Reads are eventually consistent GetItems cached per container for ``cache_seconds``: a mode opened
elsewhere reaches every container within that time. The item is never part of a transaction, so
the many requests reading it never conflict with each other (a DynamoDB transaction conflicts with
any other transaction touching the same item, "Transaction conflict handling in DynamoDB").
Minute counters older than the window are removed by the next write that sees them.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from donations.conditional import condition_failed
from donations.ports import AttackMode

MODE_KEY = "attack-mode"
DECLINES, REFUSALS, ATTEMPTS = "d", "r", "a"
# A container adds up its refusals (and attempts) and writes them at most this often (one write, not one each).
REFUSAL_FLUSH_SECONDS = 2.0
# The mode is extended at most once a minute (not by every decline that keeps it open), or a quarter of
# the quiet period if that is shorter.
EXTEND_STEP_SECONDS = 60


@dataclass(frozen=True)
class ModeSettings:
    breaker_declines: int = 20
    breaker_decline_rate: float = 0.3
    window_seconds: int = 300
    quiet_seconds: int = 1800
    pressure_per_minute: int = 10


def mode_of(item: dict[str, Any], now: float) -> AttackMode:
    """The mode an item says at ``now`` (an open mode whose time has passed is closed)."""
    forced, forced_until = _text(item, "forced"), _number(item, "forced_until")
    if forced in ("on", "off") and now < forced_until:
        by = _text(item, "forced_by") or "an operator"
        return AttackMode(forced == "on", forced_until, f"forced {forced} by {by}", forced)
    open_until = _number(item, "open_until")
    if now < open_until:
        return AttackMode(True, open_until, _text(item, "opened_reason"))
    return AttackMode(False)


def per_minute(item: dict[str, Any], prefix: str) -> dict[int, int]:
    """The item's minute counters of one kind: {unix minute: count}."""
    counts: dict[int, int] = {}
    for name, value in item.items():
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            counts[int(name[len(prefix) :])] = int(value.get("N", "0"))
    return counts


def within(counts: dict[int, int], now: float, seconds: int) -> int:
    """The sum of the minutes that overlap the last ``seconds`` (the current minute included)."""
    first = (int(now) - seconds) // 60 + 1
    return sum(count for minute, count in counts.items() if minute >= first)


class AttackModeRecord:
    """The ``AttackModeSwitch`` port on DynamoDB (low-level client, thread-safe)."""

    def __init__(self, dynamodb: Any, table_name: str, settings: ModeSettings, clock: Any = time.time) -> None:
        self._dynamodb = dynamodb
        self._table = table_name
        self.settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._item: dict[str, Any] | None = None
        self._read_at = 0.0
        self._pending = {REFUSALS: 0, ATTEMPTS: 0}
        self._flushed_at = {REFUSALS: 0.0, ATTEMPTS: 0.0}

    # -- reading -------------------------------------------------------------------------------------

    def cached(self, max_age_seconds: float) -> AttackMode | None:
        """The mode as last read, if read within ``max_age_seconds``; None means "read it"."""
        with self._lock:
            item, read_at = self._item, self._read_at
        now = self._clock()
        if item is None or now - read_at > max_age_seconds:
            return None
        return mode_of(item, now)

    def current(self, max_age_seconds: float = 0) -> AttackMode:
        known = self.cached(max_age_seconds)
        if known is not None:
            return known
        return mode_of(self.read(), self._clock())

    def forget(self) -> None:
        """Drop what this container knows (the next check reads the record again)."""
        with self._lock:
            self._item, self._read_at = None, 0.0
            self._pending = {REFUSALS: 0, ATTEMPTS: 0}
            self._flushed_at = {REFUSALS: 0.0, ATTEMPTS: 0.0}

    def read(self) -> dict[str, Any]:
        item = self._dynamodb.get_item(TableName=self._table, Key={"pk": {"S": MODE_KEY}}).get("Item") or {}
        self._remember(item)
        return dict(item)

    # -- what the charge reports -----------------------------------------------------------------------

    def note_attempt(self) -> None:
        """Count a new donation on its way to Stripe (the rate's denominator); written with the others
        at most every few seconds."""
        self._batched(ATTEMPTS, self._clock())

    def note_decline(self) -> AttackMode:
        """Count a decline; open (or keep open) the mode when the window's declines reach both the
        threshold and the rate."""
        now = self._clock()
        item = self._add(DECLINES, 1, now)
        window = self.settings.window_seconds
        declines = within(per_minute(item, DECLINES), now, window)
        with self._lock:
            unwritten = self._pending[ATTEMPTS]
        # Every decline was an attempt: attempts another container has not written yet never make the rate exceed 1.
        attempts = max(declines, within(per_minute(item, ATTEMPTS), now, window) + unwritten)
        mode = mode_of(item, now)
        suspected = (
            declines >= self.settings.breaker_declines and declines >= self.settings.breaker_decline_rate * attempts
        )
        if mode.forced is None and (mode.under_attack or suspected):
            reason = f"{declines} declines of {attempts} attempts within {window // 60} min"
            self._open_or_extend(item, now, reason)
        return mode_of(self._item or item, now)

    def note_refusal(self) -> None:
        """Count a refused attempt while under attack; written with the others at most every few seconds."""
        now = self._clock()
        item = self._batched(REFUSALS, now)
        if item is None:
            return
        mode = mode_of(item, now)
        pressure = within(per_minute(item, REFUSALS), now, 60)
        if mode.forced is None and mode.under_attack and pressure >= self.settings.pressure_per_minute:
            self._open_or_extend(item, now, _text(item, "opened_reason") or "refused attempts")

    def _batched(self, prefix: str, now: float) -> dict[str, Any] | None:
        """Add one to this container's count of ``prefix``; write the count (and return the item) at most
        every REFUSAL_FLUSH_SECONDS."""
        with self._lock:
            self._pending[prefix] += 1
            if now - self._flushed_at[prefix] < REFUSAL_FLUSH_SECONDS:
                return None
            count, self._pending[prefix], self._flushed_at[prefix] = self._pending[prefix], 0, now
        return self._add(prefix, count, now)

    # -- operators -------------------------------------------------------------------------------------

    def force(self, on: bool, seconds: int, by: str) -> AttackMode:
        """Hold the mode on (every new donation needs a CAPTCHA) or off (declines do not open it) for ``seconds``."""
        now = self._clock()
        self._write(
            "SET forced = :forced, forced_until = :until, forced_by = :by",
            {":forced": {"S": "on" if on else "off"}, ":until": {"N": str(math.ceil(now) + seconds)}, ":by": {"S": by}},
        )
        return mode_of(self._item or {}, now)

    def release(self, *, close: bool = False) -> AttackMode:
        """Back to automatic; ``close`` also ends a mode the declines opened."""
        expression = "REMOVE forced, forced_until, forced_by" + (", open_until" if close else "")
        self._write(expression, None)
        return mode_of(self._item or {}, self._clock())

    # -- writes ----------------------------------------------------------------------------------------

    def _add(self, prefix: str, count: int, now: float) -> dict[str, Any]:
        """Add to this minute's counter and drop the stale ones this container saw last time."""
        stale = self._stale_counters(now)
        names = {"#now": f"{prefix}{int(now) // 60}", **{f"#s{i}": name for i, name in enumerate(stale)}}
        expression = "ADD #now :count" + (f" REMOVE {', '.join(f'#s{i}' for i in range(len(stale)))}" if stale else "")
        item = self._dynamodb.update_item(
            TableName=self._table,
            Key={"pk": {"S": MODE_KEY}},
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":count": {"N": str(count)}},
            ReturnValues="ALL_NEW",
        )["Attributes"]
        self._remember(item)
        return dict(item)

    def _stale_counters(self, now: float) -> list[str]:
        with self._lock:
            item = self._item or {}
        oldest = (int(now) - max(self.settings.window_seconds, 60)) // 60
        return sorted(
            f"{prefix}{minute}"
            for prefix in (DECLINES, REFUSALS, ATTEMPTS)
            for minute in per_minute(item, prefix)
            if minute < oldest
        )[:20]

    def _open_or_extend(self, item: dict[str, Any], now: float, reason: str) -> None:
        # Whole seconds, rounded up: the mode stays open at least quiet_seconds (rounded down, a 1 s quiet
        # period could end a few milliseconds after it opened).
        until = math.ceil(now) + self.settings.quiet_seconds
        open_until = _number(item, "open_until")
        values = {":until": {"N": str(until)}}
        if now >= open_until:  # closed: a new episode starts
            expression = "SET open_until = :until, opened_at = :now, opened_reason = :reason"
            condition = "attribute_not_exists(open_until) OR open_until <= :now"
            values |= {":now": {"N": str(int(now))}, ":reason": {"S": reason}}
        elif open_until < until - min(EXTEND_STEP_SECONDS, self.settings.quiet_seconds / 4):
            expression = "SET open_until = :until"
            condition = "open_until < :until"
        else:
            return
        self._write(expression, values, condition)

    def _write(self, expression: str, values: dict[str, Any] | None, condition: str | None = None) -> None:
        arguments: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"pk": {"S": MODE_KEY}},
            "UpdateExpression": expression,
            "ReturnValues": "ALL_NEW",
        }
        if values:
            arguments["ExpressionAttributeValues"] = values
        if condition:
            arguments["ConditionExpression"] = condition
        try:
            self._remember(self._dynamodb.update_item(**arguments)["Attributes"])
        except ClientError as error:
            if not condition_failed(error):
                raise
            self.read()  # another container got there first: take its word

    def _remember(self, item: dict[str, Any]) -> None:
        with self._lock:
            self._item, self._read_at = dict(item), self._clock()


def _text(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name, {}).get("S")
    return str(value) if value is not None else None


def _number(item: dict[str, Any], name: str) -> float:
    return float(item.get(name, {}).get("N", "0"))
