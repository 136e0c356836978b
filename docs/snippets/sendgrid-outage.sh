#!/usr/bin/env bash
# A SendGrid outage on `make run`: every mail send answers 503 until the fault is removed.
# (SENDGRID=... for another stack.) tests/e2e/test_docs_snippets.py runs it.
set -euo pipefail
# --8<-- [start:commands]
curl -s -X POST "${SENDGRID:-http://127.0.0.1:3030}/_emulator/faults" -H 'Content-Type: application/json' \
  -d '{"kind": "http_error", "status": 503, "path_prefix": "/v3/mail/send"}'
echo
# --8<-- [end:commands]
