"""``python -m simulator.emulators.stripe --port 12111``: the Stripe emulator in the foreground."""

from __future__ import annotations

import argparse
import sys

from simulator.emulators.base import EmulatorServer, run_cli
from simulator.emulators.stripe.server import StripeEmulator
from simulator.emulators.stripe.signing import DEFAULT_SECRET
from simulator.emulators.stripe.webhook_settings import DEFAULT_RETRY_SCHEDULE


def _delays(raw: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated seconds, got {raw!r}") from None


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-key", action="append", dest="api_keys", help="accepted key (repeatable)")
    parser.add_argument("--search-lag-ms", type=float, default=0)
    parser.add_argument("--no-require-return-url", action="store_true", help="accept confirm without return_url")
    parser.add_argument("--webhook-url", default=None, help="POST every event, signed, to this URL")
    parser.add_argument("--webhook-secret", default=DEFAULT_SECRET, help="signing secret (whsec_...)")
    parser.add_argument(
        "--webhook-retry-schedule",
        type=_delays,
        default=DEFAULT_RETRY_SCHEDULE,
        help="comma-separated retry delays in seconds (default: 1,2,4,8,16)",
    )


def _build(args: argparse.Namespace) -> EmulatorServer:
    return StripeEmulator(
        args.port,
        api_keys=set(args.api_keys) if args.api_keys else None,
        require_return_url=not args.no_require_return_url,
        search_lag_ms=args.search_lag_ms,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        webhook_retry_schedule=args.webhook_retry_schedule,
    )


def main(argv: list[str] | None = None) -> int:
    return run_cli(_build, prog="stripe-emulator", default_port=12111, argv=argv, add_arguments=_add_arguments)


if __name__ == "__main__":
    sys.exit(main())
