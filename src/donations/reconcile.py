"""Crash recovery: a scheduled sweep that finishes the donations the charge function left half-done.

What it repairs (every write conditional, every message safe to deliver twice):

* **pending** past the grace period: the charge function died, or lost Stripe's answer, after it may
  have charged (crash point A). Stripe is asked for the truth by searching PaymentIntents on
  ``metadata['donation_id']``: succeeded → recorded and published; requires_action → recorded;
  declined → recorded; nothing (or nothing charged) once Stripe's idempotency window has passed →
  failed. Nothing is ever charged here.
* **succeeded with follow-ups unpublished** (crash point B, or SQS down): published again.
* **requires_action** (3-D Secure) past the grace period: the PaymentIntent is retrieved;
  succeeded → recorded and published (a safety net for the webhook); canceled → recorded;
  still unfinished after the action timeout → canceled at Stripe, then recorded.
* Anything older than the max age is reported (``stale``, counted in ReconcileFailures), not retried:
  a donation stuck that long needs a person.
* **Money the records miss** (the sweep, :func:`_sweep`): every PaymentIntent that succeeded is held
  against its donation's record, whatever that says. A record saying canceled, failed, declined
  (or still pending, or awaiting 3-D Secure) is settled as charged and its follow-ups published
  (donations.settlement); canceled, failed or declined, or a second PaymentIntent for a donation
  charged under another, is counted in ``UnrecordedCharges``, whose alarm pages. Each run reads the
  succeeded PaymentIntents of one schedule interval, twice over: just past the grace period (search
  is fresh within a minute normally) and again an hour later (an outage can delay search by up to an
  hour). The intervals of consecutive runs tile, so each PaymentIntent is read twice and no more:
  Stripe's cost is two searches per run plus one per 100 successes, at most _SWEEP_MAX_PAGES per
  stretch (a busier stretch is reported in ReconcileFailures, not read without end).

Why search, and not "replay the create with the same idempotency key": a replay returns Stripe's
stored answer only if the first request reached Stripe. If it did not (Stripe down, crash before
the call), the replay *is* the first request and charges a donor who was told the donation failed,
possibly hours later. Search only reads. Its index lags (under a minute normally, up to an hour in
incidents), so an empty answer is never taken as final: it only becomes "never charged" once
Stripe's 24 h idempotency window has passed. Until then the donor's own retry with the same
Idempotency-Key may still charge it, and the sweep keeps asking on every run.

Why a scheduled reconciler and not a DynamoDB Streams outbox:

* An outbox only covers crash point B. Crash point A (Stripe charged, the record still says pending)
  and a 3-D Secure payment finished after the donor left write nothing to stream: only asking
  Stripe finds them. A sweep is needed for those anyway, and once it exists it covers B as well:
  one mechanism to test and operate instead of two.
* A stream consumer sees every write of every donation (card saved, receipt claimed...) and must
  filter them; a failing batch blocks its shard in order unless bisecting and failure destinations
  are set up: more moving parts for a path that only runs after crashes.
* The price: recovery takes the grace period plus up to one schedule interval (2 to 7 minutes)
  instead of seconds. That delays only the background steps; the donor already has their answer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from donations.followups import publish_follow_ups
from donations.models import Donation, DonationStatus
from donations.observability import MetricUnit, logger, metrics
from donations.pledge_links import AUTHENTICATE_LINK_SECONDS
from donations.ports import IntentSnapshot, Payments, Publisher, Store
from donations.settings import ReconcilerSettings
from donations.settlement import settle_money_taken
from donations.store import ConditionFailed


class Outcome(StrEnum):
    CHARGED = "charged"  # Stripe had charged it: recorded, follow-ups published
    PUBLISHED = "published"  # charged earlier, follow-ups published now
    REQUIRES_ACTION = "requires_action"  # Stripe waits for 3-D Secure: recorded
    DECLINED = "declined"
    FAILED = "failed"  # nothing was charged, and nothing will be
    CANCELED = "canceled"
    WAITING = "waiting"  # not decided yet (search may lag, the donor may still authenticate)
    SKIPPED = "skipped"  # changed since the query, or being worked on right now
    STALE = "stale"  # older than the max age: reported, not retried
    ERROR = "error"  # failed this time; the next run tries again


_RECONCILED = frozenset(
    {Outcome.CHARGED, Outcome.PUBLISHED, Outcome.REQUIRES_ACTION, Outcome.DECLINED, Outcome.FAILED, Outcome.CANCELED}
)
_FAILURES = frozenset({Outcome.ERROR, Outcome.STALE})


@dataclass(frozen=True)
class ReconcilePolicy:
    grace: timedelta
    max_age: timedelta
    idempotency_window: timedelta
    action_timeout: timedelta
    batch_size: int
    interval: timedelta = timedelta(minutes=5)

    @classmethod
    def from_settings(cls, settings: ReconcilerSettings) -> ReconcilePolicy:
        return cls(
            grace=timedelta(seconds=settings.reconcile_grace_seconds),
            max_age=timedelta(seconds=settings.reconcile_max_age_seconds),
            idempotency_window=timedelta(seconds=settings.stripe_idempotency_window_seconds),
            action_timeout=timedelta(seconds=settings.reconcile_action_timeout_seconds),
            batch_size=settings.reconcile_batch_size,
            interval=timedelta(seconds=settings.reconcile_interval_seconds),
        )


@dataclass
class ReconcileSummary:
    counts: Counter[Outcome] = field(default_factory=Counter)

    @property
    def reconciled(self) -> int:
        return sum(count for outcome, count in self.counts.items() if outcome in _RECONCILED)

    @property
    def failures(self) -> int:
        return sum(count for outcome, count in self.counts.items() if outcome in _FAILURES)

    def as_dict(self) -> dict[str, int]:
        return {outcome.value: count for outcome, count in sorted(self.counts.items()) if count}


@dataclass(frozen=True)
class _Run:
    now: datetime
    policy: ReconcilePolicy
    store: Store
    payments: Payments
    publisher: Publisher

    def waited(self, since: str) -> timedelta:
        return self.now - datetime.fromisoformat(since)

    def settled_down(self, donation: Donation) -> bool:
        """Untouched for the grace period: no charge function or webhook is working on it now."""
        return self.waited(donation.updated_at) >= self.policy.grace


def reconcile(
    *,
    now: datetime,
    store: Store,
    payments: Payments,
    publisher: Publisher,
    policy: ReconcilePolicy,
    out_of_time: Callable[[], bool] = lambda: False,
) -> ReconcileSummary:
    """One sweep over the unsettled donations; returns how many ended in each outcome.

    ``now`` is the scheduled time of the run (injectable, so tests move time instead of waiting).
    ``out_of_time`` stops the sweep early (the rest waits for the next run).
    """
    run = _Run(now.astimezone(UTC), policy, store, payments, publisher)
    summary = ReconcileSummary()
    until, oldest = _iso(run.now - policy.grace), _iso(run.now - policy.max_age)
    for status, settle in _SETTLERS.items():
        for donation_id in store.waiting(status, since=None, before=oldest, limit=policy.batch_size):
            logger.error("Donation stuck past the reconciler's max age", extra=_keys(donation_id, status))
            summary.counts[Outcome.STALE] += 1
        for donation_id in store.waiting(status, since=oldest, before=until, limit=policy.batch_size):
            if out_of_time():
                logger.warning("Reconcile run out of time; the next run continues")
                return _report(summary)
            summary.counts[_settle_one(run, settle, donation_id, status)] += 1
    for start, end in sweep_windows(run.now, policy):
        if out_of_time():
            logger.warning("Reconcile run out of time; the sweep's stretch waits for its second look")
            return _report(summary)
        summary.counts.update(_sweep(run, start, end))
    return _report(summary)


def sweep_windows(now: datetime, policy: ReconcilePolicy) -> list[tuple[datetime, datetime]]:
    """The stretches of creation time a run's sweep reads: one schedule interval ending at the grace
    period, and the same an hour (Stripe search's worst documented lag) before."""
    end = now - policy.grace
    return [(end - lag - policy.interval, end - lag) for lag in (timedelta(0), SEARCH_LAG)]


def _sweep(run: _Run, start: datetime, end: datetime) -> Counter[Outcome]:
    counts: Counter[Outcome] = Counter()
    try:
        intents, complete = run.payments.succeeded_between(
            int(start.timestamp()), int(end.timestamp()), max_pages=_SWEEP_MAX_PAGES
        )
    except Exception:
        logger.exception("Could not read Stripe's succeeded payments; their second look retries")
        counts[Outcome.ERROR] += 1
        return counts
    if not complete:
        logger.error("More succeeded payments than the sweep reads in one stretch", extra={"from": _iso(start)})
        counts[Outcome.ERROR] += 1
    for intent in intents:
        outcome = _held_against_record(run, intent)
        if outcome is not None:
            counts[outcome] += 1
    return counts


def _held_against_record(run: _Run, intent: IntentSnapshot) -> Outcome | None:
    """Settle a succeeded PaymentIntent's donation if its record does not show it; None if it does."""
    if intent.donation_id is None:
        return None  # not a donation
    logger.append_keys(donation_id=intent.donation_id)
    try:
        donation = run.store.get(intent.donation_id)
        if donation is None or (donation.amount, donation.currency) != (intent.amount, intent.currency):
            return None  # not ours: another stack on the same Stripe account
        if donation.status is DonationStatus.SUCCEEDED and donation.payment_intent_id == intent.id:
            return None  # recorded; unpublished follow-ups are the SUCCEEDED settler's
        if donation.status in _OPEN and not run.settled_down(donation):
            return None  # the charge or the webhook is recording it right now
        settle_money_taken(
            donation,
            intent.id,
            intent.payment_method_id,
            store=run.store,
            publisher=run.publisher,
            found_by="reconciler",
            now=run.now.timestamp(),
        )
        return Outcome.CHARGED  # follow-ups another path holds the claim for are the SUCCEEDED settler's
    except Exception:
        logger.exception("Could not record a succeeded payment; its second look retries")
        return Outcome.ERROR
    finally:
        logger.remove_keys(["donation_id"])


def _settle_one(run: _Run, settle: _Settler, donation_id: str, status: DonationStatus) -> Outcome:
    logger.append_keys(donation_id=donation_id)
    try:
        donation = run.store.get(donation_id)
        if donation is None or donation.status is not status or not run.settled_down(donation):
            return Outcome.SKIPPED  # the index lags the table, or someone is on it right now
        outcome = settle(run, donation)
    except ConditionFailed:
        # A concurrent writer (charge retry, webhook) moved it first; the record says what happened.
        outcome = Outcome.SKIPPED
    except Exception:
        logger.exception("Could not reconcile the donation; the next run retries", extra={"status": status.value})
        outcome = Outcome.ERROR
    finally:
        logger.remove_keys(["donation_id"])
    if outcome is not Outcome.WAITING:
        logger.info("Reconcile outcome", extra={**_keys(donation_id, status), "outcome": outcome.value})
    return outcome


def _settle_pending(run: _Run, donation: Donation) -> Outcome:
    intents = run.payments.find_for_donation(donation.donation_id)
    by_status = {intent.status: intent for intent in intents}
    if "succeeded" in by_status:
        return _record_charge(run, donation, by_status["succeeded"])
    if "requires_action" in by_status:
        run.store.mark_requires_action(donation.donation_id, by_status["requires_action"].id)
        return Outcome.REQUIRES_ACTION
    if "processing" in by_status:
        return Outcome.WAITING
    for intent in intents:
        if intent.decline_code:
            # Stripe stored this decline under the charge's idempotency key: a retry would replay it.
            run.store.mark_declined(donation.donation_id, intent.decline_code, intent.id)
            return Outcome.DECLINED
    # Search may lag, and the donor's retry may still charge it under the latest attempt's key.
    if run.waited(donation.charge_attempt_started_at or donation.created_at) < run.policy.idempotency_window:
        return Outcome.WAITING
    run.store.mark_failed(donation.donation_id, "reconcile:not_charged")
    return Outcome.FAILED


def _settle_requires_action(run: _Run, donation: Donation) -> Outcome:
    if donation.payment_intent_id is None:
        raise ValueError("requires_action without a payment_intent_id")
    intent = run.payments.lookup(donation.payment_intent_id)
    if intent.status in ("requires_action", "requires_payment_method", "requires_confirmation"):
        # The donor may still finish (or retry) 3-D Secure; past the timeout we stop waiting, and
        # cancel first so that a late authentication cannot take money for a closed donation.
        if run.waited(donation.updated_at) < _action_timeout(run, donation):
            return Outcome.WAITING
        intent = run.payments.cancel(donation.donation_id, intent.id)
    if intent.status == "succeeded":
        return _record_charge(run, donation, intent)
    if intent.status == "canceled":
        reason = "authentication_failed" if intent.authentication_failed else "authentication_abandoned"
        run.store.mark_canceled(donation.donation_id, reason, intent.id)
        return Outcome.CANCELED
    return Outcome.WAITING  # processing


def _action_timeout(run: _Run, donation: Donation) -> timedelta:
    """How long the donor may take: a gift's 3-D Secure is done in the page, minutes; a renewal the bank wants
    authenticated waits for the donor to open the emailed link (donations.pledge_manage), days."""
    if donation.metadata.get("pledge_id"):
        return max(run.policy.action_timeout, timedelta(seconds=AUTHENTICATE_LINK_SECONDS))
    return run.policy.action_timeout


def _publish_unpublished(run: _Run, donation: Donation) -> Outcome:
    if donation.followups_published:
        if donation.unsettled_since is not None:  # flagged by a writer that left the marker: drop it
            run.store.mark_followups_published(donation.donation_id)
        return Outcome.SKIPPED  # published since the (eventually consistent) index read
    return _publish(run, donation, Outcome.PUBLISHED)


def _record_charge(run: _Run, donation: Donation, intent: IntentSnapshot) -> Outcome:
    charged = run.store.mark_charged(donation.donation_id, intent.id, intent.payment_method_id)
    return _publish(run, charged, Outcome.CHARGED)


def _publish(run: _Run, donation: Donation, outcome: Outcome) -> Outcome:
    # The consumers are idempotent: if an earlier publish got through before its flag was
    # written, this one only makes duplicates they acknowledge. A publisher that died left its
    # claim (a lease, FOLLOWUPS_CLAIM_SECONDS, shorter than the grace period; taking it bumps
    # updated_at): by the time a donation has settled down, that lease has run out.
    published = publish_follow_ups(donation, run.store, run.publisher, donation.correlation_id, now=run.now.timestamp())
    return outcome if published else Outcome.ERROR


# Stripe search's documented worst lag ("up to an hour behind during outages",
# docs.stripe.com/api/payment_intents/search): the sweep's second look at each stretch.
SEARCH_LAG = timedelta(hours=1)
# Search pages of 100 read per stretch: 2,000 succeeded payments in 5 minutes (576,000 a day).
_SWEEP_MAX_PAGES = 20
_OPEN = frozenset({DonationStatus.PENDING, DonationStatus.REQUIRES_ACTION})

_Settler = Callable[[_Run, Donation], Outcome]
_SETTLERS: dict[DonationStatus, _Settler] = {
    DonationStatus.PENDING: _settle_pending,
    DonationStatus.REQUIRES_ACTION: _settle_requires_action,
    DonationStatus.SUCCEEDED: _publish_unpublished,
}


def _report(summary: ReconcileSummary) -> ReconcileSummary:
    # Only counts above zero: a custom metric is billed for each hour it receives data (CloudWatch
    # pricing), so zeros every 5 minutes would cost 2 x $0.30 a month for a quiet stack. The alarm
    # treats missing data as not breaching; a run that never happens is the Errors alarm's business.
    if summary.reconciled:
        metrics.add_metric(name="ReconciledDonations", unit=MetricUnit.Count, value=summary.reconciled)
    if summary.failures:
        metrics.add_metric(name="ReconcileFailures", unit=MetricUnit.Count, value=summary.failures)
    logger.info("Reconcile run finished", extra={"outcomes": summary.as_dict()})
    return summary


def _keys(donation_id: str, status: DonationStatus) -> dict[str, str]:
    return {"donation_id": donation_id, "status": status.value}


def _iso(moment: datetime) -> str:
    """The format of ``utc_now()``: ISO-8601 UTC, milliseconds, ``Z``; sorts as text."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
