#!/usr/bin/env bash
# Stripe's webhook endpoint for a deployed stack (STACK=..., default samconfig.toml's donations-dev): created at
# the stack's ApiUrl + /webhooks/stripe, in the API version the code pins, with the events the handler handles;
# its signing secret stored in the SSM parameter the webhook function reads. Safe to run again.
# The key is asked for without echoing it and passed in the environment, never as an argument.
# tests/unit/test_docs_commands.py checks the command against donations-ops' parser.
set -euo pipefail
# --8<-- [start:commands]
read -rsp "Stripe secret key, sk_test_... (sk_live_... when going live) (input hidden): " STRIPE_API_KEY && echo
export STRIPE_API_KEY
.venv/bin/donations-ops --stack-name "${STACK:-donations-dev}" stripe install-webhook
# --8<-- [end:commands]
