"""Real-shaped Lambda events and contexts, shared by the local stack and the tests."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl


@dataclass
class LambdaContext:
    """The interface Lambda hands a handler, with a real countdown for get_remaining_time_in_millis()."""

    function_name: str = "local-function"
    memory_limit_in_mb: int = 256
    timeout_seconds: float = 30.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/{self.aws_request_id}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


def api_gateway_event(
    method: str,
    path: str,
    *,
    body: str | bytes | dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    query: str = "",
    resource: str | None = None,
    path_parameters: dict[str, str] | None = None,
    stage: str = "local",
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """An API Gateway REST (v1) proxy event, as the Lambda integration sends it."""
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    headers = dict(headers or {})
    query_pairs = parse_qsl(query, keep_blank_values=True)
    request_id = str(uuid.uuid4())
    return {
        "resource": resource or path,
        "path": path,
        "httpMethod": method.upper(),
        "headers": headers or None,
        "multiValueHeaders": {key: [value] for key, value in headers.items()} or None,
        "queryStringParameters": dict(query_pairs) or None,
        "multiValueQueryStringParameters": _multi(query_pairs) or None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource or path,
            "httpMethod": method.upper(),
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "requestTimeEpoch": int(time.time() * 1000),
            "accountId": "123456789012",
            "apiId": "local",
            "protocol": "HTTP/1.1",
            "identity": {"sourceIp": source_ip, "userAgent": headers.get("User-Agent", "")},
        },
        "body": body,
        "isBase64Encoded": False,
    }


def _multi(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return grouped


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """An SQS event-source-mapping event from ReceiveMessage results (with attributes requested)."""
    region = queue_arn.split(":")[3]
    return {"Records": [sqs_record(message, queue_arn, region) for message in messages]}


def sqs_record(message: dict[str, Any], queue_arn: str, region: str = "us-east-1") -> dict[str, Any]:
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attributes.get("SentTimestamp", str(int(time.time() * 1000))),
            "SenderId": attributes.get("SenderId", "AIDAEXAMPLE"),
            "ApproximateFirstReceiveTimestamp": attributes.get(
                "ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000))
            ),
        },
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value["DataType"],
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),  # noqa: S324
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def scheduled_event(
    rule_arn: str, *, at: datetime | None = None, account: str = "123456789012", region: str = "us-east-1"
) -> dict[str, Any]:
    """An EventBridge "Scheduled Event" (a SAM ``Schedule`` event), as Lambda receives it.

    ``time`` is the scheduled time of the run, to the second; ``at`` sets it (default: now).
    """
    moment = (at or datetime.now(UTC)).astimezone(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }
