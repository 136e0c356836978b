"""Bounded load against the local stack: `python -m benchmarks.load_test [--donors 50 --seconds 60]`.

Starts its own local stack on free 127.0.0.1 ports (or targets `--api URL` of a running one),
runs N concurrent donors for a fixed time, then waits for every accepted donation to finish its
background steps. Prints throughput, latency percentiles, errors and lost donations; exits 1 if
any request errored or any donation was lost.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from simulator.local.process import start_stack, stop_stack


@dataclass
class LoadResult:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    donations: list[tuple[str, bool]] = field(default_factory=list)  # (donation id, asked to save the card)
    seconds: float = 0.0
    lost: list[str] = field(default_factory=list)

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0

    def summary(self) -> str:
        total = len(self.latencies_ms)
        return (
            f"load_test: requests={total} throughput={total / max(self.seconds, 1e-9):.1f}/s "
            f"p50={self.percentile(0.5):.0f}ms p99={self.percentile(0.99):.0f}ms "
            f"errors={len(self.errors)} lost={len(self.lost)} {'PASS' if self.ok else 'FAIL'}"
        )

    @property
    def ok(self) -> bool:
        return not self.errors and not self.lost and bool(self.latencies_ms)


def run_load(api: str, *, donors: int, seconds: float, max_requests: int = 100_000) -> LoadResult:
    result = LoadResult()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    sent = iter(range(max_requests))

    def donor(number: int) -> None:
        session = requests.Session()
        while time.monotonic() < deadline:
            with lock:
                donation = next(sent, None)
                if donation is None:
                    return
            save_card = number % 2 == 0
            # Each donation is another donor from another address: the same email or address dozens of
            # times a minute is what the card-testing checks stop (README, "Card testing").
            body: dict[str, Any] = {
                "amount": 500 + number,
                "currency": "usd",
                "email": f"load{donation}@example.org",
                "name": f"Load Donor {number}",
                "payment_method": "pm_card_visa",
                "save_card": save_card,
            }
            headers = {
                "Idempotency-Key": str(uuid.uuid4()),
                "X-Local-Source-Ip": f"10.{donation // 65_536 % 256}.{donation // 256 % 256}.{donation % 256}",
            }
            started = time.perf_counter()
            try:
                answer = session.post(f"{api}/donations", json=body, headers=headers, timeout=90)
            except requests.RequestException as error:
                with lock:
                    result.errors.append(repr(error))
                continue
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                result.latencies_ms.append(elapsed)
                result.statuses[answer.status_code] = result.statuses.get(answer.status_code, 0) + 1
                if answer.status_code == 201:
                    result.donations.append((answer.json()["donation_id"], save_card))
                else:
                    result.errors.append(f"{answer.status_code} {answer.text[:200]}")

    started = time.monotonic()
    threads = [threading.Thread(target=donor, args=(n,), daemon=True) for n in range(donors)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    result.seconds = time.monotonic() - started
    return result


def find_lost(api: str, donations: list[tuple[str, bool]], *, timeout: float = 180.0) -> list[str]:
    """Donations that did not finish (receipt sent; card saved when asked) within the timeout."""
    pending = dict(donations)
    deadline = time.monotonic() + timeout
    session = requests.Session()
    while pending and time.monotonic() < deadline:
        for donation_id, save_card in list(pending.items()):
            view = session.get(f"{api}/donations/{donation_id}", timeout=10).json()
            if view["receipt_sent"] and (view["card_saved"] or not save_card):
                del pending[donation_id]
        if pending:
            time.sleep(0.5)
    return sorted(pending)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load_test", description=__doc__)
    parser.add_argument("--donors", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--api", help="a running local stack's API base URL (default: start one)")
    args = parser.parse_args(argv)

    stack = None
    api = args.api
    if api is None:
        # The README's run command in its own process: the load generator must not share its interpreter.
        log = Path(tempfile.gettempdir()) / "donations-load-stack.log"
        stack = start_stack(log, stack_name="donations-load")
        api = stack.api
    try:
        result = run_load(api, donors=args.donors, seconds=args.seconds)
        result.lost = find_lost(api, result.donations)
    finally:
        if stack is not None:
            stop_stack(stack)
    print(f"{'donors':<12}{args.donors}\n{'seconds':<12}{result.seconds:.1f}\n{'statuses':<12}{result.statuses}")
    if result.latencies_ms:
        print(f"{'mean':<12}{statistics.fmean(result.latencies_ms):.0f} ms")
    for line in (result.errors + [f"lost {d}" for d in result.lost])[:10]:
        print(f"  {line}")
    print(result.summary())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
