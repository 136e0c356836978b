"""boto3 clients, each created once per service (creating one costs tens of milliseconds)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config


class ClientCache:
    """``clients("sqs")`` -> one boto3 client per service, for one session, endpoint and config."""

    def __init__(
        self,
        session: boto3.session.Session,
        *,
        endpoint_url: str | None = None,
        config: Config | None = None,
        region: str | None = None,
    ) -> None:
        self.session = session
        self.endpoint_url = endpoint_url
        self._config = config
        self._region = region
        self._clients: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(
                service, endpoint_url=self.endpoint_url, config=self._config, region_name=self._region
            )
        return self._clients[service]

    def resource(self, service: str) -> Any:
        """A boto3 resource (e.g. a DynamoDB Table's) for the same session, endpoint and config."""
        key = f"resource:{service}"
        if key not in self._clients:
            self._clients[key] = self.session.resource(
                service, endpoint_url=self.endpoint_url, config=self._config, region_name=self._region
            )
        return self._clients[key]
