"""Velocity counters of the card-testing defences (donations.screening): DynamoDB atomic counters, no scans.

One item per key and time bucket in the VelocityTable, each changed by one conditional UpdateItem:

* ``ip#<sourceIp>#<UTC hour>`` and ``email#<keyed HMAC of the address>#<UTC day>``: the donation ids
  that tried (``attempt_ids``, a string set) and how many of them were declined (``decline_count``).
  Counting an attempt adds its donation id to the set: a resubmission of the same donation (same
  Idempotency-Key) adds nothing, so a replay never counts twice. The update's condition is the
  limit itself, so two requests racing past a limit cannot both pass it;
* ``card#<Stripe card fingerprint>#<UTC day>``: the card's declines, counted after each decline.

Keys carry their bucket, so a new hour or day starts from zero without a reset, and the items
expire by DynamoDB TTL (``expires_at``) a day after their bucket ends. Items with declines join a
sparse index (``board``, ``decline_count``) from which operators read the worst offenders of a day
(donations-ops card-testing status), with a Query, not a scan.

Conditions use DynamoDB's ``contains`` and ``size`` on a string set (Developer Guide, "Condition
and filter expressions, operators and functions"); a failed condition returns the item as it was
(``ReturnValuesOnConditionCheckFailure=ALL_OLD``), which says which limit was reached.
"""

from __future__ import annotations

import contextvars
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from donations.conditional import condition_failed
from donations.identifiers import Identifiers
from donations.ports import Offender, Tally
from donations.redaction import mask_email

BOARD_INDEX = "board-decline_count-index"
HOUR, DAY = 3600, 86_400
# Buckets are kept a day after they end: long enough for operators to look back at yesterday.
KEEP_SECONDS = DAY


@dataclass(frozen=True)
class VelocityLimits:
    """Per key: attempts beyond which a CAPTCHA is asked for; declines beyond which attempts are refused."""

    ip_attempts_per_hour: int = 20
    ip_declines_per_hour: int = 10
    email_attempts_per_day: int = 10
    email_declines_per_day: int = 3
    card_declines_per_day: int = 3


@dataclass(frozen=True)
class _Key:
    kind: str  # ip, email, card
    pk: str
    label: str  # what operators see: the address, the masked email, the fingerprint
    bucket_ends: int
    board: str

    @property
    def expires_at(self) -> int:
        return self.bucket_ends + KEEP_SECONDS


def ip_key(ip: str, now: float) -> _Key:
    start = int(now) // HOUR * HOUR
    return _Key("ip", f"ip#{ip}#{_hour(start)}", ip, start + HOUR, f"ip#{_day(now)}")


def email_key(email: str, digest: str, now: float) -> _Key:
    # ``digest``: Identifiers.velocity_email_key. The table holds no address, only what operators may
    # see of it (masked), and a list of known addresses cannot be matched against it without the secret.
    start = int(now) // DAY * DAY
    return _Key("email", f"email#{digest}#{_day(now)}", mask_email(email), start + DAY, f"email#{_day(now)}")


def card_key(fingerprint: str, now: float) -> _Key:
    start = int(now) // DAY * DAY
    return _Key("card", f"card#{fingerprint}#{_day(now)}", fingerprint, start + DAY, f"card#{_day(now)}")


def _hour(unix: float) -> str:
    return time.strftime("%Y-%m-%dT%H", time.gmtime(unix))


def _day(unix: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(unix))


class VelocityCounters:
    """The ``Velocity`` port on DynamoDB (a low-level client: it is thread-safe, the counters go side by side)."""

    def __init__(
        self,
        dynamodb: Any,
        table_name: str,
        limits: VelocityLimits,
        identifiers: Identifiers | None = None,
        clock: Any = time.time,
    ) -> None:
        """``identifiers`` key the email counters; without them (operators reading offenders) none is counted."""
        self._dynamodb = dynamodb
        self._identifiers = identifiers
        self._table = table_name
        self.limits = limits
        self._clock = clock

    def _email_key(self, email: str, now: float) -> _Key:
        if self._identifiers is None:
            raise TypeError("these VelocityCounters were built without Identifiers: they count nothing")
        return email_key(email, self._identifiers.velocity_email_key(email), now)

    # -- before a charge ---------------------------------------------------------------------------

    def count_attempt(self, donation_id: str, ip: str, email: str, *, soft_limits: bool = True) -> list[Tally]:
        """Count this donation against its address and its email, both side by side; the two tallies.

        ``soft_limits=False`` (the client solved a CAPTCHA) counts past the attempts limits; the
        declines limits always hold. A tally over a limit counted nothing.
        """
        now = self._clock()
        limits = self.limits
        ip_attempts = limits.ip_attempts_per_hour if soft_limits else None
        email_attempts = limits.email_attempts_per_day if soft_limits else None
        ip_key_now = ip_key(ip, now)
        ip_count = _side.submit(
            contextvars.copy_context().run,
            lambda: self._count(ip_key_now, donation_id, ip_attempts, limits.ip_declines_per_hour, now),
        )
        email_tally = self._count(
            self._email_key(email, now), donation_id, email_attempts, limits.email_declines_per_day, now
        )
        return [ip_count.result(), email_tally]

    def card_declines(self, fingerprint: str) -> int:
        """Declines of this card today (one eventually consistent read)."""
        key = card_key(fingerprint, self._clock())
        item = self._dynamodb.get_item(TableName=self._table, Key={"pk": {"S": key.pk}}).get("Item") or {}
        return _number(item, "decline_count")

    def _count(self, key: _Key, donation_id: str, max_attempts: int | None, max_declines: int, now: float) -> Tally:
        condition = "(attribute_not_exists(#d) OR #d < :max_declines)"
        values: dict[str, Any] = {
            ":id": {"SS": [donation_id]},
            ":label": {"S": key.label},
            ":expires": {"N": str(key.expires_at)},
            ":max_declines": {"N": str(max_declines)},
        }
        if max_attempts is not None:
            condition += " AND (attribute_not_exists(#a) OR contains(#a, :one_id) OR size(#a) < :max_attempts)"
            values |= {":one_id": {"S": donation_id}, ":max_attempts": {"N": str(max_attempts)}}
        try:
            item = self._dynamodb.update_item(
                TableName=self._table,
                Key={"pk": {"S": key.pk}},
                UpdateExpression="ADD #a :id SET #l = :label, #e = :expires",
                ConditionExpression=condition,
                ExpressionAttributeNames={
                    "#a": "attempt_ids",
                    "#d": "decline_count",
                    "#l": "label",
                    "#e": "expires_at",
                },
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )["Attributes"]
            over = None
        except ClientError as error:
            if not condition_failed(error):
                raise
            item = error.response.get("Item") or {}
            over = "declines" if _number(item, "decline_count") >= max_declines else "attempts"
        attempts = len(item.get("attempt_ids", {}).get("SS", []))
        return Tally(key.kind, attempts, _number(item, "decline_count"), over, max(1, key.bucket_ends - int(now)))

    # -- after a decline ---------------------------------------------------------------------------

    def record_decline(self, donation_id: str, ip: str, email: str, fingerprint: str | None) -> None:
        """Count a decline against the address, the email and the card, side by side, once per donation."""
        now = self._clock()
        keys = [ip_key(ip, now), self._email_key(email, now)] + ([card_key(fingerprint, now)] if fingerprint else [])
        first, *others = keys
        pending = [_side.submit(contextvars.copy_context().run, self._decline, key, donation_id) for key in others]
        self._decline(first, donation_id)
        for done in pending:
            done.result()

    def _decline(self, key: _Key, donation_id: str) -> None:
        try:
            self._dynamodb.update_item(
                TableName=self._table,
                Key={"pk": {"S": key.pk}},
                UpdateExpression="ADD #declined :id, #d :one SET #l = :label, #e = :expires, #b = :board",
                # Once per donation: a decline replayed by a resubmission is not counted again.
                ConditionExpression="attribute_not_exists(#declined) OR NOT contains(#declined, :one_id)",
                ExpressionAttributeNames={
                    "#declined": "declined_ids",
                    "#d": "decline_count",
                    "#l": "label",
                    "#e": "expires_at",
                    "#b": "board",
                },
                ExpressionAttributeValues={
                    ":id": {"SS": [donation_id]},
                    ":one_id": {"S": donation_id},
                    ":one": {"N": "1"},
                    ":label": {"S": key.label},
                    ":expires": {"N": str(key.expires_at)},
                    ":board": {"S": key.board},
                },
            )
        except ClientError as error:
            if not condition_failed(error):
                raise

    # -- operators ---------------------------------------------------------------------------------

    def top_offenders(self, kind: str, *, limit: int = 10, day: str | None = None) -> list[Offender]:
        """The keys of one kind (ip, email, card) with the most declines on a UTC day (default today).

        An address has one item per hour: they are added up per address.
        """
        board = f"{kind}#{day or _day(self._clock())}"
        found: dict[str, int] = {}
        arguments: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": BOARD_INDEX,
            "KeyConditionExpression": "#b = :board",
            "ExpressionAttributeNames": {"#b": "board"},
            "ExpressionAttributeValues": {":board": {"S": board}},
            "ScanIndexForward": False,
        }
        for _ in range(20):  # bounded: a day has 24 buckets per address, the board is read most-declined first
            page = self._dynamodb.query(**arguments)
            for item in page.get("Items", []):
                label = item.get("label", {}).get("S", "?")
                found[label] = found.get(label, 0) + _number(item, "decline_count")
            if "LastEvaluatedKey" not in page:
                break
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        ranked = sorted(found.items(), key=lambda pair: (-pair[1], pair[0]))[:limit]
        return [Offender(kind, label, declines) for label, declines in ranked]


def _number(item: dict[str, Any], name: str) -> int:
    return int(item.get(name, {}).get("N", "0"))


# The low-level client is thread-safe; one worker beside the caller covers the counters of one request.
_side = ThreadPoolExecutor(max_workers=3, thread_name_prefix="velocity")
