#!/usr/bin/env bash
# The tour's last step, once the outage is over: the parked receipts back to their queue (the safe
# redrive skips what would fail again), then the day's report. tests/e2e/test_docs_snippets.py runs it.
set -euo pipefail
# --8<-- [start:commands]
.venv/bin/donations-ops --local redrive receipt
.venv/bin/donations-ops --local report --date today
# --8<-- [end:commands]
