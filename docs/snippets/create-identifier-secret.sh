#!/usr/bin/env bash
# The identifier secret (IdentifierSecretName): 64 random characters that key donation ids, donor keys and
# card-testing email keys. Created once, before the first deployment, and never changed while donations are
# in flight (security-application.md, "Rotating"): without --overwrite, put-parameter refuses to replace it.
# tests/unit/test_docs_commands.py runs it with a stand-in `aws` and checks the call against botocore.
set -euo pipefail
# --8<-- [start:commands]
umask 077                        # the file below: readable by you only
secret=$(mktemp)
trap 'rm -f "$secret"' EXIT
openssl rand -base64 48 | tr -d '\n' > "$secret"
aws ssm put-parameter --type SecureString --name /donations/identifier-secret \
  --value "file://$secret" > /dev/null
echo "stored /donations/identifier-secret"
# --8<-- [end:commands]
