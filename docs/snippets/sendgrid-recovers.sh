#!/usr/bin/env bash
# The outage ends: every fault on the SendGrid emulator removed. tests/e2e/test_docs_snippets.py runs it.
set -euo pipefail
# --8<-- [start:commands]
curl -s -X DELETE "${SENDGRID:-http://127.0.0.1:3030}/_emulator/faults"
echo
# --8<-- [end:commands]
