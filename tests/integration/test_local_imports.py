"""The local stack's entry points import no donations.* module that reads the functions' environment.

Powertools' Metrics reads its namespace from the environment once, when donations.observability is
imported; the local stack puts the functions' environment (POWERTOOLS_METRICS_NAMESPACE, from the
template's Globals) in place only when it starts. Imported earlier, every metrics flush fails ("Must
contain a metric namespace") and the charge answers 502, as ``python -m simulator.local`` and
``python -m benchmarks.donor_latency`` start in a shell without that variable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

IMPORT_THEN_START = """
import json, os
import simulator.local.__main__, benchmarks.donor_latency  # what the two entry points import first
os.environ["POWERTOOLS_METRICS_NAMESPACE"] = "DonationPipeline"  # as the stack sets it when it starts
from donations.observability import metrics
print(json.dumps(metrics.namespace))
"""


def test_the_functions_metrics_get_the_namespace_the_stack_sets_when_it_starts() -> None:
    # Given a shell without the functions' Powertools settings (this process has them: tests/conftest.py)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")}

    # When the entry points' modules are imported, and then the stack sets the functions' environment
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", IMPORT_THEN_START],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    # Then the functions' metrics have that namespace (without it every flush raises and the charge answers 502)
    assert json.loads(done.stdout.splitlines()[-1]) == "DonationPipeline"
