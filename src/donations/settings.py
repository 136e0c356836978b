"""Typed settings, read from the environment once per cold start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Settings(BaseModel):
    """Everything a function needs to know about its environment.

    Field names are the lower-cased environment variable names set by template.yaml.
    Secrets are never here: only the *names* of the secrets, resolved at call time.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    stage: str = "dev"
    donations_table: str = "donations"
    idempotency_table: str = "donations-idempotency"
    tokenize_queue_url: str = ""
    receipt_queue_url: str = ""
    tokenize_dlq_url: str = ""
    receipt_dlq_url: str = ""

    stripe_secret_name: str = "donations/stripe-api-key"  # noqa: S105 - a name, not a secret
    sendgrid_secret_name: str = "donations/sendgrid-api-key"  # noqa: S105 - a name, not a secret
    stripe_webhook_secret_name: str = "donations/stripe-webhook-secret"  # noqa: S105 - a name, not a secret
    # Empty means the real provider; the local stack and tests point these at the emulators.
    stripe_api_base: str = ""
    sendgrid_api_host: str = ""
    stripe_max_network_retries: int = Field(default=2, ge=0, le=5)
    provider_timeout_seconds: float = Field(default=8.0, gt=0)
    # Provider calls end this long before the function's Timeout (donations.deadline): room for the
    # writes and the answer that follow them, and for one SDK backoff sleep (<= 1 s with 2 retries).
    deadline_reserve_seconds: float = Field(default=3.0, ge=0)

    allowed_currencies: frozenset[str] = frozenset({"usd", "eur", "gbp", "cad", "aud"})
    min_amount: int = Field(default=100, ge=1)
    max_amount: int = Field(default=5_000_000, ge=1)
    max_body_bytes: int = 8_192
    idempotency_ttl_seconds: int = 24 * 3600

    receipt_template_id: str = "d-00000000000000000000000000000000"
    receipt_from_email: str = "receipts@example.org"
    org_name: str = "Example Charity"
    org_address: str = ""
    cors_origin: str = "*"

    # Mirrors the queues' RedrivePolicy so a consumer knows when a receive is the last one.
    max_receive_count: int = Field(default=6, ge=1)
    backoff_base_seconds: int = Field(default=10, ge=0)
    backoff_cap_seconds: int = Field(default=600, ge=0, le=43_200)
    receipt_claim_seconds: int = Field(default=60, ge=1)

    # Crash recovery (donations.reconcile). A donation is left alone until it has not changed for
    # the grace period (longer than the charge function's timeout and Stripe's ~1 min search lag),
    # and is only reported, not retried, once older than the max age.
    reconcile_grace_seconds: int = Field(default=120, ge=0)
    reconcile_max_age_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    # Stripe keeps idempotency keys 24 h: until then a donor's retry with the same key may still charge
    # (or replay) the pending donation, so silence from Stripe only means "never charged" after it.
    stripe_idempotency_window_seconds: int = Field(default=24 * 3600, ge=0)
    # How long a donor may take to finish 3-D Secure before the PaymentIntent is canceled.
    reconcile_action_timeout_seconds: int = Field(default=24 * 3600, ge=0)
    reconcile_batch_size: int = Field(default=100, ge=1, le=1000)

    @field_validator("allowed_currencies", mode="before")
    @classmethod
    def _split_currencies(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(part.strip().lower() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _reconcile_windows_fit(self) -> Settings:
        # A donation must get its decision before it becomes too old to be retried.
        windows = (self.stripe_idempotency_window_seconds, self.reconcile_action_timeout_seconds)
        if not self.reconcile_grace_seconds <= min(windows) <= max(windows) < self.reconcile_max_age_seconds:
            raise ValueError(
                "RECONCILE_GRACE_SECONDS must not exceed STRIPE_IDEMPOTENCY_WINDOW_SECONDS or "
                "RECONCILE_ACTION_TIMEOUT_SECONDS, and both must be below RECONCILE_MAX_AGE_SECONDS"
            )
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        names = cls.model_fields.keys()
        return cls.model_validate({name: environ[name.upper()] for name in names if name.upper() in environ})


@cache
def get_settings() -> Settings:
    """The settings of this process; tests clear the cache after changing the environment."""
    return Settings.from_env()
