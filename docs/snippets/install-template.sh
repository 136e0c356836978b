#!/usr/bin/env bash
# Install the shipped receipt template into SendGrid; it prints the ReceiptTemplateId to deploy with.
# The key is asked for without echoing it and passed in the environment, not as an argument.
# tests/unit/test_docs_commands.py checks the command against donations-ops' parser.
set -euo pipefail
# --8<-- [start:commands]
read -rsp "SendGrid API key with the Template Engine permission (input hidden): " SENDGRID_API_KEY && echo
export SENDGRID_API_KEY
.venv/bin/donations-ops receipts install-template
# Created the dynamic template 'Donation receipt': version ... is now active.
# Deploy with ReceiptTemplateId=d-0123456789abcdef0123456789abcdef
# --8<-- [end:commands]
