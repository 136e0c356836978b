"""One execution environment's life, for benchmarks/cold_donor.py: INIT, the first donation, then warm ones.

Run as a script by a fresh interpreter (``python -S``: nothing on the path but the standard library and
the function's and layer's folders, as on Lambda). Only the standard library is imported before the
handler, so INIT pays for everything the function loads. Lambda's runtime, between invocations, sets
``_X_AMZN_TRACE_ID`` (sampled, so X-Ray records the invocation as it does for a sampled request) and
passes a context; this does the same. Prints one JSON line; the parent reads nothing else from stdout.

``--warm-up SECONDS``: the events file starts with the form's warm-up (POST /warmup), invoked right
after INIT; the child then waits SECONDS (the donor typing) before the donations. ``--snapstart``:
after INIT, SnapStart's hooks run as Lambda runs them around a snapshot and a restore
(donations.snapstart.before_snapshot, after_restore: connections closed, keys forgotten), so the
first donation is the one a restored environment makes (the restore itself is not modelled).

``--instrument`` adds attribution (never used for the timed samples): the time each AWS call takes
(botocore's before-call/after-call events), the Stripe charge, the key fetch; and markers on stderr
around INIT and the first invocation, for ``-X importtime``.

    python -S cold_donor_child.py PATHS_JSON HANDLER EVENTS_FILE [--warm-up SECONDS] [--snapstart] [--instrument]
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import uuid
from typing import Any

STARTED = time.time()  # wall clock, comparable with the parent's
INIT_MARKER = "--- INIT ---"
FIRST_MARKER = "--- first invocation ---"
END_MARKER = "--- end of first invocation ---"


class Context:
    """The invocation context Lambda's runtime passes (the attributes Powertools reads)."""

    def __init__(self, function_name: str, memory_mb: str, timeout_s: float) -> None:
        self.function_name = function_name
        self.function_version = "1"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}:live"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "2026/11/30/[1]0123456789abcdef"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


class Attribution:
    """Time spent in AWS calls (by service), the Stripe charge and the key fetch, per invocation."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    def add(self, what: str, ms: float) -> None:
        self.ms[what] = self.ms.get(what, 0.0) + ms

    def install(self) -> None:
        from botocore import handlers

        from donations import snapstart
        from donations.payments import StripePayments
        from donations.secrets import ApiKeys

        specs = [("before-call", self._before), ("after-call", self._after), ("after-call-error", self._after)]
        handlers.BUILTIN_HANDLERS.extend(specs)  # the clients built from here on
        for client in snapstart.watched()[0]:  # those built during INIT
            for event, handler in specs:
                if hasattr(client, "meta"):
                    client.meta.events.register(event, handler)
        self._time(StripePayments, "charge", "Stripe PaymentIntent (StripePayments.charge)")
        self._time(ApiKeys, "get", "Stripe key (ApiKeys.get: cache or Parameter Store)")

    def _before(self, model: Any = None, context: Any = None, **_: Any) -> None:
        if context is not None and model is not None:
            context["_cold_donor"] = (model.service_model.service_name, time.perf_counter())

    def _after(self, context: Any = None, **_: Any) -> None:
        started = (context or {}).pop("_cold_donor", None)
        if started is not None:
            service, at = started
            self.add(f"AWS {service}", (time.perf_counter() - at) * 1000)

    def _time(self, owner: type, name: str, label: str) -> None:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            at = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.add(label, (time.perf_counter() - at) * 1000)

        setattr(owner, name, timed)


def _trace_header() -> str:
    root = f"1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    return f"Root={root};Parent={uuid.uuid4().hex[:16]};Sampled=1"


def _invoke(handler: Any, event: dict[str, Any], function_name: str, memory: str, timeout: float) -> dict[str, Any]:
    os.environ["_X_AMZN_TRACE_ID"] = _trace_header()
    context = Context(function_name, memory, timeout)
    wall, cpu = time.perf_counter(), time.process_time()
    answer = handler.lambda_handler(event, context)
    return {
        "wall": (time.perf_counter() - wall) * 1000,
        "cpu": (time.process_time() - cpu) * 1000,
        "status": answer.get("statusCode"),
    }


def main(argv: list[str]) -> None:
    paths, module_name, events_file = json.loads(argv[1]), argv[2], argv[3]
    options = argv[4:]
    instrument = "--instrument" in options
    typing_seconds = float(options[options.index("--warm-up") + 1]) if "--warm-up" in options else None
    sys.path[0:0] = paths
    with open(events_file, encoding="utf-8") as file:
        events = json.load(file)
    function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
    memory, timeout = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], float(os.environ.get("FUNCTION_TIMEOUT", "10"))

    sys.stderr.write(INIT_MARKER + "\n")
    sys.stderr.flush()
    wall, cpu = time.perf_counter(), time.process_time()
    handler = importlib.import_module(module_name)  # Lambda's INIT
    init = {"wall": (time.perf_counter() - wall) * 1000, "cpu": (time.process_time() - cpu) * 1000}
    attribution = Attribution() if instrument else None
    if attribution is not None:
        attribution.install()
    report: dict[str, Any] = {"started": STARTED, "init": init}
    if "--snapstart" in options:
        from donations import snapstart

        snapstart.before_snapshot()
        snapstart.after_restore()
    if typing_seconds is not None:
        report["warm_up"] = _invoke(handler, events.pop(0), function_name, memory, timeout)
        time.sleep(typing_seconds)  # the donor fills in the form; the environment waits, as Lambda's does

    invocations = []
    modules_at_init = len(sys.modules)
    for number, event in enumerate(events):
        if number == 0:
            sys.stderr.write(FIRST_MARKER + "\n")
            sys.stderr.flush()
        if attribution is not None:
            attribution.ms = {}
        invocation = _invoke(handler, event, function_name, memory, timeout)
        invocation["attribution"] = dict(attribution.ms) if attribution is not None else {}
        invocations.append(invocation)
        if number == 0:
            invocation["modules_imported"] = len(sys.modules) - modules_at_init
            sys.stderr.write(END_MARKER + "\n")
            sys.stderr.flush()
    print(json.dumps({**report, "invocations": invocations}))


if __name__ == "__main__":
    main(sys.argv)
