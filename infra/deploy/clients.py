"""boto3 clients for moto: one per service, for one session, endpoint and region."""

from __future__ import annotations

import boto3

from donations_ops.aws import ClientCache


class AwsClients(ClientCache):
    """boto3 clients for one session, region and endpoint, each created once (creation is slow).

    Without a session, one with dummy credentials is used, so code meant for moto can never reach
    a real account. Leave ``endpoint_url`` None inside ``moto.mock_aws()``; pass the server's URL
    for a ``ThreadedMotoServer``.
    """

    def __init__(
        self,
        session: boto3.session.Session | None = None,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> None:
        self.region: str = region or (session.region_name if session else None) or "us-east-1"
        session = session or boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
            region_name=self.region,
        )
        super().__init__(session, endpoint_url=endpoint_url, region=self.region)
