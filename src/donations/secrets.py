"""Provider API keys from SSM Parameter Store SecureString parameters, cached by Powertools Parameters.

Standard-tier parameters cost nothing a month (a Secrets Manager secret is $0.40 each); each read is
one KMS decryption (KMS requests, after 20,000 free a month). Access stays per key: each function's role
may read (ssm:GetParameter) only the parameters its settings name; and with template.yaml's SecretsKey
(EncryptSecrets, docs/security.md) only that role may decrypt them. Under the AWS managed key aws/ssm
instead, IAM would be the only control: aws/ssm grants Decrypt to every principal of the account (AWS
Systems Manager User Guide, "Restricting decryption of SecureString parameter values").
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.parameters import SSMProvider

SECRET_CACHE_SECONDS = 300


class ApiKeys:
    """Reads a SecureString parameter that holds either the bare key or JSON ``{"api_key": "..."}``."""

    def __init__(self, ssm_client: Any) -> None:
        self._provider = SSMProvider(boto3_client=ssm_client)

    def forget(self) -> None:
        """Drop the cached keys: the next ``get`` of each fetches it (before a SnapStart snapshot)."""
        self._provider.clear_cache()  # type: ignore[no-untyped-call]  # Powertools leaves it unannotated

    def get(self, parameter_name: str) -> str:
        value = str(self._provider.get(parameter_name, max_age=SECRET_CACHE_SECONDS, decrypt=True))
        if value.lstrip().startswith("{"):
            return str(json.loads(value)["api_key"])
        return value.strip()
