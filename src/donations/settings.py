"""Typed settings, read from the environment once per cold start, at INIT.

Each function declares the variables it needs (:class:`ChargeSettings`, :class:`TokenizeSettings`,
:class:`SendReceiptSettings`, :class:`ReconcilerSettings`, :class:`StripeWebhookSettings`), built
from the sections below. Field names are the lower-cased variable names template.yaml sets. What
names this deployment's resources (tables, queues, secrets, the receipt's sender) is required: a
function missing one fails at import with a :class:`SettingsError` naming every such variable,
not at its first SendMessage. Tuning knobs (timeouts, backoffs, the reconciler's windows) have
defaults. Secrets are never here: only the *names* of the secrets, resolved at call time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from donations.models import RequestLimits

Name = Annotated[str, StringConstraints(min_length=1)]
"""A resource's name, URL or ARN: required and not empty."""


def _comma_set(value: object) -> object:
    if isinstance(value, str):
        return frozenset(part.strip().lower() for part in value.split(",") if part.strip())
    return value


CommaSet = Annotated[frozenset[str], BeforeValidator(_comma_set)]
"""Lower-cased values from a comma-separated variable (currencies, hostnames)."""


class SettingsError(ValueError):
    """The environment does not give a function what it needs; names every variable at fault."""

    def __init__(self, settings: type[BaseModel], error: ValidationError) -> None:
        self.missing = sorted(str(e["loc"][0]).upper() for e in error.errors() if e["type"] == "missing")
        invalid = [
            f"{str(e['loc'][0]).upper() if e['loc'] else '(settings)'}: {e['msg']}"
            for e in error.errors()
            if e["type"] != "missing"
        ]
        parts = [f"missing environment variable(s) {', '.join(self.missing)}"] if self.missing else []
        parts += [f"invalid {problem}" for problem in invalid]
        super().__init__(f"{settings.__name__}: {'; '.join(parts)}")


class EnvSettings(BaseModel):
    # defer_build: a class's validator is built when it first reads an environment, so a function's
    # INIT builds its own settings' and not the other functions' (this module declares all of them).
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """The settings from ``environ`` (default: this process's environment); SettingsError if wanting."""
        environ = os.environ if environ is None else environ
        names = cls.model_fields.keys()
        try:
            return cls.model_validate({name: environ[name.upper()] for name in names if name.upper() in environ})
        except ValidationError as error:
            raise SettingsError(cls, error) from None


# -- sections ------------------------------------------------------------------------------------


class TableSettings(EnvSettings):
    stage: str = "dev"
    donations_table: Name


class ProviderCallSettings(EnvSettings):
    provider_timeout_seconds: float = Field(default=8.0, gt=0)
    # Provider calls end this long before the function's Timeout (donations.deadline): room for the
    # writes and the answer that follow them, and for one SDK backoff sleep (<= 1 s with 2 retries).
    deadline_reserve_seconds: float = Field(default=3.0, ge=0)


class StripeClientSettings(ProviderCallSettings):
    # Empty means the real Stripe; the local stack and tests point it at the emulator.
    stripe_api_base: str = ""
    stripe_max_network_retries: int = Field(default=2, ge=0, le=5)


class StripeSettings(StripeClientSettings):
    """A function that calls Stripe, with a restricted key of its own (donations.stripe_keys). Each
    function's settings name the parameter holding it in a variable of its own (STRIPE_CHARGE_SECRET_NAME...),
    not one shared name: the local stack runs every function in one process, their environments merged."""

    @property
    def stripe_secret_name(self) -> str:
        raise NotImplementedError  # each function's settings say which of its variables names the key


class ChargeStripeKey(StripeSettings):
    stripe_charge_secret_name: Name

    @property
    def stripe_secret_name(self) -> str:
        return self.stripe_charge_secret_name


class TokenizeStripeKey(StripeSettings):
    stripe_tokenize_secret_name: Name

    @property
    def stripe_secret_name(self) -> str:
        return self.stripe_tokenize_secret_name


class ReconcilerStripeKey(StripeSettings):
    stripe_reconciler_secret_name: Name

    @property
    def stripe_secret_name(self) -> str:
        return self.stripe_reconciler_secret_name


class RenewStripeKey(StripeSettings):
    stripe_renew_secret_name: Name

    @property
    def stripe_secret_name(self) -> str:
        return self.stripe_renew_secret_name


class MailSettings(ProviderCallSettings):
    """What the receipt says and who sends it, and where SendGrid is (empty: the real one)."""

    sendgrid_api_host: str = ""
    receipt_template_id: Name
    receipt_from_email: Name
    org_name: Name
    org_address: str  # required, may be empty
    # The rest of the receipt (template.yaml's receipt parameters; README "Receipts"). An empty tax id or
    # statement is left out of the receipt. Locale (Babel/CLDR) and time zone (IANA) shape the amount and date.
    org_tax_id: str = ""
    goods_or_services_statement: str  # required, may be empty
    support_email: Name
    receipt_locale: Name = "en_US"
    receipt_time_zone: Name = "UTC"
    # The year-end statement's dynamic template (donations.statements; empty: statements are parked, not sent).
    statement_template_id: str = ""


class SendGridSettings(MailSettings):
    sendgrid_secret_name: Name


class IdentifierSettings(EnvSettings):
    """The secret that keys donation ids, donor keys and velocity keys (donations.identifiers)."""

    identifier_secret_name: Name
    # Records made before ids were keyed are found by their old id too, so their retries resume them
    # (one GetItem more per new donation). Off once no such donation can still be retried
    # (docs/security-application.md, "Donation ids").
    legacy_donation_ids: bool = True


class PledgeTableSettings(EnvSettings):
    pledges_table: Name


class PledgeLinkSettings(EnvSettings):
    """Signed links to manage a pledge (donations.pledge_links): the parameter holding the signing keys,
    and the manage page the links open (template parameter ManagePageUrl)."""

    pledge_link_secret_name: Name
    manage_page_url: Name


class FollowUpQueues(EnvSettings):
    tokenize_queue_url: Name
    receipt_queue_url: Name


class ApiSettings(EnvSettings):
    cors_origin: Name
    max_body_bytes: int = 8_192


class CardTestingSettings(EnvSettings):
    """Card-testing defences of the charge (donations.screening; README, "Card testing").

    Velocity limits count per client address (API Gateway's sourceIp, per clock hour), per donor
    email and per card fingerprint (per UTC day). *Attempts* limits are soft: past them a CAPTCHA is
    asked for. *Declines* limits are hard: 429 until the bucket ends. The attack mode opens when
    ``card_testing_breaker_declines`` declines happen within the window and are at least
    ``card_testing_breaker_decline_rate`` of its attempts, and closes after
    ``card_testing_quiet_seconds`` without pressure (declines, or refused attempts at or above
    ``card_testing_pressure_per_minute``).
    """

    velocity_table: Name
    turnstile_secret_name: Name
    turnstile_sitekey: Name
    # Empty means Cloudflare's siteverify; the local stack and tests point it at the emulator.
    turnstile_verify_url: str = ""
    turnstile_script_url: str = "https://challenges.cloudflare.com/turnstile/v0/api.js?render=explicit"
    # The hosts serving the donation form (template parameter FormHostnames, comma-separated): a token
    # solved on any other page is refused. The action the form's widget is rendered with (donate.js).
    form_hostnames: Annotated[CommaSet, Field(min_length=1)]
    turnstile_action: str = "donate"
    card_testing_ip_attempts_per_hour: int = Field(default=20, ge=1)
    card_testing_ip_declines_per_hour: int = Field(default=10, ge=1)
    card_testing_email_attempts_per_day: int = Field(default=10, ge=1)
    card_testing_email_declines_per_day: int = Field(default=3, ge=1)
    card_testing_card_declines_per_day: int = Field(default=3, ge=1)
    card_testing_breaker_declines: int = Field(default=20, ge=1)
    card_testing_breaker_decline_rate: float = Field(default=0.3, gt=0, le=1)
    card_testing_breaker_window_seconds: int = Field(default=300, ge=60, le=3600)
    card_testing_quiet_seconds: int = Field(default=1800, ge=1)
    card_testing_pressure_per_minute: int = Field(default=10, ge=1)
    # How long a charge invocation trusts the attack mode it read (one GetItem per container at most this often).
    card_testing_mode_cache_seconds: float = Field(default=5.0, ge=0)


class ConsumerSettings(TableSettings, ProviderCallSettings):
    # Mirrors the queue's RedrivePolicy so a consumer knows when a receive is the last one.
    max_receive_count: int = Field(ge=1)
    backoff_base_seconds: int = Field(default=10, ge=0)
    backoff_cap_seconds: int = Field(default=600, ge=0, le=43_200)


# -- each function's -------------------------------------------------------------------------------


class ChargeSettings(
    ApiSettings,
    TableSettings,
    ChargeStripeKey,
    FollowUpQueues,
    CardTestingSettings,
    IdentifierSettings,
    PledgeTableSettings,
    PledgeLinkSettings,
):
    allowed_currencies: CommaSet
    min_amount: int = Field(ge=1)
    max_amount: int = Field(ge=1)

    @property
    def request_limits(self) -> RequestLimits:
        return RequestLimits(self.allowed_currencies, self.min_amount, self.max_amount)


class TokenizeSettings(ConsumerSettings, TokenizeStripeKey, PledgeTableSettings):
    tokenize_dlq_url: Name


class StatementTableSettings(EnvSettings):
    """The Statements table: one marker per donor and year (donations.statements)."""

    statements_table: Name


class SendReceiptSettings(
    ConsumerSettings, SendGridSettings, StatementTableSettings, PledgeTableSettings, PledgeLinkSettings
):
    receipt_dlq_url: Name
    receipt_claim_seconds: int = Field(default=60, ge=1)


class ReconcilerSettings(TableSettings, ReconcilerStripeKey, FollowUpQueues):
    # A donation is left alone until it has not changed for the grace period (longer than the
    # charge function's timeout and Stripe's ~1 min search lag), and is only reported, not
    # retried, once older than the max age (donations.reconcile).
    reconcile_grace_seconds: int = Field(default=120, ge=0)
    reconcile_max_age_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    # Stripe keeps idempotency keys 24 h: until then a donor's retry with the same key may still charge
    # (or replay) the pending donation, so silence from Stripe only means "never charged" after it.
    stripe_idempotency_window_seconds: int = Field(default=24 * 3600, ge=0)
    # How long a donor may take to finish 3-D Secure before the PaymentIntent is canceled.
    reconcile_action_timeout_seconds: int = Field(default=24 * 3600, ge=0)
    reconcile_batch_size: int = Field(default=100, ge=1, le=1000)
    # The schedule's rate: each run's sweep reads the succeeded payments of one interval (donations.reconcile).
    reconcile_interval_seconds: int = Field(default=300, ge=60)

    @model_validator(mode="after")
    def _reconcile_windows_fit(self) -> Self:
        # A donation must get its decision before it becomes too old to be retried.
        windows = (self.stripe_idempotency_window_seconds, self.reconcile_action_timeout_seconds)
        if not self.reconcile_grace_seconds <= min(windows) <= max(windows) < self.reconcile_max_age_seconds:
            raise ValueError(
                "RECONCILE_GRACE_SECONDS must not exceed STRIPE_IDEMPOTENCY_WINDOW_SECONDS or "
                "RECONCILE_ACTION_TIMEOUT_SECONDS, and both must be below RECONCILE_MAX_AGE_SECONDS"
            )
        return self


class StripeWebhookSettings(ApiSettings, TableSettings, FollowUpQueues, PledgeTableSettings):
    idempotency_table: Name
    stripe_webhook_secret_name: Name
    # Larger bodies are refused (413) before the signature check. Stripe's events are small: the largest
    # part of ours is the object's metadata, at most 50 keys of 40 characters with values of 500
    # (docs.stripe.com/metadata), about 110 KB even if every character took 4 bytes.
    webhook_max_body_bytes: int = Field(default=262_144, ge=65_536)


class ScheduleRenewalsSettings(TableSettings, PledgeTableSettings, StatementTableSettings):
    renewal_queue_url: Name
    # The January run of the year-end statements rides this function's schedule (donations.statement_run).
    receipt_queue_url: Name
    receipt_time_zone: Name = "UTC"
    statement_template_id: str = ""
    """Empty: no template installed, so the scheduled run queues nothing (they would only be parked)."""
    statements_run_reserve_seconds: float = Field(default=10.0, ge=0)
    """The run stops queueing this long before the function's timeout, leaving the rest to the next run."""


class RenewSettings(ConsumerSettings, RenewStripeKey, FollowUpQueues, PledgeTableSettings):
    renewal_dlq_url: Name


class NotifierSettings(TableSettings):
    operator_topic_arn: Name
    alarm_name_prefix: Name
    """``<stack>-``: an alarm's name without it names its runbook section."""
    tokenize_queue_url: Name
    receipt_queue_url: Name
    tokenize_dlq_url: Name
    receipt_dlq_url: Name
    runbook_url: str = "RUNBOOK.md"
    digest_window_seconds: int = Field(default=900, ge=1)


FUNCTION_SETTINGS: dict[str, type[EnvSettings]] = {
    "ChargeFunction": ChargeSettings,
    "TokenizeFunction": TokenizeSettings,
    "SendReceiptFunction": SendReceiptSettings,
    "ReconcilerFunction": ReconcilerSettings,
    "StripeWebhookFunction": StripeWebhookSettings,
    "NotifierFunction": NotifierSettings,
    "ScheduleRenewalsFunction": ScheduleRenewalsSettings,
    "RenewFunction": RenewSettings,
}
"""Each function of template.yaml (by logical id) and the settings its handler reads at INIT."""


def required_variables(settings: type[EnvSettings]) -> frozenset[str]:
    """The environment variables a settings class cannot do without."""
    return frozenset(name.upper() for name, spec in settings.model_fields.items() if spec.is_required())
