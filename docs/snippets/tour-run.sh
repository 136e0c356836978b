#!/usr/bin/env bash
# The local stack for the five-minute tour: alarm periods and retry backoff pass ten times faster, as in
# the end-to-end tests (tests/e2e/test_docs_snippets.py starts its stack with exactly these variables).
set -euo pipefail
# --8<-- [start:commands]
DONATIONS_LOCAL_TIME_SCALE=10 DONATIONS_LOCAL_TICK=0.5 DONATIONS_FN_BACKOFF_BASE_SECONDS=1 make run
# --8<-- [end:commands]
