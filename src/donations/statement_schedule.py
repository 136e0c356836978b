"""The January run of the year-end statements, on the schedule-renewals function (template.yaml's
``StatementsRunRule`` on ``StatementsRunDay``, hourly that day: each run continues where the last
one's markers say, donations.statement_run)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict

from donations.observability import logger
from donations.settings import ScheduleRenewalsSettings
from donations.statement_run import STATEMENTS_EVENT, run_statements, statements_year
from donations.statements import StatementStore


class RemainingTime(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


class StatementsRunEvent(BaseModel):
    """The rule's constant input. ``time`` is absent on AWS (the run's clock is the invocation's); the
    local stack and tests give it to run as of another day."""

    model_config = ConfigDict(extra="forbid")

    run: Literal["year_end_statements"]
    time: AwareDatetime | None = None

    @staticmethod
    def names(event: dict[str, Any]) -> bool:
        return event.get("run") == STATEMENTS_EVENT


def scheduled_statements(
    event: StatementsRunEvent,
    store: StatementStore,
    sqs: Any,
    settings: ScheduleRenewalsSettings,
    context: RemainingTime,
) -> dict[str, Any]:
    """Last year's statements not sent nor queued, queued until done or the function's time runs short."""
    year = statements_year(event.time or datetime.now(UTC))
    if not settings.statement_template_id:
        logger.warning("No StatementTemplateId: the year-end statements are not queued", extra={"year": year})
        return {"statements_year": year, "statements_skipped": "no StatementTemplateId"}
    reserve_ms = settings.statements_run_reserve_seconds * 1000
    outcome = run_statements(
        store,
        sqs,
        settings.receipt_queue_url,
        year=year,
        time_zone=settings.receipt_time_zone,
        out_of_time=lambda: context.get_remaining_time_in_millis() < reserve_ms,
    )
    logger.info("Year-end statements queued", extra=outcome.as_dict())
    return outcome.as_dict()
