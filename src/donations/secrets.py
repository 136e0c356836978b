"""Provider API keys from Secrets Manager, cached by Powertools Parameters."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider

SECRET_CACHE_SECONDS = 300


class ApiKeys:
    """Reads a secret that holds either the bare key or JSON ``{"api_key": "..."}``."""

    def __init__(self, secrets_client: Any) -> None:
        self._provider = SecretsProvider(boto3_client=secrets_client)

    def forget(self) -> None:
        """Drop the cached keys: the next ``get`` of each fetches it (before a SnapStart snapshot)."""
        self._provider.clear_cache()  # type: ignore[no-untyped-call]  # Powertools leaves it unannotated

    def get(self, secret_name: str) -> str:
        value = str(self._provider.get(secret_name, max_age=SECRET_CACHE_SECONDS))
        if value.lstrip().startswith("{"):
            return str(json.loads(value)["api_key"])
        return value.strip()
