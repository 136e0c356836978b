"""What CloudWatch does for free on AWS and moto does not: metrics from SQS, Lambda and EMF logs.

* SQS: ApproximateNumberOfMessagesVisible / NotVisible and ApproximateAgeOfOldestMessage per queue,
  sampled on a tick. SQS has no API for the age, and peeking would raise receive counts (and so
  trigger redrive), so the age is read from moto's backend (through simulator.local.moto_process when
  moto runs in a process of its own).
* Lambda: Invocations, Errors and Duration per function, recorded by the local invokers.
* EMF: the handlers print Powertools' Embedded Metric Format lines; CloudWatch Logs would turn them
  into metrics, so :class:`FunctionOutput` does: it forwards them with ``put_metric_data``.

Everything lands in moto's CloudWatch, where the alarm evaluator reads it like CloudWatch would.
"""

from __future__ import annotations

import contextvars
import io
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

log = logging.getLogger("donations.local")

# A context variable, so the threads a handler hands work to (with contextvars.copy_context(), as the
# consumers do with a batch's records) are tagged with its function too.
_current: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("local_function", default=None)


@contextmanager
def running_function(name: str, service: str) -> Iterator[None]:
    """Tag this thread's output with the function running in it (the handlers share one process)."""
    token = _current.set((name, service))
    try:
        yield
    finally:
        _current.reset(token)


def current_function() -> tuple[str, str] | None:
    return _current.get()


def put_metric(
    cloudwatch: Any, namespace: str, name: str, value: float, dimensions: dict[str, str], unit: str = "None"
) -> None:
    cloudwatch.put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": name,
                "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                "Value": float(value),
                "Unit": unit,
                "Timestamp": datetime.now(UTC),
            }
        ],
    )


def emf_metric_data(
    document: dict[str, Any], service: str | None
) -> Iterator[tuple[str, str, float, dict[str, str], str]]:
    """(namespace, name, value, dimensions, unit) for each metric of one EMF document.

    The ``service`` dimension is set to the emitting function's service: every local function
    shares one process (and one environment), where on AWS each has its own. A series several
    functions share on purpose (its ``service`` set by the code, e.g. UnrecordedCharges) keeps its own.
    """
    # Imported here, not at the top: importing donations.* creates Powertools' Metrics, which reads its
    # namespace from the environment once, and the stack sets that environment only when it starts.
    from donations.settlement import UNRECORDED_CHARGES_DIMENSIONS

    shared_services = {UNRECORDED_CHARGES_DIMENSIONS["service"]}
    for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
        for dimension_set in directive.get("Dimensions", [[]]):
            dimensions = {name: str(document.get(name, "")) for name in dimension_set}
            if service and "service" in dimensions and dimensions["service"] not in shared_services:
                dimensions["service"] = service
            for metric in directive.get("Metrics", []):
                values = document.get(metric["Name"])
                for value in values if isinstance(values, list) else [values]:
                    if isinstance(value, int | float):
                        yield (
                            directive["Namespace"],
                            metric["Name"],
                            float(value),
                            dimensions,
                            metric.get("Unit", "None"),
                        )


class MetricForwarder:
    """Puts metric data into moto's CloudWatch from a thread of its own, off the invocations' path.

    On AWS, EMF extraction and Lambda's own metrics cost an invocation nothing; done inline here
    they added tens of milliseconds to every request. Data points keep the time they were taken.
    """

    BATCH = 500  # PutMetricData takes up to 1,000 data points per call

    def __init__(self, cloudwatch: Any) -> None:
        self._cloudwatch = cloudwatch
        self._pending: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="metric-forwarder", daemon=True)
        self._thread.start()

    def put(self, namespace: str, name: str, value: float, dimensions: dict[str, str], unit: str = "None") -> None:
        datum = {
            "MetricName": name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
            "Value": float(value),
            "Unit": unit,
            "Timestamp": datetime.now(UTC),
        }
        self._pending.put((namespace, datum))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait (at most ``timeout`` s) until everything put so far is in CloudWatch."""
        done = threading.Event()
        self._pending.put(("", {"done": done}))
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        self._pending.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._pending.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.BATCH and not self._pending.empty():
                item = self._pending.get()
                if item is None:
                    self._send(batch)
                    return
                batch.append(item)
            self._send(batch)

    def _send(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for namespace, datum in batch:
            if "done" in datum:
                continue
            by_namespace.setdefault(namespace, []).append(datum)
        for namespace, data in by_namespace.items():
            try:
                self._cloudwatch.put_metric_data(Namespace=namespace, MetricData=data)
            except Exception:  # metrics must never break the stack
                log.exception("could not forward %d metric data points to %s", len(data), namespace)
        for _, datum in batch:
            if "done" in datum:
                datum["done"].set()


class FunctionOutput(io.TextIOBase):
    """Stands in for stdout: EMF lines become metrics, JSON log lines become one readable line each."""

    def __init__(
        self,
        metrics: MetricForwarder,
        console: TextIO,
        *,
        verbose: bool = False,
        on_log: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self._metrics = metrics
        self._console = console
        self._verbose = verbose
        self._on_log = on_log
        self._lock = threading.Lock()
        self._buffers: dict[int, str] = {}

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        key = threading.get_ident()
        with self._lock:
            buffered = self._buffers.pop(key, "") + text
            *lines, rest = buffered.split("\n")
            if rest:
                self._buffers[key] = rest
        for line in lines:
            self._line(line)
        return len(text)

    def flush(self) -> None:
        self._console.flush()

    def _line(self, line: str) -> None:
        if not line.startswith("{"):
            if line.strip():
                self._console.write(line + "\n")
            return
        try:
            document = json.loads(line)
        except ValueError:
            self._console.write(line + "\n")
            return
        function = current_function()
        if "_aws" in document:
            self._forward_metrics(document, function[1] if function else None)
            return
        if self._on_log:
            self._on_log(document)
        self._console.write((line if self._verbose else readable(document, function)) + "\n")

    def _forward_metrics(self, document: dict[str, Any], service: str | None) -> None:
        for namespace, name, value, dimensions, unit in emf_metric_data(document, service):
            self._metrics.put(namespace, name, value, dimensions, unit)


def readable(document: dict[str, Any], function: tuple[str, str] | None) -> str:
    """One line a person can follow: time, function, level, message and the donation it concerns."""
    stamp = time.strftime("%H:%M:%S")
    name = function[0] if function else str(document.get("service", "-"))
    parts = [stamp, f"{name:<20}", f"{document.get('level', 'INFO'):<7}", str(document.get("message", ""))]
    for key in ("donation_id", "step", "code", "reason", "decline_code", "retry_in_seconds", "sendgrid_message_id"):
        if key in document:
            parts.append(f"{key}={document[key]}")
    return " ".join(parts)


QueueValues = dict[str, float]
"""A queue's three metrics as CloudWatch names them (ApproximateNumberOfMessagesVisible, ...)."""


class QueueMetrics:
    """Publishes the SQS metrics CloudWatch would, from the queues' attributes and moto's backend.

    ``read_queues``: the metrics of the named queues at once; by default read queue by queue through
    SQS's API, the age from moto in this process (a local stack whose moto runs in a process of its own
    asks it all in one request: simulator.local.moto_process).
    """

    def __init__(
        self,
        sqs: Any,
        cloudwatch: Any,
        queue_urls: list[str],
        read_queues: Callable[[list[str]], dict[str, QueueValues]] | None = None,
    ) -> None:
        self._sqs = sqs
        self._cloudwatch = cloudwatch
        self._queue_urls = queue_urls
        self._read_queues = read_queues or self._read_one_by_one

    def publish(self) -> dict[str, QueueValues]:
        """Every queue's three metrics, put in one PutMetricData call (it takes up to 1,000 data points):
        the ticker publishes twice a second, and a call per data point was most of an idle stack's calls."""
        now = datetime.now(UTC)
        published = self._read_queues([url.rsplit("/", 1)[1] for url in self._queue_urls])
        data = [
            {
                "MetricName": metric,
                "Dimensions": [{"Name": "QueueName", "Value": name}],
                "Value": value,
                "Unit": "Count",
                "Timestamp": now,
            }
            for name, values in published.items()
            for metric, value in values.items()
        ]
        if data:
            self._cloudwatch.put_metric_data(Namespace="AWS/SQS", MetricData=data)
        return published

    def _read_one_by_one(self, names: list[str]) -> dict[str, QueueValues]:
        urls = {url.rsplit("/", 1)[1]: url for url in self._queue_urls}
        read: dict[str, QueueValues] = {}
        for name in names:
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=urls[name],
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            read[name] = {
                "ApproximateNumberOfMessagesVisible": float(attributes["ApproximateNumberOfMessages"]),
                "ApproximateNumberOfMessagesNotVisible": float(attributes["ApproximateNumberOfMessagesNotVisible"]),
                "ApproximateAgeOfOldestMessage": oldest_message_age_seconds(name),
            }
        return read


def queue_values_in_backend(
    names: list[str], account: str = "123456789012", region: str = "us-east-1"
) -> dict[str, QueueValues]:
    """The three metrics of each named queue, read from moto's backend in this process: the counts as
    moto's GetQueueAttributes gives them (ApproximateNumberOfMessages, ...NotVisible), and the age."""
    from moto.sqs.models import sqs_backends

    queues = sqs_backends[account][region].queues
    return {
        name: {
            "ApproximateNumberOfMessagesVisible": float(queues[name].approximate_number_of_messages),
            "ApproximateNumberOfMessagesNotVisible": float(queues[name].approximate_number_of_messages_not_visible),
            "ApproximateAgeOfOldestMessage": oldest_message_age_seconds(name, account, region),
        }
        for name in names
        if name in queues
    }


def oldest_message_age_seconds(queue_name: str, account: str = "123456789012", region: str = "us-east-1") -> float:
    """Age of the oldest message still in the queue, read from moto's backend in this process."""
    from moto.sqs.models import sqs_backends

    queue = sqs_backends[account][region].queues.get(queue_name)
    stamps = [m.sent_timestamp for m in getattr(queue, "_messages", []) if m.sent_timestamp]
    return max(0.0, time.time() - min(stamps) / 1000) if stamps else 0.0


class FunctionMetrics:
    """AWS/Lambda metrics for the local invokers: Invocations, Errors and Duration per invocation."""

    def __init__(self, metrics: MetricForwarder) -> None:
        self._metrics = metrics

    def record(self, function_name: str, duration_ms: float, error: bool) -> None:
        dimensions = {"FunctionName": function_name}
        self._metrics.put("AWS/Lambda", "Invocations", 1, dimensions, "Count")
        self._metrics.put("AWS/Lambda", "Errors", 1 if error else 0, dimensions, "Count")
        self._metrics.put("AWS/Lambda", "Duration", duration_ms, dimensions, "Milliseconds")


def set_log_stream(stream: Any) -> Any:
    """Point the functions' Powertools logger at ``stream`` (a file-like object); the stream it wrote to before."""
    from donations.observability import logger

    handler = logger.registered_handler
    if not isinstance(handler, logging.StreamHandler):
        raise TypeError(f"Powertools' logger writes through a {type(handler).__name__}, not a stream")
    return handler.setStream(stream)
