"""What needs an operator's attention, read from the sparse ``attention-index`` (never from a DLQ).

A donation is in the index while one of its background steps keeps failing (retrying), was parked
in the step's DLQ, or was redriven and has not succeeded yet (donations.store). Reading it costs a
query and changes nothing, where looking into a DLQ receives its messages (their receive counts
go up). The notifier function and donations-ops both summarize steps from here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.conditions import Key

from donations.models import Attention, Step
from donations.step_failures import ATTENTION_INDEX

MAX_ENTRIES = 10_000
"""Read at most this many entries of one step (a query page holds about 1 MB of index entries)."""


@dataclass(frozen=True)
class AttentionEntry:
    donation_id: str
    step: Step
    since: str
    """When this step first failed, in this episode (ISO-8601 UTC)."""
    attention: Attention
    last_error: str
    failure_kind: str | None
    """"permanent" (parked at once), "transient" (retries exhausted), None while retrying."""


@dataclass(frozen=True)
class StepSummary:
    step: Step
    retrying: int = 0
    parked: int = 0
    redriven: int = 0
    permanent: int = 0
    top_reasons: list[tuple[str, int]] = field(default_factory=list)
    oldest_since: str | None = None
    truncated: bool = False

    @property
    def donations(self) -> int:
        return self.retrying + self.parked + self.redriven


def entries(table: Any, step: Step, *, since: str | None = None, limit: int = MAX_ENTRIES) -> list[AttentionEntry]:
    """The step's entries, oldest first; ``since``: only those whose trouble began at or after it."""
    condition = Key("attention_step").eq(step.value)
    if since is not None:
        condition = condition & Key("attention_since").gte(since)
    arguments: dict[str, Any] = {"IndexName": ATTENTION_INDEX, "KeyConditionExpression": condition}
    found: list[AttentionEntry] = []
    for _ in range(limit // 100 + 1):  # bounded whatever the pages hold
        page = table.query(**arguments)
        found += [_entry(item) for item in page.get("Items", [])]
        if "LastEvaluatedKey" not in page or len(found) >= limit:
            break
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return found[:limit]


def _entry(item: dict[str, Any]) -> AttentionEntry:
    return AttentionEntry(
        donation_id=str(item["donation_id"]),
        step=Step(item["attention_step"]),
        since=str(item["attention_since"]),
        attention=Attention(item.get("attention", Attention.RETRYING.value)),
        last_error=str(item.get("last_error", "")),
        failure_kind=item.get("failure_kind"),
    )


def reason_group(reason: str) -> str:
    """A reason without what varies between donations of one cause (":retries_exhausted")."""
    return reason.removesuffix(":retries_exhausted")


def summarize(step: Step, found: list[AttentionEntry], *, top: int = 3, limit: int = MAX_ENTRIES) -> StepSummary:
    states = Counter(entry.attention for entry in found)
    reasons = Counter(reason_group(entry.last_error) for entry in found if entry.last_error)
    return StepSummary(
        step=step,
        retrying=states[Attention.RETRYING],
        parked=states[Attention.PARKED],
        redriven=states[Attention.REDRIVEN],
        permanent=sum(1 for e in found if e.failure_kind == "permanent" and e.attention is Attention.PARKED),
        top_reasons=reasons.most_common(top),
        oldest_since=min((entry.since for entry in found), default=None),
        truncated=len(found) >= limit,
    )
