"""The card-testing attack simulation on demand: `python -m tests.attack.run` (defaults: the issue's 5,000
attempts from 300 addresses, 95 % declining cards, 200 honest donors). Prints what got through and how
fast the attack was seen; exits 1 when a target is missed (< 5 % reached Stripe, no honest donor
refused, the alarm within 2 minutes, the attack mode closed by itself). tests/attack/test_attack.py
runs a small one in the suite.

The local stack runs in this process with template.yaml's limits; only the attack mode's quiet
period is shortened (--quiet-seconds, 20 s; the template's is 30 minutes) so that its closing is
seen within the run.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from benchmarks.common import NullSink, benchmark_process, free_port
from tests.attack.simulation import AttackConfig, AttackReport, AttackRun


def run_attack(config: AttackConfig, out: TextIO | None = None) -> AttackReport:
    out = out or sys.stdout
    with benchmark_process():
        # Imported here: Powertools reads the environment the local stack sets, at import.
        from simulator.local.config import LocalConfig
        from simulator.local.stack import LocalStack

        local = LocalConfig(
            api_port=free_port(),
            moto_port=free_port(),
            stripe_port=free_port(),
            sendgrid_port=free_port(),
            turnstile_port=free_port(),
            stack_name="donations-attack",
            stripe_api_key="",
            sendgrid_api_key="",
            turnstile_secret_key="",
            tick_seconds=config.alarm_tick_seconds,
            time_scale=1.0,
            reconcile_seconds=0,
            environment={"CARD_TESTING_QUIET_SECONDS": str(config.quiet_seconds)},
        )
        print(f"starting the local stack on {local.api_port} (template.yaml's card-testing limits)...", file=out)
        stack = LocalStack(local, console=NullSink()).start()
        try:
            report = AttackRun(stack, config).run()
        finally:
            stack.stop()
    for line in report.lines():
        print(line, file=out)
    print(report.summary(), file=out)
    return report


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    defaults = AttackConfig()
    parser = argparse.ArgumentParser(prog="python -m tests.attack.run", description=__doc__)
    parser.add_argument("--attempts", type=int, default=defaults.attempts)
    parser.add_argument("--addresses", type=int, default=defaults.addresses)
    parser.add_argument("--bad-share", type=float, default=defaults.bad_share)
    parser.add_argument("--honest", type=int, default=defaults.honest)
    parser.add_argument("--families", type=int, default=defaults.families)
    parser.add_argument("--resubmitting", type=int, default=defaults.resubmitting)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--quiet-seconds", type=int, default=defaults.quiet_seconds)
    args = parser.parse_args(argv)
    config = AttackConfig(
        attempts=args.attempts,
        addresses=args.addresses,
        bad_share=args.bad_share,
        honest=args.honest,
        families=args.families,
        resubmitting=args.resubmitting,
        workers=args.workers,
        seed=args.seed,
        quiet_seconds=args.quiet_seconds,
    )
    return 0 if run_attack(config, out).met else 1


if __name__ == "__main__":
    sys.exit(main())
