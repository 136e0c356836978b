#!/usr/bin/env bash
# Store the provider keys as SSM SecureString parameters (standard tier, the AWS managed key aws/ssm).
# Each key is asked for without echoing it and handed to the AWS CLI in a file readable by you only,
# never as a command-line argument; run it again with another key to replace one (--overwrite).
# Usage: bash docs/snippets/store-keys.sh [NAME ...]   (default: the three keys below)
# tests/unit/test_docs_commands.py runs it with a stand-in `aws` and checks each call against botocore.
set -euo pipefail
# --8<-- [start:commands]
umask 077                        # the files below: readable by you only
keys=$(mktemp -d)
trap 'rm -rf "$keys"' EXIT

store() {
  read -rsp "/donations/$1 (input hidden): " value && echo
  printf '%s' "$value" > "$keys/value"
  aws ssm put-parameter --type SecureString --overwrite \
    --name "/donations/$1" --value "file://$keys/value" > /dev/null
  rm -f "$keys/value"
  echo "stored /donations/$1"
}

# stripe-api-key: sk_test_... first (sk_live_... only when going live); sendgrid-api-key: SG...;
# turnstile-secret-key: your Cloudflare Turnstile widget's secret key, 0x...
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(stripe-api-key sendgrid-api-key turnstile-secret-key)
for name in "${names[@]}"; do store "$name"; done
# --8<-- [end:commands]
