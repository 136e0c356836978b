"""Cause and end a provider outage on the running local stack, in one command.

    python -m simulator.faults sendgrid outage --on     # every mail send answers 503
    python -m simulator.faults sendgrid outage --off    # SendGrid is back
    python -m simulator.faults stripe outage --on       # every Stripe API call answers 500
    python -m simulator.faults list                     # the faults each emulator holds

It drives the emulators' control API (``/_emulator/faults``, simulator.emulators.control) on the ports
the run command uses (``DONATIONS_SENDGRID_PORT``, ``DONATIONS_STRIPE_PORT``; ``--url`` for another).
Exit codes: 0 done, 2 the emulator did not answer (is ``make run`` running?). docs/simulator-faults.md
walks through an outage with it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from donations_ops.target import Target
from simulator.emulators.control import EmulatorControl, EmulatorControlError
from simulator.local.config import LocalConfig

OK, UNREACHABLE = 0, 2


@dataclass(frozen=True)
class Outage:
    """One provider's outage: a 5xx on every request under ``path_prefix`` until it is ended."""

    provider: str
    port_variable: str
    path_prefix: str
    status: int
    effect: str
    redrive: str
    """The donations-ops command that sends back what was parked meanwhile."""

    def url(self, config: LocalConfig) -> str:
        port = config.sendgrid_port if self.provider == "sendgrid" else config.stripe_port
        return f"http://127.0.0.1:{port}"

    def matches(self, fault: dict[str, object]) -> bool:
        return fault.get("kind") == "http_error" and fault.get("path_prefix") == self.path_prefix


OUTAGES = {
    "sendgrid": Outage(
        "sendgrid",
        "DONATIONS_SENDGRID_PORT",
        "/v3/mail/send",
        503,
        "every mail send answers 503: receipts are retried, then parked in ReceiptDLQ; "
        "receipt-step-failing and receipt-dlq-not-empty fire (the console shows them)",
        "redrive receipt",
    ),
    "stripe": Outage(
        "stripe",
        "DONATIONS_STRIPE_PORT",
        "/v1/",
        500,
        "every Stripe API call answers 500: new donations fail, and card saves are retried, then parked",
        "redrive tokenize",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = LocalConfig()
    try:
        if args.provider == "list":
            return _list(config)
        outage = OUTAGES[args.provider]
        control = EmulatorControl(args.url or outage.url(config))
        return _switch(control, outage, Target(config.stack_name, local=True), on=args.on)
    except (OSError, EmulatorControlError) as error:
        print(f"simulator.faults: the emulator did not answer ({error}); is `make run` running?", file=sys.stderr)
        return UNREACHABLE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simulator.faults", description=__doc__.split("\n\n")[0])
    providers = parser.add_subparsers(dest="provider", required=True, metavar="PROVIDER")
    for name in OUTAGES:
        provider = providers.add_parser(name, help=f"{name}'s emulator")
        what = provider.add_subparsers(dest="fault", required=True, metavar="FAULT")
        outage = what.add_parser("outage", help="a 5xx on every call, until --off")
        switch = outage.add_mutually_exclusive_group(required=True)
        switch.add_argument("--on", action="store_true", help="cause the outage")
        switch.add_argument("--off", dest="on", action="store_false", help="end it")
        outage.add_argument("--url", help=f"the emulator's URL (default: 127.0.0.1:${OUTAGES[name].port_variable})")
    providers.add_parser("list", help="the faults each emulator holds")
    return parser


def _switch(control: EmulatorControl, outage: Outage, ops: Target, *, on: bool) -> int:
    held = [fault for fault in control.faults() if outage.matches(fault)]
    if on:
        fault_id = held[0]["id"] if held else control.add_fault(
            "http_error", status=outage.status, path_prefix=outage.path_prefix
        )  # fmt: skip
        print(f"{outage.provider} outage ON ({fault_id}): {outage.effect}.")
        print(f"End it: python -m simulator.faults {outage.provider} outage --off")
        return OK
    for fault in held:
        control.remove_fault(str(fault["id"]))
    print(f"{outage.provider} outage OFF ({len(held)} fault(s) removed).")
    print(f"Once its alarms are OK again, send back what was parked meanwhile: {ops.command(outage.redrive)}")
    return OK


def _list(config: LocalConfig) -> int:
    for name, outage in OUTAGES.items():
        faults = EmulatorControl(outage.url(config)).faults()
        shown = ", ".join(f"{f['id']} {f['kind']} {f.get('status') or ''} on {f['path_prefix'] or '/'}" for f in faults)
        print(f"{name}: {shown or 'no faults'}")
    return OK


if __name__ == "__main__":
    sys.exit(main())
