"""Run the benchmarks one after the other, each in its own interpreter, with small sizes.

    python -m benchmarks            # small sizes, a few minutes in all
    python -m benchmarks --full     # each script's own defaults (each under 5 minutes)
    python -m benchmarks --only cost_model drain_rate

Each script prints its table and a one-line summary; the summaries are repeated at the end.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SMALL = {
    "donor_latency": ["--donations", "30"],
    "cold_start": ["--repeats", "5"],
    "cold_donor": ["--rounds", "5", "--warm", "2", "--breakdown", "2"],
    "drain_rate": ["--messages", "2000", "--max-seconds", "40"],
    "renewal_run": ["--pledges", "200", "--max-seconds", "150"],
    "cost_model": ["--donations", "50", "--init-repeats", "2"],
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="use each script's defaults instead of small sizes")
    parser.add_argument("--only", nargs="+", choices=list(SMALL), help="run only these")
    args = parser.parse_args(argv)
    summaries: list[str] = []
    failed = 0
    started = time.monotonic()
    for name in args.only or list(SMALL):
        command = [sys.executable, "-m", f"benchmarks.{name}", *([] if args.full else SMALL[name])]
        print(f"\n=== {' '.join(['python', *command[1:]])}", flush=True)
        process = subprocess.Popen(  # noqa: S603 - our own scripts
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert process.stdout is not None
        summary = None
        for line in process.stdout:
            print(line, end="", flush=True)
            if line.startswith(f"{name}:"):
                summary = line.strip()
        if process.wait() != 0 or summary is None:
            failed += 1
            summary = f"{name}: FAILED (exit code {process.returncode})"
        summaries.append(summary)
    print(f"\n=== summaries ({time.monotonic() - started:.0f} s)")
    for summary in summaries:
        print(summary)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
