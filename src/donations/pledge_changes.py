"""The donor's changes to a monthly pledge on the manage page: a new amount, skip the next month, pause and
resume (canceling and a new card: donations.pledge_manage, donations.card_update).

Each takes a one-time token for that change alone (donations.pledge_links, purposes ``amount``, ``skip``,
``pause``, ``resume``), which the manage link's view hands the page. The change is one write conditional on the
pledge as read and on the token's nonce never used (``PledgeStore.change_by_donor``): a replayed request is
refused (``409 link_used``), a hostile token gets the same ``403`` as every bad link, and neither changes
anything. Each change is noted on the pledge (``donor_changes``) for operators.

A renewal already under way keeps what it began with. A renewal's donation, written before Stripe is called,
fixes its amount (donations.renewals), and every delivery charges that donation with the same idempotency key
(``pledge-<pledge>-<period>[-try<N>]``): a new amount applies from the first renewal not begun yet, never mixed
into one already sent to Stripe (which would answer an idempotency error for the same key with other
parameters). Skipping or pausing a month the schedule already queued is refused (``409 renewal_in_progress``)
until that renewal is done: its message would otherwise charge the month the donor just skipped.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from donations.conditional import ConditionFailed
from donations.currencies import amount_problem
from donations.errors import ChangeRefused, InvalidDonation, LinkRefused, LinkUsed, RenewalInProgress
from donations.models import RequestLimits, utc_now
from donations.observability import MetricUnit, logger, metrics
from donations.pledge_links import PledgeLinks, Purpose
from donations.pledge_manage import PledgeView, verified_link, view_of
from donations.pledges import Pledge, PledgeState, PledgeStore, following_charge_on, resume_on

_INVALID = "This link is not valid. Ask for a new link to manage your monthly gift."


def change_amount(
    pledge_id: str, token: str, amount: int, *, pledges: PledgeStore, links: PledgeLinks, limits: RequestLimits
) -> PledgeView:
    """A new monthly amount, in the pledge's currency, within the donation API's bounds for it."""
    pledge, nonce = _usable(pledge_id, token, Purpose.AMOUNT, pledges, links)
    problem = amount_problem(amount, pledge.currency, floor=limits.min_amount, ceiling=limits.max_amount)
    if problem is not None:
        raise InvalidDonation(problem, field="amount", code="invalid_amount")
    _allowed(pledge, PledgeState.ACTIVE, PledgeState.PAUSED)
    note = f"amount {pledge.amount} -> {amount} {pledge.currency}"
    return _change(pledges, links, pledge, nonce, {"amount": amount}, note=note)


def skip_next(pledge_id: str, token: str, *, pledges: PledgeStore, links: PledgeLinks) -> PledgeView:
    """The next renewal moves one period later: that month is never charged."""
    pledge, nonce = _usable(pledge_id, token, Purpose.SKIP, pledges, links)
    _allowed(pledge, PledgeState.ACTIVE)
    if pledge.renewal_try != 1:
        raise ChangeRefused("A retry of this month's gift is due: it cannot be skipped. You can cancel or pause it.")
    _not_queued(pledge)
    later = following_charge_on(pledge.day_of_month, pledge.next_charge_on)
    note = f"skip {pledge.period}: next charge {pledge.next_charge_on} -> {later}"
    values = {"next_charge_on": later, "due_on": later}
    return _change(
        pledges, links, pledge, nonce, values, note=note, remove=("queued_for", "queued_at"), not_queued=True
    )


def pause(pledge_id: str, token: str, *, pledges: PledgeStore, links: PledgeLinks) -> PledgeView:
    """Out of the due index until the donor resumes it: the schedule queues nothing for it."""
    pledge, nonce = _usable(pledge_id, token, Purpose.PAUSE, pledges, links)
    _allowed(pledge, PledgeState.ACTIVE)
    _not_queued(pledge)
    values = {"state": PledgeState.PAUSED.value, "paused_at": utc_now()}
    remove = ("due_on", "retry_on", "queued_for", "queued_at")
    note = f"pause (next charge was {pledge.next_charge_on})"
    return _change(pledges, links, pledge, nonce, values, note=note, remove=remove, not_queued=True)


def resume(
    pledge_id: str, token: str, *, pledges: PledgeStore, links: PledgeLinks, today: date | None = None
) -> PledgeView:
    """Active again, due on its next charge day from today on: the paused months are never charged (nor a
    month already charged or failed, as an operator's ``pledges resume``)."""
    pledge, nonce = _usable(pledge_id, token, Purpose.RESUME, pledges, links)
    _allowed(pledge, PledgeState.PAUSED)
    next_on = resume_on(pledge, today or datetime.now(UTC).date())
    values = {"state": PledgeState.ACTIVE.value, "next_charge_on": next_on, "due_on": next_on, "renewal_try": 1}
    return _change(pledges, links, pledge, nonce, values, note=f"resume: next charge {next_on}", remove=("paused_at",))


def _usable(pledge_id: str, token: str, purpose: Purpose, pledges: PledgeStore, links: PledgeLinks) -> tuple[
    Pledge, str
]:  # fmt: skip
    pledge, claims = verified_link(pledge_id, token, purpose, pledges, links)
    _not_used(pledge, claims.nonce)
    return pledge, claims.nonce


def _not_used(pledge: Pledge, nonce: str) -> None:
    if nonce in pledge.used_link_nonces:
        raise LinkUsed("This link was already used. Open your manage link again to see your monthly gift.")


def _allowed(pledge: Pledge, *states: PledgeState) -> None:
    if pledge.state not in states:
        raise ChangeRefused(
            f"Your monthly gift is {pledge.state.value.replace('_', ' ')}: this change is not possible."
        )


def _not_queued(pledge: Pledge) -> None:
    # The schedule marks the due day it queued (PledgeStore.mark_queued); the renewal's write moves the pledge on.
    if pledge.queued_for is not None and pledge.queued_for == pledge.due_on:
        raise RenewalInProgress("This month's gift is being charged right now. Please try again in a few minutes.")


def _change(
    pledges: PledgeStore,
    links: PledgeLinks,
    pledge: Pledge,
    nonce: str,
    values: dict[str, Any],
    *,
    note: str,
    remove: tuple[str, ...] = (),
    not_queued: bool = False,
) -> PledgeView:
    try:
        changed = pledges.change_by_donor(pledge, nonce, values, note=note, remove=remove, not_queued=not_queued)
    except ConditionFailed:
        current = pledges.get(pledge.pledge_id)
        if current is None:
            raise LinkRefused(_INVALID) from None
        _not_used(current, nonce)
        if not_queued:
            _not_queued(current)  # the schedule queued this month between our read and our write
        raise ChangeRefused("Your monthly gift changed meanwhile. Please look at it again.") from None
    metrics.add_metric(name="PledgesChangedByDonor", unit=MetricUnit.Count, value=1)
    logger.info("Pledge changed by the donor", extra={"pledge_id": pledge.pledge_id, "change": note.split()[0]})
    return view_of(changed, links)
