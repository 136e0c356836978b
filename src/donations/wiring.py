"""Builds the real clients from settings. Handlers cache one ``Wiring`` per cold start; tests build their own.

A function's settings class carries the sections its adapters need (donations.settings): asking a
``Wiring`` for an adapter whose section its settings lack is a programming error (TypeError).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config

from donations import snapstart
from donations.followups import FollowUpPublisher
from donations.identifiers import Identifiers
from donations.pledge_links import PledgeLinks
from donations.pledges import PledgeStore
from donations.secrets import ApiKeys
from donations.settings import (
    CardTestingSettings,
    FollowUpQueues,
    IdentifierSettings,
    MailSettings,
    PledgeLinkSettings,
    PledgeTableSettings,
    SendGridSettings,
    StatementTableSettings,
    StripeClientSettings,
    StripeSettings,
    TableSettings,
)
from donations.store import DonationStore

if TYPE_CHECKING:
    import stripe
    from sendgrid import SendGridAPIClient

    from donations.mail import ReceiptMailer
    from donations.payments import StripePayments
    from donations.ports import Mailer, Payments, Publisher, Store
    from donations.screening import Screening
    from donations.statements import StatementStore

    # The real adapters fit the core's ports (mypy checks these assignments structurally).
    _ADAPTERS: tuple[type[Store], type[Payments], type[Mailer], type[Publisher]] = (
        DonationStore,
        StripePayments,
        ReceiptMailer,
        FollowUpPublisher,
    )

# Short timeouts and the SDK's standard retry mode: a slow AWS call must not eat the function's budget.
AWS_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


Section = TypeVar("Section")
# The velocity table calls a donation's card-testing checks make at once (donations.screening, .velocity).
CARD_TESTING_CALLS_AT_ONCE = 3


class Wiring:
    def __init__(self, settings: TableSettings, session: boto3.session.Session | None = None) -> None:
        self.settings = settings
        self._session = session or boto3.session.Session()

    def _section(self, section: type[Section]) -> Section:
        if not isinstance(self.settings, section):
            raise TypeError(f"{type(self.settings).__name__} lacks {section.__name__}: this function cannot use it")
        return self.settings

    def client(self, service: str) -> Any:
        # Its connections are closed around SnapStart's snapshot and restores (donations.snapstart).
        return snapstart.holds_connections(self._session.client(service, config=AWS_CONFIG))

    def build_clients(self) -> Wiring:
        """Build now, not at first use, the AWS clients this function calls: during INIT, so that with SnapStart
        the snapshot holds them. Building them (botocore's service models and endpoint rules, the table's
        resource) was most of what the first donation did beyond a warm one: about 100 ms here, 1.7 times
        that at the charge function's CPU share (1,024 MB; docs/cold-start.md)."""
        built: list[object] = [self.store, self.api_keys]  # cached properties: built once, here
        if isinstance(self.settings, FollowUpQueues):
            built.append(self.publisher)
        if isinstance(self.settings, CardTestingSettings):
            built.append(self.screening)
        return self

    def connection_openers(self) -> dict[str, Callable[[], object]]:
        """What opens each connection this function's first request would open (donations.warmup)."""
        openers: dict[str, Callable[[], object]] = {"DynamoDB donations": self.store.open_connection}
        if isinstance(self.settings, StripeSettings):
            # The key from Parameter Store (cached), then Stripe's connection on the client charges use.
            openers["Stripe"] = lambda: self.payments.open_connection()
        if isinstance(self.settings, FollowUpQueues):
            openers["SQS"] = self.publisher.open_connection
        if isinstance(self.settings, CardTestingSettings):
            # The card-testing checks make three calls side by side (two counters, the attack mode's read),
            # each on a connection of its own: three reads of the attack mode, at once, open as many.
            for number in range(1, CARD_TESTING_CALLS_AT_ONCE + 1):
                openers[f"DynamoDB velocity {number}"] = lambda: self.screening.attack_mode.current()
        return openers

    @cached_property
    def dynamodb(self) -> Any:
        return self.client("dynamodb")

    @cached_property
    def sqs(self) -> Any:
        return self.client("sqs")

    @cached_property
    def table(self) -> Any:
        """The Donations table (a boto3 Table resource)."""
        resource = self._session.resource("dynamodb", config=AWS_CONFIG)
        snapstart.holds_connections(resource.meta.client)
        return resource.Table(self.settings.donations_table)

    @cached_property
    def store(self) -> DonationStore:
        # Only the charge writes new donations, the only use of the donor key (and of its settings).
        return DonationStore(self.table, lambda email: self.identifiers.donor_key(email))

    @cached_property
    def identifiers(self) -> Identifiers:
        settings = self._section(IdentifierSettings)
        return Identifiers(lambda: self.api_keys.get(settings.identifier_secret_name))

    @cached_property
    def pledges(self) -> PledgeStore:
        """The Pledges table (donations.pledges), for the functions whose settings name it."""
        resource = self._session.resource("dynamodb", config=AWS_CONFIG)
        snapstart.holds_connections(resource.meta.client)
        return PledgeStore(resource.Table(self._section(PledgeTableSettings).pledges_table))

    @cached_property
    def pledge_links(self) -> PledgeLinks:
        settings = self._section(PledgeLinkSettings)
        return PledgeLinks(lambda: self.api_keys.get(settings.pledge_link_secret_name), settings.manage_page_url)

    @cached_property
    def statements(self) -> StatementStore:
        """The donors' donations and the statement markers (donations.statements): send-receipt, schedule-renewals."""
        from donations.statements import StatementStore

        resource = self._session.resource("dynamodb", config=AWS_CONFIG)
        snapstart.holds_connections(resource.meta.client)
        return StatementStore(self.table, resource.Table(self._section(StatementTableSettings).statements_table))

    @cached_property
    def publisher(self) -> FollowUpPublisher:
        return FollowUpPublisher(self.sqs, self._section(FollowUpQueues))

    @cached_property
    def api_keys(self) -> ApiKeys:
        return snapstart.caches_secrets(ApiKeys(self.client("ssm")))

    # Every function shares this module but talks to one provider at most, so the adapters are imported
    # where they are used. Each function loads its own adapter and SDK during INIT (donations.charge,
    # .reconcile and the tokenize handler import donations.payments; the send-receipt handler imports
    # SendGrid's SDK), so here they are already loaded.

    @property
    def payments(self) -> StripePayments:
        from donations.payments import StripePayments

        # The key is re-read (through the cache) on every call so a rotated secret takes effect.
        settings = self._section(StripeSettings)
        return StripePayments(_stripe_client(settings, self.api_keys.get(settings.stripe_secret_name)))

    @cached_property
    def screening(self) -> Screening:
        """The card-testing checks (donations.screening): kept for the container's life, as their
        attack-mode cache and refusal counts are."""
        from donations.attack_mode import AttackModeRecord, ModeSettings
        from donations.challenge import ExpectedWidget, TurnstileVerifier
        from donations.screening import Screening
        from donations.velocity import VelocityCounters, VelocityLimits

        settings = self._section(CardTestingSettings)
        limits = VelocityLimits(
            ip_attempts_per_hour=settings.card_testing_ip_attempts_per_hour,
            ip_declines_per_hour=settings.card_testing_ip_declines_per_hour,
            email_attempts_per_day=settings.card_testing_email_attempts_per_day,
            email_declines_per_day=settings.card_testing_email_declines_per_day,
            card_declines_per_day=settings.card_testing_card_declines_per_day,
        )
        mode = ModeSettings(
            breaker_declines=settings.card_testing_breaker_declines,
            breaker_decline_rate=settings.card_testing_breaker_decline_rate,
            window_seconds=settings.card_testing_breaker_window_seconds,
            quiet_seconds=settings.card_testing_quiet_seconds,
            pressure_per_minute=settings.card_testing_pressure_per_minute,
        )
        return Screening(
            velocity=VelocityCounters(self.dynamodb, settings.velocity_table, limits, self.identifiers),
            attack_mode=AttackModeRecord(self.dynamodb, settings.velocity_table, mode),
            challenges=snapstart.holds_connections(
                TurnstileVerifier(
                    lambda: self.api_keys.get(settings.turnstile_secret_name),
                    settings.turnstile_verify_url,
                    expected=ExpectedWidget(settings.form_hostnames, settings.turnstile_action),
                )
            ),
            challenge={
                "provider": "turnstile",
                "site_key": settings.turnstile_sitekey,
                "script": settings.turnstile_script_url,
            },
            card_declines_per_day=settings.card_testing_card_declines_per_day,
            mode_cache_seconds=settings.card_testing_mode_cache_seconds,
        )

    @property
    def mailer(self) -> ReceiptMailer:
        from donations.mail import ReceiptMailer

        settings = self._section(SendGridSettings)
        key = self.api_keys.get(settings.sendgrid_secret_name)
        # Receipts of monthly gifts carry their pledge's manage link, where the function signs links.
        links = self.pledge_links.manage_url if isinstance(self.settings, PledgeLinkSettings) else None
        return ReceiptMailer(_sendgrid_client(settings, key), settings, links)


@lru_cache(maxsize=4)
def _stripe_client(settings: StripeClientSettings, api_key: str) -> stripe.StripeClient:
    from donations.payments import build_stripe_client

    return build_stripe_client(settings, api_key)


@lru_cache(maxsize=4)
def _sendgrid_client(settings: MailSettings, api_key: str) -> SendGridAPIClient:
    from donations.mail import build_sendgrid_client

    return build_sendgrid_client(settings, api_key)
