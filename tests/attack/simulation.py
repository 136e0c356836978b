"""A card-testing attack on the local stack, mixed with honest donors; what got through, and how fast it was seen.
And a campaign day (:class:`CampaignRun`): many honest donors at once, with an honest decline rate, some
sharing addresses, which the defences must let through without a CAPTCHA or a 429. Each campaign donor pays
with a card of their own, as people do: Stripe's test mode has seven declining cards, and a fingerprint
"uniquely identifies this particular card number" (the SDK's PaymentMethod.Card.fingerprint), so 240
donors declined on those seven would be seven cards declined some 34 times each, which the per-card limit
rightly refuses. The Stripe emulator issues each donor a number of their own that behaves as a published
test card (emulator-only: simulator.emulators.stripe.cards.issued_card), and the donor's browser makes a
PaymentMethod of it as Stripe.js does. The attack keeps Stripe's test cards: testers do reuse them.

The attack: ``attempts`` POST /donations from ``addresses`` client addresses (the local front's
X-Local-Source-Ip header), each with a throwaway email, small amounts, ``bad_share`` of them
Stripe's declining test cards (docs.stripe.com/testing, "Declined payments"), the rest cards that
succeed. Bots do not solve CAPTCHAs: asked for one, a bot moves on (a tenth of them send a forged
token first). Interleaved: ``honest`` donors with good cards, some three to an address (families),
some resubmitting their donation with the same Idempotency-Key (a lost answer). An honest donor
asked for the CAPTCHA solves the widget (the Turnstile emulator's token) and submits again.

Measured: attack attempts that reached Stripe (PaymentIntents Stripe's emulator was asked to
create, less the honest donors'), honest donors not charged in the end, seconds from the attack's
first request to the attack mode opening and to the card-testing-suspected alarm's ALARM
notification (the local stack evaluates the template's alarm on its 60 s period, in real time),
and from the attack's last request to the attack mode closing by itself.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import requests

from simulator.emulators.stripe.cards import issuable_number
from tests.support.keys import a_key
from tests.support.payment_element import PUBLISHABLE_KEY_HEADERS, card_details

DECLINING_TEST_CARDS = (
    "pm_card_chargeDeclined",
    "pm_card_chargeDeclinedInsufficientFunds",
    "pm_card_chargeDeclinedLostCard",
    "pm_card_chargeDeclinedStolenCard",
    "pm_card_chargeDeclinedExpiredCard",
    "pm_card_chargeDeclinedIncorrectCvc",
    "pm_card_chargeDeclinedProcessingError",
)
GOOD_TEST_CARDS = ("pm_card_visa", "pm_card_mastercard", "pm_card_amex")
ALARM = "card-testing-suspected"


@dataclass(frozen=True)
class AttackConfig:
    attempts: int = 5000
    addresses: int = 300
    bad_share: float = 0.95
    honest: int = 200
    families: int = 10
    """Honest addresses shared by three donors each."""
    resubmitting: int = 20
    """Honest donors who send their donation a second time with the same Idempotency-Key."""
    workers: int = 8
    seed: int = 16
    quiet_seconds: int = 20
    """The attack mode's quiet period for this run (template.yaml's: 1800 s); nothing else is changed."""
    alarm_tick_seconds: float = 1.0
    wait_seconds: float = 180.0
    """How long to wait for the alarm and for the mode to close after the attack."""


class OwnCard(NamedTuple):
    """A donor's own card: its number (issued by the Stripe emulator) and the published test card it behaves as."""

    number: str
    like: str


@dataclass(frozen=True)
class Attempt:
    kind: str  # attack, honest
    key: str
    ip: str
    body: dict[str, Any]
    resubmit: bool = False
    forged_token: bool = False
    card: OwnCard | None = None
    """Typed into the form: Stripe.js makes it a PaymentMethod, which the body then names."""


@dataclass
class AttackReport:
    config: AttackConfig
    answers: dict[str, Counter[int]] = field(default_factory=lambda: {"attack": Counter(), "honest": Counter()})
    attack_reached_stripe: int = 0
    attack_reached_by_answer: int = 0
    honest_charged: int = 0
    honest_refused: list[str] = field(default_factory=list)
    honest_challenged: int = 0
    card_lookups: int = 0
    seconds_to_attack_mode: float | None = None
    seconds_to_alarm: float | None = None
    seconds_to_close: float | None = None
    attack_seconds: float = 0.0
    busiest_address_per_minute: int = 0

    @property
    def reached_share(self) -> float:
        return self.attack_reached_stripe / max(1, self.config.attempts)

    @property
    def met(self) -> bool:
        alarm = self.seconds_to_alarm is not None and self.seconds_to_alarm <= 120
        return self.reached_share < 0.05 and not self.honest_refused and alarm and self.seconds_to_close is not None

    def lines(self) -> list[str]:
        c = self.config

        def fmt(value: float | None) -> str:
            return "never" if value is None else f"{value:.1f} s"

        return [
            f"attack: {c.attempts} attempts from {c.addresses} addresses, {c.bad_share:.0%} declining test cards, "
            f"over {self.attack_seconds:.0f} s; honest donors: {c.honest} ({c.families} families of three, "
            f"{c.resubmitting} resubmitting)",
            f"attack answers: {dict(sorted(self.answers['attack'].items()))}",
            f"honest answers: {dict(sorted(self.answers['honest'].items()))}",
            f"attack attempts that reached Stripe: {self.attack_reached_stripe} ({self.reached_share:.2%}; "
            f"by the answers: {self.attack_reached_by_answer})",
            f"card lookups before a charge (clients with a decline): {self.card_lookups}",
            f"honest donors charged: {self.honest_charged}/{c.honest}; asked for the CAPTCHA: "
            f"{self.honest_challenged}; refused: {len(self.honest_refused)}",
            f"attack mode opened after {fmt(self.seconds_to_attack_mode)}; alarm {ALARM} after "
            f"{fmt(self.seconds_to_alarm)}; attack mode closed {fmt(self.seconds_to_close)} after the attack "
            f"(quiet period {c.quiet_seconds} s)",
            f"busiest attack address: {self.busiest_address_per_minute} POST /donations in a minute "
            "(WAF's per-IP flood guard, not run locally: 1,000 in 5 min; the charge's own limits judge below it)",
        ]

    def summary(self) -> str:
        def seconds(value: float | None) -> str:
            return "never" if value is None else f"{value:.1f} s"

        return (
            f"attack: reached_stripe={self.attack_reached_stripe}/{self.config.attempts} "
            f"({self.reached_share:.2%} < 5%) honest_refused={len(self.honest_refused)} "
            f"alarm={seconds(self.seconds_to_alarm)} (<= 120 s) closed_after={seconds(self.seconds_to_close)} "
            f"{'PASS' if self.met else 'MISS'}"
        )


def schedule(config: AttackConfig) -> list[Attempt]:
    """The attack attempts, with the honest donors spread among them (the attack comes first)."""
    rng = random.Random(config.seed)
    attackers = [f"10.66.{n // 250}.{n % 250 + 1}" for n in range(config.addresses)]
    attack = [
        Attempt(
            "attack",
            a_key(f"attack-{config.seed}-{n}"),
            rng.choice(attackers),
            {
                "amount": rng.randrange(100, 600),
                "currency": "usd",
                "email": f"x{rng.randrange(10**9)}@mailinator.example",
                "name": "Test",
                "payment_method": rng.choice(
                    DECLINING_TEST_CARDS if rng.random() < config.bad_share else GOOD_TEST_CARDS
                ),
            },
            forged_token=rng.random() < 0.1,
        )
        for n in range(config.attempts)
    ]
    honest = _honest(config, rng)
    slots = sorted(rng.sample(range(1, config.attempts + 1), len(honest)))
    merged: list[Attempt] = []
    donors = iter(honest)
    previous = 0
    for slot in slots:
        merged += attack[previous:slot]
        merged.append(next(donors))
        previous = slot
    return merged + attack[previous:]


def _honest(config: AttackConfig, rng: random.Random) -> list[Attempt]:
    donors = []
    resubmitters = set(rng.sample(range(config.honest), min(config.resubmitting, config.honest)))
    for n in range(config.honest):
        family = n // 3 if n < config.families * 3 else None
        ip = f"198.51.100.{family + 1}" if family is not None else f"203.0.{113 + n // 250}.{n % 250 + 1}"
        body = {
            "amount": rng.choice((1000, 2500, 5000, 10000)),
            "currency": "usd",
            "email": f"donor{n}@example.org",
            "name": f"Donor {n}",
            "payment_method": rng.choice(GOOD_TEST_CARDS),
            "save_card": rng.random() < 0.3,
        }
        donors.append(Attempt("honest", a_key(f"honest-{config.seed}-{n}"), ip, body, resubmit=n in resubmitters))
    return donors


class AttackRun:
    """One run against a started local stack (simulator.local.stack.LocalStack)."""

    def __init__(self, stack: Any, config: AttackConfig) -> None:
        self.stack = stack
        self.config = config
        self.api = f"http://127.0.0.1:{stack.config.api_port}/donations"
        self.report = AttackReport(config)
        self._lock = threading.Lock()
        self._started = 0.0
        self._local = threading.local()
        self._sent: list[tuple[str, float]] = []  # (attack address, when)

    def run(self) -> AttackReport:
        # PaymentIntents created, not create requests: the SDK retries a create whose answer was lost (a
        # loaded machine's timeout) with the same Idempotency-Key, which Stripe answers without a second one
        # (docs.stripe.com/api/idempotent_requests); counted as requests, one honest donor counted twice.
        before_charges = self.stack.stripe.payment_intents_created
        plan = schedule(self.config)
        self._started = time.monotonic()
        watcher = threading.Thread(target=self._watch_alarm, name="alarm-watch", daemon=True)
        watcher.start()
        with ThreadPoolExecutor(self.config.workers, thread_name_prefix="client") as clients:
            list(clients.map(self._send, plan))
        ended = time.monotonic()
        self.report.attack_seconds = ended - self._started
        self._wait_for_close(ended)
        watcher.join(timeout=max(0.0, self._started + self.config.wait_seconds - time.monotonic()) + 5)
        charges = self.stack.stripe.payment_intents_created - before_charges
        self.report.attack_reached_stripe = charges - self.report.honest_charged
        self.report.card_lookups = self.stack.stripe.requests.get("GET /v1/payment_methods/{id}", 0)
        self.report.busiest_address_per_minute = _busiest_per_minute(self._sent)
        return self.report

    # -- clients -------------------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session  # type: ignore[no-any-return]

    def _post(self, attempt: Attempt, token: str | None = None) -> requests.Response:
        headers = {"Idempotency-Key": attempt.key, "X-Local-Source-Ip": attempt.ip}
        if token:
            headers["Challenge-Token"] = token
        return self._session().post(self.api, json=attempt.body, headers=headers, timeout=60)

    def _send(self, attempt: Attempt) -> None:
        if attempt.kind == "attack":
            self._attack(attempt)
        else:
            self._donate(attempt)

    def _attack(self, attempt: Attempt) -> None:
        with self._lock:
            self._sent.append((attempt.ip, time.monotonic()))
        answer = self._post(attempt)
        status = answer.status_code
        if status == 403 and attempt.forged_token:
            status = self._post(attempt, token="0.forged-by-a-bot").status_code
        with self._lock:
            self.report.answers["attack"][status] += 1
            if status in (201, 202, 402):
                self.report.attack_reached_by_answer += 1
            if status == 403 and self.report.seconds_to_attack_mode is None:
                self.report.seconds_to_attack_mode = time.monotonic() - self._started

    def _donate(self, attempt: Attempt) -> None:
        """A person: solves the CAPTCHA when asked, waits out a Retry-After of a few seconds, gives up on a refusal."""
        token = None
        status = 0
        for _ in range(5):
            answer = self._post(attempt, token)
            status = answer.status_code
            if status == 403 and answer.json()["error"]["code"] in ("challenge_required", "challenge_failed"):
                with self._lock:
                    self.report.honest_challenged += 1
                token = self.stack.turnstile.issue_token(
                    self.stack.pipeline.providers.turnstile_sitekey, action="donate"
                )
                continue
            if status in (409, 503) and int(answer.headers.get("Retry-After", "1")) <= 5:
                time.sleep(int(answer.headers.get("Retry-After", "1")))  # what the form does: wait, then retry
                continue
            break
        if status == 201 and attempt.resubmit:
            status = self._post(attempt, token).status_code  # the same donation again: answered, not charged twice
        with self._lock:
            self.report.answers["honest"][status] += 1
            if status == 201:
                self.report.honest_charged += 1
            else:
                self.report.honest_refused.append(f"{attempt.key}: {status}")

    # -- watching --------------------------------------------------------------------------------------

    def _watch_alarm(self) -> None:
        deadline = self._started + self.config.wait_seconds
        while time.monotonic() < deadline:
            for note in list(self.stack.notifications):
                message = note.get("message") or {}
                if str(message.get("AlarmName", "")).endswith(ALARM) and message.get("NewStateValue") == "ALARM":
                    self.report.seconds_to_alarm = time.monotonic() - self._started
                    return
            time.sleep(0.2)

    def _wait_for_close(self, ended: float) -> None:
        from donations_ops.card_testing import card_testing_status
        from donations_ops.stack_resources import discover

        clients = self.stack.pipeline.clients
        stack = discover(clients, self.stack.pipeline.stack_name)
        deadline = ended + self.config.wait_seconds
        while time.monotonic() < deadline:
            if not card_testing_status(clients, stack, top=1).mode.under_attack:
                self.report.seconds_to_close = time.monotonic() - ended
                return
            time.sleep(0.5)


def _busiest_per_minute(sent: list[tuple[str, float]]) -> int:
    """The most requests one attack address sent within any 60 s."""
    times: dict[str, list[float]] = {}
    for ip, at in sent:
        times.setdefault(ip, []).append(at)
    busiest = 0
    for stamps in times.values():
        stamps.sort()
        first = 0
        for last, at in enumerate(stamps):
            while at - stamps[first] >= 60:
                first += 1
            busiest = max(busiest, last - first + 1)
    return busiest


# -- a campaign day ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignConfig:
    """Honest donors only, as many as a big appeal brings in ``minutes`` (sent as fast as the stack takes
    them: a shorter run puts more declines in the attack mode's window, never fewer)."""

    donors: int = 3000
    decline_share: float = 0.08
    """Donors whose card is declined (an honest 5-10 %), Stripe's declining test cards."""
    households: int = 60
    """Addresses shared by four donors each (a home's or an office's NAT)."""
    venues: int = 5
    """Addresses shared by ten donors each (a venue's Wi-Fi, carrier-grade NAT)."""
    minutes: float = 5.0
    workers: int = 8
    seed: int = 22
    waf_limit: int = 1000
    """POSTs one address may send in 5 minutes before WAF answers 429 (template.yaml WafRateLimit)."""


@dataclass
class CampaignReport:
    config: CampaignConfig
    answers: Counter[int] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    declined_cards: int = 0
    seconds: float = 0.0
    attack_mode_on: bool = False
    busiest_address: int = 0
    cards_charged: int = 0
    """Distinct card fingerprints among Stripe's charges (succeeded and declined)."""
    most_declines_of_a_card: int = 0

    @property
    def challenged(self) -> int:
        return self.codes["challenge_required"] + self.codes["challenge_failed"]

    @property
    def throttled(self) -> int:
        return self.answers[429]

    @property
    def met(self) -> bool:
        expected = Counter({201: self.config.donors - self.declined_cards, 402: self.declined_cards})
        return (
            not self.attack_mode_on
            and self.challenged == 0
            and self.throttled == 0
            and self.answers == expected
            and self.busiest_address <= self.config.waf_limit
        )

    def lines(self) -> list[str]:
        c = self.config
        return [
            f"campaign: {c.donors} honest donors in {self.seconds:.0f} s (the day's appeal: {c.minutes:.0f} min), "
            f"{self.declined_cards} with a declined card ({c.decline_share:.0%}); {c.households} addresses shared "
            f"by 4, {c.venues} by 10",
            f"campaign answers: {dict(sorted(self.answers.items()))}",
            f"asked for the CAPTCHA: {self.challenged}; answered 429: {self.throttled}; attack mode on after the "
            f"campaign: {'yes' if self.attack_mode_on else 'no'}",
            f"cards Stripe charged: {self.cards_charged} (each donor's own); most declines of one card: "
            f"{self.most_declines_of_a_card}",
            f"busiest address: {self.busiest_address} POST /donations "
            f"(WAF's per-IP flood guard: {c.waf_limit} in 5 min)",
        ]

    def summary(self) -> str:
        return (
            f"campaign: donors={self.config.donors} challenged={self.challenged} throttled={self.throttled} "
            f"attack_mode={'on' if self.attack_mode_on else 'off'} busiest_address={self.busiest_address} "
            f"(<= {self.config.waf_limit}) {'PASS' if self.met else 'MISS'}"
        )


def campaign_schedule(config: CampaignConfig) -> list[Attempt]:
    """The donors, in the order they donate; the declining cards spread at random among them."""
    rng = random.Random(config.seed)
    shared = [f"192.0.2.{n + 1}" for n in range(config.households) for _ in range(4)]
    shared += [f"198.18.0.{n + 1}" for n in range(config.venues) for _ in range(10)]
    alone = [f"100.{64 + n // 62500}.{n // 250 % 250}.{n % 250 + 1}" for n in range(config.donors)]
    addresses = (shared + alone)[: config.donors]
    rng.shuffle(addresses)
    declined = set(rng.sample(range(config.donors), round(config.decline_share * config.donors)))
    plan = []
    for n, ip in enumerate(addresses):
        like = rng.choice(DECLINING_TEST_CARDS if n in declined else GOOD_TEST_CARDS)
        body = {
            "amount": rng.choice((1000, 2500, 5000, 10000)),
            "currency": "usd",
            "email": f"supporter{n}@example.org",
            "name": f"Supporter {n}",
            "save_card": False,
        }
        card = OwnCard(issuable_number(like, n), like)
        plan.append(Attempt("honest", a_key(f"campaign-{config.seed}-{n}"), ip, body, card=card))
    return plan


class CampaignRun:
    """Sends the campaign's donors to a started local stack and reads what they were answered."""

    def __init__(self, stack: Any, config: CampaignConfig) -> None:
        self.stack = stack
        self.config = config
        self.api = f"http://127.0.0.1:{stack.config.api_port}/donations"
        self.report = CampaignReport(config)
        self._lock = threading.Lock()
        self._local = threading.local()

    def run(self) -> CampaignReport:
        from donations_ops.card_testing import card_testing_status
        from donations_ops.stack_resources import discover

        plan = campaign_schedule(self.config)
        cards = [attempt.card for attempt in plan if attempt.card is not None]
        self.stack.stripe.issue_cards({card.number: card.like for card in cards})
        self.report.declined_cards = sum(card.like in DECLINING_TEST_CARDS for card in cards)
        self.report.busiest_address = max(Counter(a.ip for a in plan).values())
        started = time.monotonic()
        with ThreadPoolExecutor(self.config.workers, thread_name_prefix="donor") as donors:
            list(donors.map(self._donate, plan))
        self.report.seconds = time.monotonic() - started
        clients = self.stack.pipeline.clients
        status = card_testing_status(clients, discover(clients, self.stack.pipeline.stack_name), top=1)
        self.report.attack_mode_on = status.mode.under_attack
        self._count_cards()
        return self.report

    def _donate(self, attempt: Attempt) -> None:
        """A donor who submits once: no CAPTCHA solved, no retry (either would hide a refusal)."""
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        session: requests.Session = self._local.session
        assert attempt.card is not None
        # The donor's browser: Stripe.js posts the typed card to Stripe with the publishable key.
        typed = card_details(attempt.card.number, **{"billing_details[name]": attempt.body["name"]})
        made = session.post(
            f"{self.stack.stripe.url}/v1/payment_methods", data=typed, headers=PUBLISHABLE_KEY_HEADERS, timeout=60
        )
        made.raise_for_status()
        body = {**attempt.body, "payment_method": made.json()["id"]}
        headers = {"Idempotency-Key": attempt.key, "X-Local-Source-Ip": attempt.ip}
        answer = session.post(self.api, json=body, headers=headers, timeout=60)
        code = answer.json().get("error", {}).get("code") if answer.status_code >= 400 else None
        with self._lock:
            self.report.answers[answer.status_code] += 1
            if code:
                self.report.codes[str(code)] += 1

    def _count_cards(self) -> None:
        """What Stripe saw: the cards of its charges, and the declines of each."""
        charges = [
            (charge["payment_method_details"]["card"]["fingerprint"], charge["status"])
            for charge in self.stack.stripe.state()["charges"]
        ]
        declines = Counter(fingerprint for fingerprint, status in charges if status == "failed")
        self.report.cards_charged = len({fingerprint for fingerprint, _ in charges})
        self.report.most_declines_of_a_card = max(declines.values(), default=0)
