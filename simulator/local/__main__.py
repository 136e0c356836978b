"""`python -m simulator.local` (`make run`): run the whole pipeline on 127.0.0.1 until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from infra.deploy.botocore_data import share_botocore_data
from simulator.local.config import LocalConfig
from simulator.local.readiness import NotReady
from simulator.local.stack import LocalStack

CURL_EXAMPLE = (
    "curl -s -X POST http://127.0.0.1:{port}/donations -H 'Content-Type: application/json' "
    '-H "Idempotency-Key: demo-$(date +%s%N)" -d \'{{"amount": 2500, "currency": "usd", "email": "ada@example.org", '
    '"name": "Ada Lovelace", "payment_method": "pm_card_visa", "save_card": true}}\''
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator.local", description=__doc__)
    parser.add_argument("--verbose", action="store_true", help="print the functions' JSON log lines as they are")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    share_botocore_data()  # every function's cold start runs in this one process, each on sessions of its own

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    config = LocalConfig()
    config.verbose = config.verbose or args.verbose
    stack = LocalStack(config, console=sys.stdout)
    try:
        try:
            stack.start()
        except NotReady as reason:
            print(f"Not ready, stopping: {reason}", flush=True)
            return 1
        print(f"Donation pipeline running locally (started in {stack.startup_seconds:.1f} s):", flush=True)
        for name, url in stack.urls().items():
            print(f"  {name:<18} {url}", flush=True)
        print(f"Try: {CURL_EXAMPLE.format(port=stack.config.api_port)}", flush=True)
        print(f"Operate it: {stack.ops_target.command('status')}", flush=True)
        print(
            "Everything is kept in memory: stopping the stack (Ctrl-C) forgets its donations, queues, "
            "alarms and receipts; the next start begins empty.",
            flush=True,
        )
        print("Ready. Press Ctrl-C to stop.", flush=True)
        # Waited for in short steps: Python runs a signal's handler in the main thread only, and the
        # kernel may hand Ctrl-C to another thread, so an endless wait could miss it.
        while not stop.wait(0.1):
            pass
    finally:
        print("Stopping...", flush=True)
        stack.stop()
        print("Stopped.", flush=True)
    return 0


def exit_now(code: int) -> None:
    """End the process without waiting for work abandoned at stop (a worker still busy after its time
    would fail against the stopped moto, and the interpreter would wait for the functions' thread pools)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
