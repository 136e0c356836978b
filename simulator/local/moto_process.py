"""moto's server in a process of its own, as AWS is remote: the functions' interpreter does not pay for it.

Run in one interpreter with the functions, moto's request handling took the same lock (the GIL) as
the handlers it answered, and every call a function made slowed every other function down. Here it
has a core of its own. Besides moto's APIs the process answers two local questions, each in one request
where AWS's APIs take one per queue or per metric (the alarm ticker asks both twice a second, and moto's
cost per request, not per answer, was most of an idle stack's CPU):

* ``GET /_local/sqs/queue-metrics?queue=NAME&queue=...``: each queue's metrics as CloudWatch names them.
  SQS has no API for the age CloudWatch reports as ApproximateAgeOfOldestMessage, and peeking at a
  message would count as a receive (and so as a step towards redrive).
* ``POST /_local/cloudwatch/metric-statistics``: the answers of many GetMetricStatistics, each as moto's
  CloudWatch gives it (the alarms' data).

    python -m simulator.local.moto_process --port 4566
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from infra.deploy.botocore_data import share_botocore_data
from infra.deploy.moto_atomic import make_dynamodb_writes_atomic
from infra.deploy.moto_speed import make_moto_costs_flat
from simulator.local.alarms import Datapoints, StatisticsQuery
from simulator.local.metrics import QueueValues, queue_values_in_backend

QUEUE_METRICS_PATH = "/_local/sqs/queue-metrics"
METRIC_STATISTICS_PATH = "/_local/cloudwatch/metric-statistics"


class MotoProcess:
    """Starts the server as a child process and stops it; answers the queue-age question through it."""

    def __init__(self, port: int, *, start_timeout: float = 60.0) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._start_timeout = start_timeout
        self._child: subprocess.Popen[bytes] | None = None

    def start(self) -> MotoProcess:
        command = [sys.executable, "-m", "simulator.local.moto_process", "--port", str(self.port)]
        # A session of its own: Ctrl-C in the terminal reaches the stack, not moto, which the stack stops
        # last (its functions and pollers call moto until they have stopped).
        self._child = subprocess.Popen(  # noqa: S603
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if self._child.poll() is not None:
                raise RuntimeError(f"moto's server exited at start-up with code {self._child.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"moto's server did not listen on 127.0.0.1:{self.port} within {self._start_timeout:.0f} s")

    def stop(self) -> None:
        if self._child is None or self._child.poll() is not None:
            return
        self._child.terminate()
        try:
            self._child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait(timeout=5)

    def queue_metrics(self, queue_names: list[str]) -> dict[str, QueueValues]:
        query = urllib.parse.urlencode([("queue", name) for name in queue_names])
        with urllib.request.urlopen(f"{self.url}{QUEUE_METRICS_PATH}?{query}", timeout=5) as answer:  # noqa: S310 (loopback)
            return dict(json.load(answer))

    def metric_statistics(self, queries: list[StatisticsQuery]) -> list[Datapoints]:
        body = json.dumps([_query_as_json(query) for query in queries]).encode()
        request = urllib.request.Request(  # noqa: S310 (loopback)
            f"{self.url}{METRIC_STATISTICS_PATH}", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (loopback)
            return [
                [{**point, "Timestamp": datetime.fromisoformat(point["Timestamp"])} for point in datapoints]
                for datapoints in json.load(answer)
            ]


UNEMULATED_SQS_ACTIONS = frozenset({"StartMessageMoveTask", "ListMessageMoveTasks", "CancelMessageMoveTask"})
"""SQS's redrive API, which moto does not have: it would answer a 500 and print its traceback."""


def with_local_answers(moto_app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """moto's WSGI application, plus the two local answers above, and SQS's own refusal for its redrive API."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = str(environ.get("HTTP_X_AMZ_TARGET") or "")
        if target.startswith("AmazonSQS.") and target.removeprefix("AmazonSQS.") in UNEMULATED_SQS_ACTIONS:
            return _unsupported_operation(target.removeprefix("AmazonSQS."), start_response)
        path = environ.get("PATH_INFO")
        if path == QUEUE_METRICS_PATH:
            names = urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).get("queue", [])
            body = json.dumps(queue_values_in_backend(names)).encode()
        elif path == METRIC_STATISTICS_PATH:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            asked = [_query_from_json(query) for query in json.loads(environ["wsgi.input"].read(length) or b"[]")]
            body = json.dumps(statistics_in_backend(asked)).encode()
        else:
            return moto_app(environ, start_response)
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return app


def _query_as_json(query: StatisticsQuery) -> dict[str, Any]:
    return {**query.__dict__, "start": query.start.isoformat(), "end": query.end.isoformat()}


def _query_from_json(fields: dict[str, Any]) -> StatisticsQuery:
    return StatisticsQuery(
        **{
            **fields,
            "dimensions": tuple(tuple(pair) for pair in fields["dimensions"]),
            "start": datetime.fromisoformat(fields["start"]),
            "end": datetime.fromisoformat(fields["end"]),
        }
    )


def statistics_in_backend(
    queries: list[StatisticsQuery], account: str = "123456789012", region: str = "us-east-1"
) -> list[list[dict[str, Any]]]:
    """Each query answered by moto's CloudWatch backend in this process, as its GetMetricStatistics does
    (timestamps as ISO 8601 text)."""
    from moto.cloudwatch.models import cloudwatch_backends

    backend = cloudwatch_backends[account][region]
    answers = []
    for query in queries:
        dimensions = [{"Name": name, "Value": value} for name, value in query.dimensions]
        start, end = (_as_moto_time(moment) for moment in (query.start, query.end))
        points = backend.get_metric_statistics(
            query.namespace, query.metric_name, start, end, query.period, [query.statistic], dimensions
        )
        answers.append(
            [
                {"Timestamp": point.timestamp.replace(tzinfo=UTC).isoformat(), query.statistic: float(value)}
                for point in points
                if (value := point.get_statistics_for_type(query.statistic)) is not None
            ]
        )
    return answers


def _as_moto_time(moment: datetime) -> datetime:
    """moto's CloudWatch keeps UTC times without a zone."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _unsupported_operation(action: str, start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The error SQS's API model lists for StartMessageMoveTask (botocore's sqs model, its error shapes:
    ``UnsupportedOperation``, "Error code 400. Unsupported operation."), in SQS's JSON protocol, so that
    donations-ops falls back to its copy quietly."""
    body = json.dumps(
        {"__type": "com.amazonaws.sqs#UnsupportedOperation", "message": f"{action} is not emulated by moto"}
    ).encode()
    start_response(
        "400 Bad Request",
        [
            ("Content-Type", "application/x-amz-json-1.0"),
            ("x-amzn-query-error", "AWS.SimpleQueueService.UnsupportedOperation;Sender"),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]


def serve(port: int) -> None:
    share_botocore_data()  # moto makes a botocore session per backend (and EC2's module three at import)
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    make_dynamodb_writes_atomic()
    make_moto_costs_flat()
    app = with_local_answers(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)

    def shut_down(*_: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shut_down)  # the stack stops us, last
    signal.signal(signal.SIGINT, shut_down)  # run on its own in a terminal
    _exit_with_parent(shut_down)
    server.serve_forever(poll_interval=0.05)  # short: the stack waits for us to stop
    server.server_close()
    # Nothing to save (moto keeps its state in memory): skip tearing down moto's thousands of
    # modules, which takes about a second the stack would wait for.
    os._exit(0)


def _exit_with_parent(shut_down: Callable[[], None]) -> None:
    """If the local stack dies without stopping us (kill -9), do not keep its port."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        shut_down()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m simulator.local.moto_process", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--port", type=int, required=True)
    serve(parser.parse_args(argv).port)


if __name__ == "__main__":
    main()
