"""Real-shaped Lambda events and contexts, shared by the local stack and the tests."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Mapping, Sequence
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


Headers = Mapping[str, str] | Sequence[tuple[str, str]]
"""Request headers: a mapping, or (name, value) pairs as they came on the wire (names may repeat)."""


def api_gateway_event(
    method: str,
    path: str,
    *,
    body: str | bytes | dict[str, Any] | None = None,
    headers: Headers | None = None,
    query: str = "",
    resource: str | None = None,
    path_parameters: dict[str, str] | None = None,
    stage: str = "local",
    source_ip: str = "127.0.0.1",
    base64_encoded: bool = False,
) -> dict[str, Any]:
    """An API Gateway REST (v1) proxy event, as the Lambda integration sends it.

    Repeated headers are kept as API Gateway keeps them ("Input format of a Lambda function for
    proxy integration"): every value in ``multiValueHeaders``, the last one in ``headers``. Names
    that differ only in case are one header (RFC 9110 section 5.1), under the first spelling seen.
    ``base64_encoded`` marks a body API Gateway base64-encoded (a binaryMediaTypes match).
    """
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    single, multi = _header_fields(headers)
    query_pairs = parse_qsl(query, keep_blank_values=True)
    request_id = str(uuid.uuid4())
    return {
        "resource": resource or path,
        "path": path,
        "httpMethod": method.upper(),
        "headers": single or None,
        "multiValueHeaders": multi or None,
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
            "identity": {"sourceIp": source_ip, "userAgent": single.get(_spelling(single, "User-Agent"), "")},
        },
        "body": body,
        "isBase64Encoded": base64_encoded,
    }


def _header_fields(headers: Headers | None) -> tuple[dict[str, str], dict[str, list[str]]]:
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        multi.setdefault(_spelling(multi, name), []).append(value)
    return {name: values[-1] for name, values in multi.items()}, multi


def _spelling(fields: Mapping[str, Any], name: str) -> str:
    """The spelling under which ``fields`` already holds ``name`` (case-insensitively), else ``name``."""
    lowered = name.lower()
    return next((key for key in fields if key.lower() == lowered), name)


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


def sns_event(envelope: dict[str, Any], subscription_arn: str) -> dict[str, Any]:
    """The event SNS invokes a subscribed Lambda function with, from the JSON SNS delivers to an SQS
    subscriber (the same notification; the field names differ: "Using Lambda with Amazon SNS",
    event example, and Powertools' SnsNotificationModel)."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "Sns": {
                    "Type": "Notification",
                    "MessageId": envelope["MessageId"],
                    "TopicArn": envelope["TopicArn"],
                    "Subject": envelope.get("Subject"),
                    "Message": envelope["Message"],
                    "Timestamp": envelope["Timestamp"],
                    "SignatureVersion": envelope.get("SignatureVersion", "1"),
                    "Signature": envelope.get("Signature", "EXAMPLE"),
                    "SigningCertUrl": envelope.get("SigningCertURL", "https://sns.us-east-1.amazonaws.com/cert.pem"),
                    "UnsubscribeUrl": envelope.get("UnsubscribeURL", "https://sns.us-east-1.amazonaws.com/"),
                    "MessageAttributes": envelope.get("MessageAttributes") or {},
                },
            }
        ]
    }
