"""boto3 clients for the ops CLI: the user's AWS account, a local moto server, or injected ones (tests)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from botocore.config import Config

Clients = Callable[[str], Any]
"""Service name -> boto3 client ("sqs", "cloudformation", ...)."""

LOCAL_ENDPOINT = "http://127.0.0.1:4566"
"""Where the local stack's moto server listens by default."""
MOTO_PORT_ENV = "DONATIONS_MOTO_PORT"
"""The local stack's moto port, as the run command reads it (a second stack on the machine sets it)."""
ENDPOINT_ENV = "DONATIONS_OPS_ENDPOINT"
LOCAL_REGION = "us-east-1"


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


def resolve_endpoint(endpoint_url: str | None, *, local: bool, environ: Mapping[str, str] | None = None) -> str | None:
    """--endpoint-url, else $DONATIONS_OPS_ENDPOINT, else with --local the local stack's moto server
    ($DONATIONS_MOTO_PORT, as the run command uses it), else real AWS (None)."""
    env = os.environ if environ is None else environ
    if endpoint_url or env.get(ENDPOINT_ENV):
        return endpoint_url or env.get(ENDPOINT_ENV)
    if not local:
        return None
    port = env.get(MOTO_PORT_ENV)
    return f"http://127.0.0.1:{int(port)}" if port else LOCAL_ENDPOINT


def make_clients(
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    local: bool = False,
    session: boto3.session.Session | None = None,
) -> ClientCache:
    """Clients for the chosen target.

    With ``local`` the session has moto's dummy credentials, so a local command can never act on
    a real account whatever the user's profile says. Otherwise the default credential chain and
    region apply (profile, environment, instance role).
    """
    if session is None and local:
        session = boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
            region_name=region or LOCAL_REGION,
        )
    elif session is None:
        session = boto3.session.Session(region_name=region)
    # Locally, fail fast when the stack is not running instead of retrying for half a minute.
    config = Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=30) if local else None
    return ClientCache(session, endpoint_url=endpoint_url, config=config)
