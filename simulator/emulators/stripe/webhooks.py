"""Stripe-style signed webhook delivery for the Stripe emulator.

``WebhookDispatcher`` posts events to one endpoint from a background thread: the API request that
caused an event only enqueues it. A 2xx answer marks the event delivered; any other status, a
timeout or a connection error is retried on a schedule (Stripe backs off exponentially for days,
docs.stripe.com/webhooks#retries; here the schedule is configurable), each attempt re-signed with a
fresh timestamp (see ``signing``). Test switches (pause, duplicates, reorder, drop) make the
at-least-once, unordered delivery Stripe documents happen on demand.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from simulator.emulators.stripe.signing import DEFAULT_SECRET, encode_event
from simulator.emulators.stripe.webhook_http import Outcome, abort, post_signed
from simulator.emulators.stripe.webhook_settings import (
    DEFAULT_RETRY_SCHEDULE,
    DEFAULT_TIMEOUT,
    DELIVERED,
    DROPPED,
    FAILED,
    MAX_WAIT_SECONDS,
    PENDING,
    DeliveryModes,
    Job,
    check_schedule,
    check_timeout,
    check_url,
)

Json = dict[str, Any]

SettledCallback = Callable[[str, str], None]


class WebhookDispatcher:
    """Delivers events to one webhook endpoint from a background thread; see the module docstring.

    Thread-safe. ``submit`` never blocks on the network. ``on_settled(event_id, status)`` is called
    (from the delivery thread, with no dispatcher lock held) when an event is delivered or given up.
    """

    def __init__(
        self,
        *,
        url: str | None = None,
        secret: str = DEFAULT_SECRET,
        retry_schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE,
        timeout: float = DEFAULT_TIMEOUT,
        enabled_events: Sequence[str] = ("*",),
        on_settled: SettledCallback | None = None,
        name: str = "stripe-webhooks",
    ) -> None:
        self._cond = threading.Condition()
        self._url = check_url(url) if url is not None else None
        self._secret = secret
        self._schedule = check_schedule(retry_schedule)
        self._timeout = check_timeout(timeout)
        self._enabled = tuple(enabled_events)
        self._on_settled = on_settled
        self._name = name
        self._rng = random.Random()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._inflight: set[http.client.HTTPConnection] = set()
        self._generation = 0
        self._reset_locked()

    # -- configuration -------------------------------------------------------------
    def configure(
        self,
        url: str | None,
        secret: str | None = None,
        *,
        enabled_events: Sequence[str] | None = None,
        retry_schedule: Sequence[float] | None = None,
        timeout: float | None = None,
    ) -> None:
        """Point delivery at ``url`` (None: no endpoint, queued deliveries are dropped).
        Arguments left as None keep their current value."""
        checked_url = check_url(url) if url is not None else None
        schedule = check_schedule(retry_schedule) if retry_schedule is not None else None
        checked_timeout = check_timeout(timeout) if timeout is not None else None
        if secret is not None and not secret:
            raise ValueError("secret must not be empty")
        with self._cond:
            self._url = checked_url
            if secret is not None:
                self._secret = secret
            if enabled_events is not None:
                self._enabled = tuple(str(e) for e in enabled_events)
            if schedule is not None:
                self._schedule = schedule
            if checked_timeout is not None:
                self._timeout = checked_timeout
            if checked_url is None:  # like deleting the endpoint: no further attempts
                self._jobs.clear()
                self._held.clear()
            self._cond.notify_all()

    @property
    def url(self) -> str | None:
        with self._cond:
            return self._url

    @property
    def secret(self) -> str:
        with self._cond:
            return self._secret

    def seed(self, n: int) -> None:
        with self._cond:
            self._rng.seed(n)

    def set_mode(
        self,
        *,
        paused: bool | None = None,
        duplicates: int | None = None,
        duplicate_rate: float | None = None,
        reorder: bool | None = None,
        reorder_window: float | None = None,
        drop_next: int | None = None,
    ) -> Json:
        """Test switches; arguments left as None are unchanged. Returns the resulting modes.

        ``duplicates``: the next N events are delivered twice (same event id, same body).
        ``duplicate_rate``: probability that any event is delivered twice (seeded via ``seed``).
        ``reorder``: events are held until none arrived for ``reorder_window`` seconds, then sent
        newest first. ``drop_next``: the next N events are lost (never sent, never retried).
        ``paused``: events queue up (retries too) until resumed.
        """
        changes = {
            "paused": paused,
            "duplicates": duplicates,
            "duplicate_rate": duplicate_rate,
            "reorder": reorder,
            "reorder_window": reorder_window,
            "drop_next": drop_next,
        }
        with self._cond:
            self._modes.update(**{k: v for k, v in changes.items() if v is not None})
            if reorder is not None and not self._modes.reorder:
                self._flush_held()
            self._cond.notify_all()
            return self._modes.as_dict()

    def pause(self) -> None:
        self.set_mode(paused=True)

    def resume(self) -> None:
        self.set_mode(paused=False)

    def modes(self) -> Json:
        with self._cond:
            return self._modes.as_dict()

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._closing = False
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        with self._cond:
            return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the delivery thread, aborting an in-flight request; queued deliveries are kept."""
        with self._cond:
            thread = self._thread
            self._closing = True
            conns = list(self._inflight)
            self._cond.notify_all()
        for conn in conns:
            abort(conn)
        if thread is not None:
            thread.join(timeout=timeout)
        with self._cond:
            self._thread = None

    def reset(self) -> None:
        """Forget queued and held deliveries, the delivery log and all modes (not the endpoint)."""
        with self._cond:
            self._generation += 1  # results of attempts already in flight are discarded
            self._reset_locked()
            self._cond.notify_all()

    # -- events ----------------------------------------------------------------------
    def accepts(self, event_type: str) -> bool:
        with self._cond:
            return self._url is not None and self._subscribed(event_type)

    def submit(self, event: Json) -> str | None:
        """Queue a new event for delivery. Returns its delivery state, or None when no endpoint
        is configured or the endpoint is not subscribed to the event's type."""
        with self._cond:
            if self._url is None or not self._subscribed(event["type"]):
                return None
            event_id, event_type = str(event["id"]), str(event["type"])
            payload = encode_event(event)
            self._payloads[event_id] = payload
            if self._modes.drop_next > 0:
                self._modes.drop_next -= 1
                self._status[event_id] = DROPPED
                self._log_entry(Job(event_id, event_type, payload, 1, self._generation), "dropped", None)
                self._cond.notify_all()
                return DROPPED
            copies = 1
            if self._modes.duplicates > 0:
                self._modes.duplicates -= 1
                copies = 2
            elif self._modes.duplicate_rate and self._rng.random() < self._modes.duplicate_rate:
                copies = 2
            jobs = [Job(event_id, event_type, payload, 1, self._generation, duplicate=i > 0) for i in range(copies)]
            if self._modes.reorder:
                self._held.extend(jobs)
                self._held_since = time.monotonic()
            else:
                for job in jobs:
                    self._push(job, 0.0)
            self._status[event_id] = PENDING
            self._cond.notify_all()
            return PENDING

    def deliver_now(self, event: Json) -> Json:
        """Send one event now, in the caller's thread, ignoring pause, drop and duplicate modes and
        the event filter; no retries. Returns the delivery-log entry. The body is the one first
        sent for this event, if any."""
        with self._cond:
            if self._url is None:
                raise ValueError("no webhook endpoint configured")
            event_id = str(event["id"])
            payload = self._payloads.get(event_id) or encode_event(event)
            self._payloads[event_id] = payload
            job = Job(event_id, str(event["type"]), payload, 1, self._generation, manual=True)
            url, secret, timeout = self._url, self._secret, self._timeout
        outcome = self._attempt(job, url, secret, timeout, abortable=False)
        settled: str | None = None
        with self._cond:
            entry = self._entry(job, outcome.status, outcome.signed_at)
            if job.generation == self._generation:
                self._log.append(entry)
                if outcome.ok and self._status.get(event_id) != DELIVERED:
                    self._status[event_id] = settled = DELIVERED
                self._cond.notify_all()
        if settled is not None:
            self._settled(event_id, settled)
        return dict(entry)

    # -- inspection ------------------------------------------------------------------
    @property
    def deliveries(self) -> list[Json]:
        with self._cond:
            return [dict(e) for e in self._log]

    def event_status(self, event_id: str) -> str | None:
        with self._cond:
            return self._status.get(event_id)

    def wait_for(self, n: int, timeout: float = 5.0, *, delivered_only: bool = False) -> list[Json]:
        """Block until the log holds at least ``n`` entries (only 2xx ones with ``delivered_only``)
        and return the log; raises TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + min(max(timeout, 0.0), MAX_WAIT_SECONDS)
        with self._cond:
            while self._count(delivered_only) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closing:
                    have = self._count(delivered_only)
                    raise TimeoutError(f"{have} of {n} webhook deliveries after {timeout}s: {self._log}")
                self._cond.wait(remaining)
            return [dict(e) for e in self._log]

    def snapshot(self) -> Json:
        with self._cond:
            return {
                "url": self._url,
                "enabled_events": list(self._enabled),
                "retry_schedule": list(self._schedule),
                "timeout": self._timeout,
                "modes": self._modes.as_dict(),
                "queued": len(self._jobs),
                "held": len(self._held),
                "event_status": dict(self._status),
            }

    # -- internals (call with self._cond held unless noted) --------------------------
    def _reset_locked(self) -> None:
        self._jobs: list[tuple[float, int, Job]] = []
        self._held: list[Job] = []
        self._held_since = 0.0
        self._log: list[Json] = []
        self._status: dict[str, str] = {}
        self._payloads: dict[str, bytes] = {}
        self._modes: DeliveryModes = DeliveryModes()

    def _subscribed(self, event_type: str) -> bool:
        return "*" in self._enabled or event_type in self._enabled

    def _count(self, delivered_only: bool) -> int:
        if not delivered_only:
            return len(self._log)
        return sum(1 for e in self._log if isinstance(e["status"], int) and 200 <= e["status"] < 300)

    def _push(self, job: Job, delay: float) -> None:
        heapq.heappush(self._jobs, (time.monotonic() + delay, next(self._seq), job))

    def _flush_held(self) -> None:
        for job in reversed(self._held):  # newest first
            self._push(job, 0.0)
        self._held.clear()

    def _entry(self, job: Job, status: int | str, signed_at: int | None) -> Json:
        return {
            "event_id": job.event_id,
            "type": job.type,
            "attempt": job.attempt,
            "status": status,
            "delivered_at": time.time(),
            "signed_at": signed_at,
            "duplicate": job.duplicate,
            "manual": job.manual,
        }

    def _log_entry(self, job: Job, status: int | str, signed_at: int | None) -> None:
        self._log.append(self._entry(job, status, signed_at))

    def _next_job(self) -> tuple[Job, str, str, float] | None:
        """Wait for a due job; None once stopping."""
        while not self._closing:
            now = time.monotonic()
            if self._held and now - self._held_since >= self._modes.reorder_window:
                self._flush_held()
            if not self._modes.paused and self._url is not None and self._jobs and self._jobs[0][0] <= now:
                job = heapq.heappop(self._jobs)[2]
                if job.generation == self._generation:
                    return job, self._url, self._secret, self._timeout
                continue
            waits = []
            if self._held:
                waits.append(self._held_since + self._modes.reorder_window - now)
            if self._jobs and not self._modes.paused and self._url is not None:
                waits.append(self._jobs[0][0] - now)
            self._cond.wait(max(0.0, min(waits)) if waits else None)
        return None

    def _run(self) -> None:
        while True:
            with self._cond:
                picked = self._next_job()
                if picked is None:
                    return
            job, url, secret, timeout = picked
            outcome = self._attempt(job, url, secret, timeout, abortable=True)
            settled: str | None = None
            with self._cond:
                if self._closing:  # aborted by stop(): try again after a restart
                    self._push(job, 0.0)
                    return
                if job.generation != self._generation:
                    continue
                self._log_entry(job, outcome.status, outcome.signed_at)
                if outcome.ok:
                    if self._status.get(job.event_id) != DELIVERED:
                        settled = DELIVERED
                elif job.attempt <= len(self._schedule) and self._url is not None:
                    delay = self._schedule[job.attempt - 1]
                    job.attempt += 1
                    self._push(job, delay)
                elif self._status.get(job.event_id) == PENDING and not self._has_other_copy(job):
                    settled = FAILED
                if settled is not None:
                    self._status[job.event_id] = settled
                self._cond.notify_all()
            if settled is not None:
                self._settled(job.event_id, settled)

    def _has_other_copy(self, job: Job) -> bool:
        pending = [j for _, _, j in self._jobs] + self._held
        return any(j.event_id == job.event_id and j is not job for j in pending)

    def _settled(self, event_id: str, status: str) -> None:  # no lock held
        if self._on_settled is not None:
            self._on_settled(event_id, status)

    def _attempt(self, job: Job, url: str, secret: str, timeout: float, *, abortable: bool) -> Outcome:
        """One signed POST (no lock held). ``abortable`` attempts are cut short by ``stop``."""
        return post_signed(
            url,
            job.payload,
            secret,
            timeout,
            on_connect=self._track if abortable else None,
            on_close=self._untrack,
        )

    def _track(self, conn: http.client.HTTPConnection) -> None:
        with self._cond:
            if self._closing:  # stop() already ran: it could not see this connection
                raise ConnectionAbortedError("dispatcher stopping")
            self._inflight.add(conn)

    def _untrack(self, conn: http.client.HTTPConnection) -> None:
        with self._cond:
            self._inflight.discard(conn)
