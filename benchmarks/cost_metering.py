"""Cost model, metering: what the donations make AWS do, measured while they go through the pipeline.

Every botocore call (``benchmarks.common.AwsCallRecorder``), each invocation's duration and its time
waiting on AWS and on the providers (:class:`Meter`), the functions' log output and EMF metrics
(:class:`CapturingSink`), and each DynamoDB item as it was just before and after a call
(:class:`DynamoSnapshots`), from which the index writes DynamoDB bills are computed.
"""

from __future__ import annotations

import functools
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.common import CURRENT_INVOCATION, AwsCall, AwsCallRecorder, NullSink
from simulator.local.process import free_port


@dataclass
class Invocation:
    function: str
    duration_ms: float
    messages: int = 0
    aws_ms: float = 0.0
    provider_ms: float = 0.0


# --------------------------------------------------------------------------- DynamoDB item snapshots

DYNAMODB_ITEM_OPERATIONS = ("GetItem", "PutItem", "UpdateItem", "DeleteItem")


class DynamoSnapshots:
    """Before and after each item call, the item as moto holds it (typed JSON and size in bytes).

    Read from moto's in-process backend, never through the API, so nothing is added to the count.
    """

    def __init__(self, region: str = "us-east-1", account: str = "123456789012") -> None:
        self.region = region
        self.account = account

    def _snapshot(self, call: AwsCall) -> dict[str, Any] | None:
        from moto.dynamodb.models import dynamodb_backends

        body = call.body or {}
        backend = dynamodb_backends[self.account][self.region]
        try:
            table = backend.get_table(body["TableName"])
            if call.operation == "PutItem":
                names = [table.hash_key_attr, table.range_key_attr]
                key = {name: body["Item"][name] for name in names if name}
            else:
                key = body["Key"]
            item = backend.get_item(body["TableName"], key)
        except Exception:  # an unknown table or a malformed call: moto answers it with an error anyway
            return None
        if item is None:
            return None
        return {"attributes": item.to_json()["Attributes"], "size": item.size()}

    def before(self, call: AwsCall) -> None:
        if call.service == "dynamodb" and call.operation in DYNAMODB_ITEM_OPERATIONS:
            call.extra["old"] = self._snapshot(call)

    def after(self, call: AwsCall, parsed: Any) -> None:
        if call.service != "dynamodb":
            return
        if call.operation in DYNAMODB_ITEM_OPERATIONS:
            call.extra["new"] = self._snapshot(call)
        elif call.operation in ("Query", "Scan") and isinstance(parsed, dict):
            call.extra["read_bytes"] = len(json.dumps(parsed.get("Items", []), default=str))


@dataclass(frozen=True)
class IndexSpec:
    name: str
    keys: frozenset[str]
    projection: str  # ALL, KEYS_ONLY, INCLUDE
    included: frozenset[str]


def _index_entry(
    snapshot: dict[str, Any] | None, index: IndexSpec, table_keys: frozenset[str]
) -> dict[str, Any] | None:
    """The item's entry in a (sparse) index, or None when it is not in it."""
    if snapshot is None:
        return None
    attributes = snapshot["attributes"]
    if not index.keys <= set(attributes):
        return None
    if index.projection == "ALL":
        return dict(attributes)
    keep = index.keys | table_keys | (index.included if index.projection == "INCLUDE" else frozenset())
    return {name: value for name, value in attributes.items() if name in keep}


def _entry_size(entry: dict[str, Any] | None) -> int:
    if not entry:
        return 0
    return sum(len(name.encode()) + len(json.dumps(value).encode()) for name, value in entry.items())


def index_write_units(old: Any, new: Any, index: IndexSpec, table_keys: frozenset[str]) -> int:
    """What one base-table write costs in one GSI (DynamoDB's rules for index writes)."""
    before, after = _index_entry(old, index, table_keys), _index_entry(new, index, table_keys)
    if before is None and after is None:
        return 0
    units = max(1, math.ceil(max(_entry_size(before), _entry_size(after)) / 1024))
    if before is None or after is None:
        return units  # enters or leaves the index: one put or one delete
    if any(before.get(k) != after.get(k) for k in index.keys):
        return 2 * units  # an index key changed: delete the old entry, put the new one
    return units if before != after else 0


@dataclass
class _Waits:
    """One invocation's time in provider calls (ms), whichever of its threads made them."""

    provider_ms: float = 0.0


class Meter:
    """Per-invocation timing: the invocation's duration, and its time in AWS and provider calls.

    Thread-safe: the webhook front invokes its function in its own thread while donations go on.
    """

    def __init__(self, recorder: AwsCallRecorder) -> None:
        self.recorder = recorder
        self.invocations: list[Invocation] = []
        self._lock = threading.Lock()
        self._restore: list[Callable[[], None]] = []

    def measure(self, function: str, call: Callable[[], Any], messages: int = 0) -> Any:
        """Time one invocation. Its AWS and provider calls are found by context (CURRENT_INVOCATION), so
        those its worker threads make count too; overlapping calls may sum to more than the duration."""
        invocation = _Waits()
        token = CURRENT_INVOCATION.set(invocation)
        started = time.perf_counter()
        with self.recorder.scope(function):
            mark = len(self.recorder.calls)
            try:
                return call()
            finally:
                duration = (time.perf_counter() - started) * 1000
                CURRENT_INVOCATION.reset(token)
                mine = [c for c in self.recorder.calls[mark:] if c.invocation is invocation]
                aws = sum(c.ms for c in mine if c.ms == c.ms)
                with self._lock:
                    self.invocations.append(Invocation(function, duration, messages, aws, invocation.provider_ms))

    def wrap_providers(self) -> None:
        from donations.mail import ReceiptMailer
        from donations.payments import StripePayments

        for owner, name in ((StripePayments, "charge"), (StripePayments, "save_card"), (ReceiptMailer, "send")):
            inner = getattr(owner, name)

            def timed(*args: Any, __inner: Any = inner, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return __inner(*args, **kwargs)
                finally:
                    spent = (time.perf_counter() - started) * 1000
                    waits = CURRENT_INVOCATION.get()
                    if isinstance(waits, _Waits):
                        with self._lock:
                            waits.provider_ms += spent

            setattr(owner, name, timed)
            self._restore.append(functools.partial(setattr, owner, name, inner))

    def restore(self) -> None:
        while self._restore:
            self._restore.pop()()


class CapturingSink(NullSink):
    """Counts the functions' output (bytes, log events) and collects the EMF metric identities."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: dict[tuple[str, str, str], int] = {}
        self._pending: dict[int, str] = {}

    def write(self, text: str) -> int:
        super().write(text)
        key = threading.get_ident()
        with self._lock:
            buffered = self._pending.pop(key, "") + text
            *lines, rest = buffered.split("\n")
            if rest:
                self._pending[key] = rest
        for line in lines:
            if line.startswith("{") and '"_aws"' in line:
                self._collect(line)
        return len(text)

    def _collect(self, line: str) -> None:
        try:
            document = json.loads(line)
        except ValueError:
            return
        for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
            for dimensions in directive.get("Dimensions", [[]]):
                labels = ",".join(f"{name}={document.get(name)}" for name in dimensions)
                for metric in directive.get("Metrics", []):
                    key = (directive.get("Namespace", ""), metric["Name"], labels)
                    with self._lock:
                        self.metrics[key] = self.metrics.get(key, 0) + 1


class WebhookFront:
    """API Gateway for the webhook route: the Stripe emulator posts its events here."""

    def __init__(self, pipeline: Any, meter: Meter, count: Callable[[str], None]) -> None:
        from simulator.local.front import Front

        self.pipeline = pipeline
        self.meter = meter
        self.count = count
        self.front = Front(free_port(), self._api, lambda *_: (404, {"message": "Not Found"}))
        self.thread = threading.Thread(target=self.front.serve_forever, name="cost-webhook-front", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.front.server_address[1]}"

    def _api(
        self, method: str, path: str, query: str, body: bytes | None, headers: list[tuple[str, str]]
    ) -> tuple[int, dict[str, str], str]:
        route = next((r for r in self.pipeline.routes if r.match(method, path) is not None), None)
        if route is None:
            return 404, {}, "{}"
        self.count(f"{route.method} {route.path}")
        answer = self.meter.measure(
            route.function_logical_id,
            lambda: self.pipeline.call_api(method, path, body=body, headers=headers, query=query),
        )
        return answer.status, answer.headers, answer.text

    def stop(self) -> None:
        self.front.shutdown()
        self.front.server_close()
        self.thread.join(timeout=5)
