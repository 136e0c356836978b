#!/usr/bin/env bash
# The identifier secret (IdentifierSecretName): 64 random characters that key donation ids, donor keys and
# card-testing email keys. Created once, after the first deployment (under the stack's KMS key, as
# store-keys.sh does) and before the first donation, and never changed once donations exist
# (security-application.md, "Rotating"): without --overwrite, put-parameter refuses to replace it.
# Then the key that signs monthly donors' manage links (PledgeLinkSecretName), made the same way
# (deploying.md says how to rotate that one).
# tests/unit/test_docs_commands.py runs it with a stand-in `aws` and checks the call against botocore.
set -euo pipefail
# --8<-- [start:commands]
STACK=${STACK:-donations-dev}
KEY_ID=$(aws cloudformation describe-stacks --stack-name "$STACK" \
  --query "Stacks[0].Outputs[?OutputKey=='SecretsKeyArn'].OutputValue" --output text)
[ -n "$KEY_ID" ] && [ "$KEY_ID" != None ] || KEY_ID=alias/aws/ssm   # EncryptSecrets=false

umask 077                        # the file below: readable by you only
secret=$(mktemp)
trap 'rm -f "$secret"' EXIT
for name in /donations/identifier-secret /donations/pledge-link-key; do
  openssl rand -base64 48 | tr -d '\n' > "$secret"
  aws ssm put-parameter --type SecureString --key-id "$KEY_ID" --name "$name" \
    --value "file://$secret" > /dev/null
  echo "stored $name"
done
# --8<-- [end:commands]
