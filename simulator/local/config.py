"""The local stack's configuration: ports and knobs, each overridable by an environment variable.

The run command reads its environment here and nowhere else (see the README's table).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


@dataclass
class LocalConfig:
    """Ports and knobs, each overridable by an environment variable (see the README)."""

    api_port: int = field(default_factory=lambda: _env_int("DONATIONS_API_PORT", 3000))
    moto_port: int = field(default_factory=lambda: _env_int("DONATIONS_MOTO_PORT", 4566))
    stripe_port: int = field(default_factory=lambda: _env_int("DONATIONS_STRIPE_PORT", 12111))
    sendgrid_port: int = field(default_factory=lambda: _env_int("DONATIONS_SENDGRID_PORT", 3030))
    turnstile_port: int = field(default_factory=lambda: _env_int("DONATIONS_TURNSTILE_PORT", 3040))
    stack_name: str = field(default_factory=lambda: os.environ.get("DONATIONS_STACK_NAME", "donations-local"))
    # Seconds between metric samples and alarm evaluations; and how much faster than real time
    # alarm periods pass (60 s periods evaluated over 60/scale s), so a demo need not wait minutes.
    tick_seconds: float = field(default_factory=lambda: float(os.environ.get("DONATIONS_LOCAL_TICK", "5")))
    time_scale: float = field(default_factory=lambda: float(os.environ.get("DONATIONS_LOCAL_TIME_SCALE", "1")))
    stripe_api_key: str = field(default_factory=lambda: os.environ.get("STRIPE_API_KEY", ""))
    # With the real Stripe: the test-mode publishable key (pk_test_...) the form's Stripe.js uses.
    stripe_publishable_key: str = field(default_factory=lambda: os.environ.get("STRIPE_PUBLISHABLE_KEY", ""))
    sendgrid_api_key: str = field(default_factory=lambda: os.environ.get("SENDGRID_API_KEY", ""))
    # The real Cloudflare Turnstile instead of its emulator: your widget's keys (both, or neither).
    turnstile_sitekey: str = field(default_factory=lambda: os.environ.get("TURNSTILE_SITEKEY", ""))
    turnstile_secret_key: str = field(default_factory=lambda: os.environ.get("TURNSTILE_SECRET_KEY", ""))
    # With the real Stripe: the secret `stripe listen --forward-to 127.0.0.1:3000/webhooks/stripe` prints.
    stripe_webhook_secret: str = field(default_factory=lambda: os.environ.get("STRIPE_WEBHOOK_SECRET", ""))
    # DONATIONS_FN_<NAME>=value sets <NAME> in the functions' environment (e.g. shorter backoffs).
    environment: dict[str, str] = field(
        default_factory=lambda: {
            name.removeprefix("DONATIONS_FN_"): value
            for name, value in os.environ.items()
            if name.startswith("DONATIONS_FN_")
        }
    )
    verbose: bool = field(default_factory=lambda: os.environ.get("DONATIONS_LOCAL_VERBOSE", "") not in ("", "0"))
    # How long start-up checks may keep failing before the stack gives up (simulator.local.readiness).
    ready_timeout: float = field(default_factory=lambda: float(os.environ.get("DONATIONS_LOCAL_READY_TIMEOUT", "30")))
    # Seconds between the reconciler's runs, as its Schedule event on AWS (0 turns it off).
    reconcile_seconds: int = field(default_factory=lambda: _env_int("DONATIONS_LOCAL_RECONCILE_SECONDS", 30))

    def __post_init__(self) -> None:
        # The notifier's growth window is a 15-minute schedule on AWS: it passes as fast as alarm periods.
        if self.time_scale > 1 and "DIGEST_WINDOW_SECONDS" not in self.environment:
            self.environment["DIGEST_WINDOW_SECONDS"] = str(max(1, round(900 / self.time_scale)))
