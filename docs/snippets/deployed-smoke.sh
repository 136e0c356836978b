#!/usr/bin/env bash
# A test donation against a deployed stack (STACK=..., default samconfig.toml's donations-dev), with the
# Stripe test key stored and Stripe's test card: it must answer "succeeded", then show the card saved
# and the receipt sent. tests/e2e/test_docs_snippets.py runs it against the local stack.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# --8<-- [start:commands]
STACK=${STACK:-donations-dev}
API=$(aws cloudformation describe-stacks --stack-name "$STACK" \
  --query "Stacks[0].Outputs[?OutputKey=='ApiUrl'].OutputValue" --output text)
echo "API: $API"
API=$API bash "$HERE/first-donation.sh"
# --8<-- [end:commands]
