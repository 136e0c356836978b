"""Small helpers shared by the benchmark scripts: statistics, tables, free ports, process hygiene."""

from __future__ import annotations

import contextlib
import contextvars
import io
import logging
import math
import os
import platform
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from simulator.local.process import free_port

DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


@dataclass(frozen=True)
class Summary:
    n: int
    p5: float
    p25: float
    p50: float
    p75: float
    p95: float
    p99: float
    mean: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        return cls(
            n=len(values),
            p5=percentile(values, 5),
            p25=percentile(values, 25),
            p50=percentile(values, 50),
            p75=percentile(values, 75),
            p95=percentile(values, 95),
            p99=percentile(values, 99),
            mean=sum(values) / len(values) if values else math.nan,
        )


def verdict(met: bool) -> str:
    return "PASS" if met else "MISS"


# --------------------------------------------------------------------------- output


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, out: TextIO | None = None) -> str:
    """A plain fixed-width table; numbers right-aligned. Printed to ``out`` and returned."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [
        max(len(str(h)), *(len(row[i]) for row in cells)) if cells else len(str(h)) for i, h in enumerate(headers)
    ]
    numeric = [all(_is_number(row[i]) for row in rows) if rows else False for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if numeric[i] else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True))]
        return "  ".join(parts).rstrip()

    text = "\n".join([line([str(h) for h in headers]), line(["-" * w for w in widths]), *(line(r) for r in cells)])
    print(text, file=out or sys.stdout, flush=True)
    return text


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.4g}"
    return str(value)


def machine() -> str:
    """One line naming the machine: CPU model, cores, Python, OS."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for row in cpuinfo:
            if row.startswith("model name"):
                model = row.split(":", 1)[1].strip()
                break
    return (
        f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


class NullSink(io.TextIOBase):
    """A stdout stand-in that counts what would have been written (bytes and lines) and keeps nothing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bytes = 0
        self.lines = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self.bytes += len(text.encode("utf-8", "replace"))
            self.lines += text.count("\n")
        return len(text)


# --------------------------------------------------------------------------- process hygiene


@contextlib.contextmanager
def preserved_process_state() -> Iterator[None]:
    """Give back os.environ, sys.stdout and the Powertools logger stream as they were.

    The pipeline writes the functions' environment into os.environ (they share this process) and the
    local stack routes stdout; a benchmark called from the test suite must not leave either behind.
    """
    saved_environ = dict(os.environ)
    saved_stdout = sys.stdout
    stream = _logger_stream()
    # The pipeline (re)loads each handler module from functions/; give it fresh module objects and
    # put the caller's back afterwards, so a pipeline already running in this process is untouched.
    saved_handlers = {name: sys.modules.pop(name) for name in _handler_modules()}
    try:
        yield
    finally:
        for name in _handler_modules():
            del sys.modules[name]
        sys.modules.update(saved_handlers)
        sys.stdout = saved_stdout
        os.environ.clear()
        os.environ.update(saved_environ)
        if stream is not None:
            _set_logger_stream(stream)


FUNCTIONS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "functions")


def _handler_modules() -> list[str]:
    return [
        name
        for name, module in list(sys.modules.items())
        if (getattr(module, "__file__", None) or "").startswith(FUNCTIONS_DIR + os.sep)
    ]


def _logger_stream() -> Any:
    # Never import it here: Powertools reads its settings from the environment at import time, and
    # the benchmarks set that environment first.
    observability = sys.modules.get("donations.observability")
    return observability.logger.registered_handler.stream if observability is not None else None


def _set_logger_stream(stream: Any) -> Any:
    from simulator.local.metrics import set_log_stream

    return set_log_stream(stream)


@dataclass
class PipelineOnMoto:
    """The template's functions against a moto server and the Stripe and SendGrid emulators."""

    pipeline: Any
    stripe: Any
    moto_port: int


@contextlib.contextmanager
def pipeline_on_moto_server(stack_name: str) -> Iterator[PipelineOnMoto]:
    """The template deployed to a moto server in a process of its own, as the local stack runs it (AWS is
    remote: moto does not take the functions' interpreter), with the provider emulators; all stopped after.
    Call it inside ``benchmark_process()``: the pipeline sets the functions' environment in this process."""
    from simulator.emulators.sendgrid_emulator import SendGridEmulator
    from simulator.emulators.stripe import StripeEmulator
    from simulator.local.moto_process import MotoProcess
    from simulator.local.pipeline import Pipeline, ProviderEndpoints

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = MotoProcess(free_port()).start()
    stripe, sendgrid = StripeEmulator().start(), SendGridEmulator().start()
    try:
        providers = ProviderEndpoints(stripe_api_base=stripe.url, sendgrid_api_host=sendgrid.url)
        pipeline = Pipeline(providers, endpoint_url=moto.url, stack_name=stack_name).start()
        yield PipelineOnMoto(pipeline, stripe, moto.port)
    finally:
        stripe.stop()
        sendgrid.stop()
        moto.stop()


@contextlib.contextmanager
def quiet_functions(sink: Any = None) -> Iterator[Any]:
    """Send the functions' JSON logs and EMF lines (stdout) to ``sink`` instead of the terminal."""
    sink = sink or NullSink()
    previous = _set_logger_stream(sink)
    try:
        with contextlib.redirect_stdout(sink):
            yield sink
    finally:
        _set_logger_stream(previous)


def quiet_libraries() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("donations.local").setLevel(logging.ERROR)


@contextlib.contextmanager
def benchmark_process() -> Iterator[None]:
    """What every in-process benchmark runs under: quiet libraries, dummy AWS credentials, and the
    process's environment and handlers put back afterwards. Powertools' warning for an invocation
    that emitted no metric (a duplicate delivery) is not our concern here."""
    quiet_libraries()
    with preserved_process_state(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        setdefault_env(DUMMY_AWS_ENV)
        yield


def setdefault_env(values: dict[str, str]) -> None:
    for name, value in values.items():
        os.environ.setdefault(name, value)


# --------------------------------------------------------------------------- AWS calls, as the SDK makes them


# Set by a benchmark around one handler invocation; the calls made under it carry it, also from the
# worker threads a handler hands work to with contextvars.copy_context() (follow-up sends, batch records).
CURRENT_INVOCATION: contextvars.ContextVar[object | None] = contextvars.ContextVar("invocation", default=None)


@dataclass
class AwsCall:
    scope: str
    service: str
    operation: str
    request_bytes: int
    ms: float = math.nan
    failed: bool = False
    returned: int | None = None
    """Messages returned, for SQS ReceiveMessage."""
    thread: int = 0
    invocation: object | None = None
    """The ``CURRENT_INVOCATION`` the call was made under (worker threads inherit it via contextvars)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """What ``on_before``/``on_after`` callbacks add (e.g. item snapshots)."""
    body: Any = None
    """The decoded JSON request for JSON-protocol services (DynamoDB, SQS), for sizing."""


class AwsCallRecorder:
    """Records every AWS API call made by boto3/botocore clients created while it is installed.

    The handlers build their clients from fresh ``boto3.session.Session()`` objects (through
    ``donations.wiring.Wiring``), so the hooks go into botocore's BUILTIN_HANDLERS, which every new
    session registers: ``before-call`` (the request as serialized) and ``after-call`` (its duration).
    Calls are attributed to the scope active in the calling thread (``with recorder.scope(name)``);
    calls made outside any scope are ignored. Handlers return None, so no call is short-circuited.
    """

    def __init__(
        self,
        on_before: Callable[[AwsCall], None] | None = None,
        on_after: Callable[[AwsCall, Any], None] | None = None,
    ) -> None:
        self.calls: list[AwsCall] = []
        self.on_before = on_before
        self.on_after = on_after
        # A context variable, not a thread-local: work a handler hands to a thread pool through
        # contextvars.copy_context() (donations.followups) is still attributed to it.
        self._scope: contextvars.ContextVar[str | None] = contextvars.ContextVar("aws_call_scope", default=None)
        self._lock = threading.Lock()
        self._specs: list[tuple[str, Callable[..., None]]] = [
            ("before-call", self._before),
            ("after-call", self._after),
            ("after-call-error", self._after_error),
        ]

    def install(self) -> AwsCallRecorder:
        from botocore import handlers

        handlers.BUILTIN_HANDLERS.extend(self._specs)
        return self

    def uninstall(self) -> None:
        from botocore import handlers

        for spec in self._specs:
            with contextlib.suppress(ValueError):
                handlers.BUILTIN_HANDLERS.remove(spec)

    @contextlib.contextmanager
    def scope(self, name: str) -> Iterator[None]:
        token = self._scope.set(name)
        try:
            yield
        finally:
            self._scope.reset(token)

    def current_scope(self) -> str | None:
        return self._scope.get()

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()

    def _before(self, model: Any = None, params: Any = None, context: Any = None, **_: Any) -> None:
        scope = self.current_scope()
        if scope is None or model is None or context is None:
            return
        raw = (params or {}).get("body", b"")
        if isinstance(raw, dict):
            from urllib.parse import urlencode

            raw = urlencode(raw, doseq=True)
        if isinstance(raw, str):
            raw = raw.encode()
        service = model.service_model.service_name
        body = None
        if service in ("dynamodb", "sqs") and raw:
            import json

            with contextlib.suppress(ValueError):
                body = json.loads(raw)
        call = AwsCall(
            scope,
            service,
            model.name,
            len(raw or b""),
            body=body,
            thread=threading.get_ident(),
            invocation=CURRENT_INVOCATION.get(),
        )
        if self.on_before is not None:
            self.on_before(call)
        context["_bench_call"] = (call, time.perf_counter())
        with self._lock:
            self.calls.append(call)

    def _finish(self, context: Any, failed: bool, parsed: Any = None) -> None:
        entry = (context or {}).pop("_bench_call", None)
        if entry is not None:
            call, started = entry
            call.ms = (time.perf_counter() - started) * 1000
            call.failed = failed
            if call.operation == "ReceiveMessage" and isinstance(parsed, dict):
                call.returned = len(parsed.get("Messages") or [])
            if self.on_after is not None:
                self.on_after(call, parsed)

    def _after(self, context: Any = None, http_response: Any = None, parsed: Any = None, **_: Any) -> None:
        self._finish(context, getattr(http_response, "status_code", 200) >= 400, parsed)

    def _after_error(self, context: Any = None, **_: Any) -> None:
        self._finish(context, True)

    def by_operation(self, scope: str | None = None) -> dict[str, list[AwsCall]]:
        grouped: dict[str, list[AwsCall]] = {}
        with self._lock:
            calls = list(self.calls)
        for call in calls:
            if scope is None or call.scope == scope:
                grouped.setdefault(f"{call.service}:{call.operation}", []).append(call)
        return grouped
