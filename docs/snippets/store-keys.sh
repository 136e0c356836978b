#!/usr/bin/env bash
# Store the provider keys as SSM SecureString parameters, after the stack exists: under the stack's own KMS
# key (its SecretsKeyArn output, EncryptSecrets=true, the default), else under aws/ssm (EncryptSecrets=false).
# Each key is asked for without echoing it and handed to the AWS CLI in a file readable by you only,
# never as a command-line argument; run it again with another key to replace one (--overwrite).
# Usage: STACK=... bash docs/snippets/store-keys.sh [NAME ...]   (default: the six keys below)
# tests/unit/test_docs_commands.py runs it with a stand-in `aws` and checks each call against botocore.
set -euo pipefail
# --8<-- [start:commands]
STACK=${STACK:-donations-dev}
KEY_ID=$(aws cloudformation describe-stacks --stack-name "$STACK" \
  --query "Stacks[0].Outputs[?OutputKey=='SecretsKeyArn'].OutputValue" --output text)
[ -n "$KEY_ID" ] && [ "$KEY_ID" != None ] || KEY_ID=alias/aws/ssm   # EncryptSecrets=false

umask 077                        # the files below: readable by you only
keys=$(mktemp -d)
trap 'rm -rf "$keys"' EXIT

store() {
  read -rsp "/donations/$1 (input hidden): " value && echo
  printf '%s' "$value" > "$keys/value"
  aws ssm put-parameter --type SecureString --overwrite --key-id "$KEY_ID" \
    --name "/donations/$1" --value "file://$keys/value" > /dev/null
  rm -f "$keys/value"
  echo "stored /donations/$1"
}

# stripe/charge-key, stripe/tokenize-key, stripe/reconciler-key, stripe/renew-key: each function's restricted key,
# rk_test_... first (rk_live_... when going live; docs/security.md lists each key's permissions);
# sendgrid-api-key: SG... (Mail Send); turnstile-secret-key: your Turnstile widget's secret key, 0x...
names=("$@")
[ ${#names[@]} -gt 0 ] ||
  names=(stripe/charge-key stripe/tokenize-key stripe/reconciler-key stripe/renew-key sendgrid-api-key
    turnstile-secret-key)
for name in "${names[@]}"; do store "$name"; done
# --8<-- [end:commands]
