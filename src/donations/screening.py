"""Card testing: who may try a card now. Decided before anything reaches Stripe (README, "Card testing").

A public form that charges cards is what card testers look for: bots run stolen numbers through
small donations to find the live ones. Stripe's guidance ("Card testing", docs.stripe.com/disputes/
prevention/card-testing) is to combine rate limits by IP and other keys, a CAPTCHA, and watching
the decline rate. Here, for each new donation:

1. **A CAPTCHA token, if the form sent one**, is verified first (Turnstile siteverify); a valid one
   waives the soft limits and the attack mode's challenge, an invalid one is refused (403).
2. **Under attack** (the attack mode, donations.attack_mode, known from a short cache) every new
   donation without a valid token is asked for one (403 ``challenge_required``), before any write.
3. **Velocity**, counted side by side with the donation's own first write (one round trip, not
   two): per address and hour, per email and day. Past the declines limits: 429 with Retry-After.
   Past the attempts limits: a CAPTCHA is asked for (an office behind one address is not refused).
4. **The card**, only for a client that already had a decline today (address or email): its
   fingerprint, one Stripe read, against the card's declines today. Past the limit: 429.

A refused donation's record is removed again, so the same Idempotency-Key can come back after
Retry-After or with a token. A resubmission of a donation that exists is answered from its record
and never judged: no CAPTCHA, 429 or attack-mode refusal for a donation that may be charged.
After a decline, the address, the email and the card count it (once per donation), and the attack
mode counts it towards opening.
"""

from __future__ import annotations

import contextvars
import math
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from aws_lambda_powertools.metrics import single_metric

from donations.challenge import idempotency_key_for
from donations.errors import CardDeclined, ChallengeFailed, ChallengeRequired, DonationError, TooManyAttempts
from donations.models import Donation, DonationRequest
from donations.observability import MetricUnit, logger, metrics
from donations.ports import AttackMode, AttackModeSwitch, CardLookup, Challenges, Client, Tally, Velocity
from donations.redaction import mask_email

T = TypeVar("T")

# What a donor reads. Never which key tripped: that would tell a tester what to rotate.
_SLOW_DOWN = "Too many payment attempts have been declined from your connection or for these details."
_CHALLENGE = "Please confirm you are not a robot, then submit your donation again."
_CHALLENGE_FAILED = "The security check did not go through; please complete it again."


@dataclass
class Screening:
    """The card-testing checks of one charge function, over its ports."""

    velocity: Velocity
    attack_mode: AttackModeSwitch
    challenges: Challenges
    challenge: dict[str, str]
    """What the form needs to show the widget: provider, site_key, script."""
    card_declines_per_day: int = 3
    mode_cache_seconds: float = 5.0

    def admit(
        self,
        donation_id: str,
        request: DonationRequest,
        client: Client,
        *,
        create: Callable[[], Donation],
        existing: Callable[[], Donation | None],
        is_new: Callable[[Donation], bool],
        discard: Callable[[], None],
        cards: CardLookup,
    ) -> Donation:
        """``create()`` the donation's record if this client may try this card now; raise if not.

        ``existing()``: the donation's record, if there is one. ``is_new(record)``: the record was
        created by this request (not a resubmission's). ``discard()``: remove the record this request
        created, once it is refused. ``cards``: where a suspect client's card fingerprint is looked up
        (Stripe).

        Only new donations are judged. A resubmission (charged, declined, waiting for 3-D Secure, in
        flight) is answered from its record first: a donor whose answer was lost must never be asked
        for a CAPTCHA, or refused, for a donation that may already be charged. Where a refusal could
        come before the record is written (under attack, or a token to verify, which Turnstile
        accepts only once, so a retry resends a spent one), the record is read first.
        """
        known = self.attack_mode.cached(self.mode_cache_seconds)
        if (client.challenge_token or (known is not None and known.under_attack)) and existing() is not None:
            return create()  # the record answers (or resumes) it: not judged again
        human = self._verified(client, donation_id)
        if known is not None and known.under_attack and not human:
            raise self._refused(self._challenge_required("attack"), known, request, client)
        email = str(request.email)
        counting = _beside(self.velocity.count_attempt, donation_id, client.ip, email, soft_limits=not human)
        reading = None if known is not None else _beside(self.attack_mode.current, self.mode_cache_seconds)
        donation = create()  # the donation's own first write, while the counters and the mode are read
        tallies = _settled(counting, [], "velocity counters")
        mode = known or _settled(reading, AttackMode(False), "attack mode")
        if not is_new(donation):
            return donation  # a resubmission: admitted (or answered) before, not counted again
        try:
            self._judge(request, client, human, tallies, mode, cards)
        except DonationError as refusal:
            discard()
            raise self._refused(refusal, mode, request, client) from None
        try:
            self.attack_mode.note_attempt()  # the decline rate's denominator
        except Exception:
            logger.warning("Attack mode attempt not recorded", exc_info=True)
        return donation

    def declined(self, donation: Donation, client: Client, declined: CardDeclined) -> None:
        """Count a decline against the address, email and card, and towards the attack mode (side by side)."""
        counting = _beside(
            self.velocity.record_decline, donation.donation_id, client.ip, donation.email, declined.card_fingerprint
        )
        try:
            mode = self.attack_mode.note_decline()
        except Exception:
            logger.warning("Attack mode not updated after a decline", exc_info=True)
        else:
            if mode.under_attack and mode.forced is None:
                logger.info(
                    "Card testing suspected: attack mode on", extra={"until": mode.until, "reason": mode.reason}
                )
        _settled(counting, None, "decline counters")

    # -- the decision ------------------------------------------------------------------------------

    def _verified(self, client: Client, donation_id: str) -> bool:
        if not client.challenge_token:
            return False
        verdict = self.challenges.verify(client.challenge_token, client.ip, idempotency_key_for(donation_id))
        if not verdict.success:
            logger.info("Challenge token refused", extra={"error_codes": list(verdict.error_codes)})
            failed = ChallengeFailed(_CHALLENGE_FAILED, challenge=self.challenge, reason="challenge_failed")
            raise self._refused(failed, None, None, client)
        return True

    def _judge(
        self,
        request: DonationRequest,
        client: Client,
        human: bool,
        tallies: list[Tally],
        mode: AttackMode,
        cards: CardLookup,
    ) -> None:
        for tally in tallies:
            if tally.over == "declines":
                raise TooManyAttempts(
                    _slow_down(tally.resets_in_seconds), retry_after_seconds=tally.resets_in_seconds, reason=tally.kind
                )
        if mode.under_attack and not human:
            raise self._challenge_required("attack")
        for tally in tallies:
            if tally.over == "attempts":
                raise self._challenge_required(f"{tally.kind}_attempts")
        if any(tally.declines for tally in tallies):
            self._judge_card(request, cards)

    def _judge_card(self, request: DonationRequest, cards: CardLookup) -> None:
        """A client that had a decline today: has this card been declined too often today (anywhere)?"""
        fingerprint = cards.card_fingerprint(request.payment_method)
        if fingerprint is None:
            return  # Stripe cannot say now; the charge itself will tell
        if self.velocity.card_declines(fingerprint) >= self.card_declines_per_day:
            wait = _seconds_to_midnight()
            raise TooManyAttempts(_slow_down(wait), retry_after_seconds=wait, reason="card")

    def _challenge_required(self, reason: str) -> ChallengeRequired:
        return ChallengeRequired(_CHALLENGE, challenge=self.challenge, reason=reason)

    def _refused(
        self, refusal: DonationError, mode: AttackMode | None, request: DonationRequest | None, client: Client
    ) -> DonationError:
        """Count and log a refusal (by reason: velocity or challenge), and tell the attack mode about it."""
        kind = "velocity" if isinstance(refusal, TooManyAttempts) else "challenge"
        metrics.add_metric(name="CardTestingRefusals", unit=MetricUnit.Count, value=1)
        with single_metric(name="CardTestingRefusals", unit=MetricUnit.Count, value=1) as metric:
            metric.add_dimension(name="reason", value=kind)
        logger.info(
            "Donation refused (card testing checks)",
            extra={
                "code": refusal.code,
                "reason": getattr(refusal, "reason", kind),
                "source_ip": client.ip,
                "donor": mask_email(str(request.email)) if request is not None else None,
            },
        )
        if mode is None or mode.under_attack:
            try:
                self.attack_mode.note_refusal()
            except Exception:
                logger.warning("Attack mode pressure not recorded", exc_info=True)
        return refusal


def _slow_down(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    wait = f"{minutes} minutes" if minutes < 120 else f"{math.ceil(minutes / 60)} hours"
    return f"{_SLOW_DOWN} Nothing was charged. Please try again in about {wait}, or contact us."


def _seconds_to_midnight() -> int:
    now = int(time.time())
    return max(1, (now // 86_400 + 1) * 86_400 - now)


def _beside(function: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
    """Run ``function`` in a worker thread, in this request's context (log keys, tracing, the deadline)."""
    return _workers.submit(contextvars.copy_context().run, function, *args, **kwargs)


def _settled(future: Future[T] | None, fallback: T, what: str) -> T:
    """The worker's result; if it failed, the fallback: the defences fail open, never the donation form."""
    if future is None:
        return fallback
    try:
        return future.result()
    except Exception:
        metrics.add_metric(name="CardTestingCheckFailures", unit=MetricUnit.Count, value=1)
        logger.warning("Card testing check failed; letting the donation through", extra={"check": what}, exc_info=True)
        return fallback


# Workers beside the request's own calls: counters, the attack mode's read, the decline counters.
_workers = ThreadPoolExecutor(max_workers=3, thread_name_prefix="screening")
