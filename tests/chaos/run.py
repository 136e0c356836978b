"""Bigger chaos runs on demand: `python -m tests.chaos.run --donations 1000` (random seed unless given)."""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "donations-chaos",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.run", description=__doc__)
    parser.add_argument("--donations", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=None, help="random when omitted; printed for replay")
    parser.add_argument("--fault-rate", type=float, default=0.12)
    parser.add_argument("--runs", type=int, default=1, help="independent runs, each with its own seed")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)

    from moto import mock_aws

    from simulator.emulators.sendgrid_emulator import SendGridEmulator
    from simulator.emulators.stripe import StripeEmulator
    from simulator.local.pipeline import Pipeline, ProviderEndpoints
    from tests.chaos.harness import ChaosConfig, ChaosRun, timed
    from tests.conftest import TEST_ENVIRONMENT
    from tests.support.world import World

    failures = 0
    with StripeEmulator() as stripe, SendGridEmulator() as sendgrid, mock_aws():
        providers = ProviderEndpoints(stripe_api_base=stripe.url, sendgrid_api_host=sendgrid.url)
        pipeline = Pipeline(providers, stack_name="donations-chaos", environment=TEST_ENVIRONMENT).start()
        for _ in range(args.runs):
            seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
            config = ChaosConfig(donations=args.donations, seed=seed, fault_rate=args.fault_rate)
            report, seconds = timed(ChaosRun(World(pipeline, stripe, sendgrid), config))
            print(f"seed={seed} {report.summary()} seconds={seconds:.0f}", flush=True)
            for violation in report.violations[:20]:
                print(f"  violation: {violation}", flush=True)
            failures += bool(report.violations)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
