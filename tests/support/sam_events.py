"""Lambda events exactly as ``sam local generate-event`` produces them (AWS's own samples, offline).

Tests change only the fields that must be theirs (body, path, headers, queue, time ...) and feed the
result to the real handlers, so the handlers meet the shapes AWS sends rather than our own
``simulator.local.events`` builders. The SAM CLI lives in ``.tools/sam`` (``make tools``); without it the test
fails and says how to install it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
from functools import cache
from typing import Any

import pytest

from simulator.local.events import LambdaContext
from tests.infra.tooling import tool, tool_env

Event = dict[str, Any]


def sam_event(service: str, event: str, **options: str) -> Event:
    """``sam local generate-event <service> <event> --<option> <value> ...``, parsed (a fresh copy)."""
    arguments = tuple(arg for name, value in sorted(options.items()) for arg in (f"--{name.replace('_', '-')}", value))
    return copy.deepcopy(_generate(service, event, arguments))


@cache
def _generate(service: str, event: str, arguments: tuple[str, ...]) -> Event:
    command = [str(tool("sam")), "local", "generate-event", service, event, *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=tool_env(), check=False)  # noqa: S603
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}", pytrace=False)
    generated: Event = json.loads(done.stdout)
    return generated


def with_lowercase_headers(event: Event, extra: dict[str, str]) -> Event:
    """Header names as HTTP/2 clients send them and API Gateway passes them on: lowercase, in both maps."""
    event["headers"] = {name.lower(): value for name, value in (event["headers"] or {}).items()}
    event["multiValueHeaders"] = {name.lower(): values for name, values in (event["multiValueHeaders"] or {}).items()}
    for name, value in extra.items():
        event["headers"][name.lower()] = value
        event["multiValueHeaders"][name.lower()] = [value]
    return event


def sqs_record_with(record: Event, body: str, attributes: dict[str, dict[str, Any]]) -> Event:
    """A generated SQS record carrying our message: its body, its attributes (ReceiveMessage's
    ``MessageAttributes``, put in the event's shape) and the body's MD5, as SQS computes it."""
    record["body"] = body
    record["md5OfBody"] = hashlib.md5(body.encode()).hexdigest()  # noqa: S324 - SQS's checksum, not security
    record["messageAttributes"] = {
        name: {
            "stringValue": value["StringValue"],
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value["DataType"],
        }
        for name, value in attributes.items()
    }
    return record


def invoke(pipeline: Any, function_logical_id: str, event: Event) -> Any:
    """Call the function's real handler as Lambda does, with a context carrying the template's timeout."""
    spec = pipeline.stack.functions[function_logical_id]
    context = LambdaContext(spec.name, spec.memory_size, spec.timeout)
    return pipeline.handler(function_logical_id).lambda_handler(event, context)
