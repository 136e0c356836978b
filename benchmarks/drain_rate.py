"""Drain rate: receipt messages per second through the delivery runner and the real send_receipt handler.

A moto server (in a process of its own, as the local stack runs it, on a free port) gets the stack
from template.yaml and a backlog of charged donation records (default 10,000) written straight into the Donations table,
each owed one receipt message; the template's ReceiptQueue feeds the handler, a second queue with
the same settings feeds the bare loop, each with the same messages. The SendGrid (and Stripe)
emulators answer with no added latency.

moto's ReceiveMessage cost grows with the queue's depth (it recomputes the queue's attributes over
every message for each message it returns: here about 21 ms per receive of 10 at 20 messages, 74 ms
at 100, 1.3 s at 2,000, growing linearly; sending slows the same way, so even loading 10,000
messages takes minutes), which real SQS does not do. So the backlog enters each queue through a window: before every
batch both queues are topped up to ``--window`` messages (default 20), untimed and the same for
both; ``--window 0`` puts the whole backlog in at once, to see moto's cost instead.

Then single batches alternate, timed one by one:

* handler: ``simulator.local.delivery.deliver_batch`` with the template's event source settings
  (BatchSize 10) invoking the real send_receipt handler (claim, SendGrid send, mark sent), exactly
  what the local stack's ``Poller`` does in its loop;
* bare:    ``receive_message`` (same batch size and attributes) + ``delete_message_batch``.

Rates are reported per chunk of ``--chunk`` messages (spread) and overall, until the backlog is done
or ``--max-seconds`` have passed (both loops have then processed the same number of messages).
Target: handler >= 50 % of the bare loop's messages/s.

    python -m benchmarks.drain_rate [--messages 10000] [--window 20] [--chunk 100] [--max-seconds 150]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from benchmarks.common import (
    AwsCallRecorder,
    NullSink,
    benchmark_process,
    machine,
    median,
    percentile,
    pipeline_on_moto_server,
    quiet_functions,
    table,
    verdict,
)

TARGET = 0.50
# The handler runs a batch's records side by side: these are sums over records, which may overlap.
DYNAMODB_LABEL = "    DynamoDB calls (summed over the batch's concurrent records)"
MAIL_LABEL = "    SendGrid mail send (ReceiptMailer.send, summed likewise)"


@dataclass
class DrainConfig:
    messages: int = 10_000
    chunk: int = 100
    window: int = 20
    """Messages kept in each queue: topped up from the backlog before every chunk, outside the timing.
    0 puts the whole backlog in the queues at once (then moto's per-receive cost, which grows with
    the queue's depth, dominates both loops)."""
    max_seconds: float = 150.0
    """Stop alternating after this long (both variants have then processed the same count)."""


@dataclass
class Chunk:
    variant: str
    messages: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class DrainResult:
    config: DrainConfig
    chunks: list[Chunk]
    preload_seconds: float
    backlog_left: dict[str, int]
    handler_failures: int
    aws_calls_per_message: dict[str, float]
    aws_call_ms: dict[str, float]
    seconds_in: dict[str, float]
    depth_probe_ms: float | None
    machine: str
    started_at: str
    totals: dict[str, tuple[int, float]] = field(init=False)

    def __post_init__(self) -> None:
        self.totals = {}
        for variant in ("handler", "bare"):
            mine = [c for c in self.chunks if c.variant == variant]
            self.totals[variant] = (sum(c.messages for c in mine), sum(c.seconds for c in mine))

    def rate(self, variant: str) -> float:
        count, seconds = self.totals[variant]
        return count / seconds if seconds else float("nan")

    def rates(self, variant: str) -> list[float]:
        return [c.rate for c in self.chunks if c.variant == variant]

    @property
    def ratio(self) -> float:
        return self.rate("handler") / self.rate("bare")

    def paired(self) -> list[float]:
        handler, bare = self.rates("handler"), self.rates("bare")
        return [h / b for h, b in zip(handler, bare, strict=False)]


# --------------------------------------------------------------------------- backlog


def write_records(pipeline: Any, count: int) -> None:
    """``count`` charged donations whose receipt is pending, straight into the Donations table."""
    from donations.models import Donation, DonationStatus, StepStatus, utc_now

    table_ = pipeline.clients.session.resource("dynamodb", endpoint_url=pipeline.clients.endpoint_url).Table(
        pipeline.stack.tables["DonationsTable"]
    )
    now = utc_now()
    with table_.batch_writer() as writer:
        for index in range(count):
            donation = Donation(
                donation_id=donation_id(index),
                status=DonationStatus.SUCCEEDED,
                amount=2500,
                currency="usd",
                email=f"donor{index}@example.org",
                email_masked="d***@example.org",
                name="Ada Lovelace",
                payment_method="pm_card_visa",
                save_card=False,
                request_hash="0" * 64,
                correlation_id=f"bench-{index}",
                created_at=now,
                updated_at=now,
                payment_intent_id=f"pi_bench{index}",
                payment_method_id="pm_card_visa",
                followups_published=True,
                card_status=StepStatus.NOT_REQUESTED,
                receipt_status=StepStatus.PENDING,
            )
            writer.put_item(Item=donation.model_dump(mode="json", exclude_none=True))


def donation_id(index: int) -> str:
    return f"don_bench{index:022d}"


class Backlog:
    """The receipt messages not yet in a queue; ``top_up`` moves them in, ten per SendMessageBatch."""

    def __init__(self, sqs: Any, queue_url: str, count: int) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.next_index = 0
        self.count = count
        self.in_queue = 0

    @property
    def remaining(self) -> int:
        return self.count - self.next_index

    def top_up(self, window: int) -> None:
        from donations.followups import message_attributes
        from donations.models import FollowUpMessage, Step

        target = self.count if window <= 0 else window
        while self.in_queue < target and self.next_index < self.count:
            entries = []
            for slot in range(min(10, target - self.in_queue, self.count - self.next_index)):
                index = self.next_index + slot
                message = FollowUpMessage(
                    type=Step.SEND_RECEIPT, donation_id=donation_id(index), correlation_id=f"bench-{index}"
                )
                entries.append(
                    {
                        "Id": str(slot),
                        "MessageBody": message.model_dump_json(),
                        "MessageAttributes": message_attributes(message),
                    }
                )
            self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            self.next_index += len(entries)
            self.in_queue += len(entries)

    def consumed(self, count: int) -> None:
        self.in_queue -= count


# --------------------------------------------------------------------------- the two loops


def handler_batch(sqs: Any, source: Any) -> tuple[int, int]:
    """One delivery, as the local stack's Poller makes it: (messages, failed)."""
    from simulator.local.delivery import deliver_batch

    result = deliver_batch(sqs, source)
    return result.received, len(result.failed_ids)


def bare_batch(sqs: Any, queue_url: str, batch_size: int) -> int:
    """The same receive, then one DeleteMessageBatch: what the runner does minus the handler."""
    received = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=min(10, batch_size),
        WaitTimeSeconds=0,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    ).get("Messages", [])
    if received:
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received)]
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
    return len(received)


# --------------------------------------------------------------------------- run


def run(config: DrainConfig, out: TextIO | None = None) -> DrainResult:
    out = out or sys.stdout
    with benchmark_process():
        return _run(config, out)


def _run(config: DrainConfig, out: TextIO) -> DrainResult:
    import boto3

    started_at = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    recorder = AwsCallRecorder()
    with pipeline_on_moto_server("donations-drain") as aws:
        pipeline = aws.pipeline
        try:
            print(
                f"preloading {config.messages} charged donation records into moto at 127.0.0.1:{aws.moto_port}...",
                file=out,
            )
            loops = _Loops.preload(pipeline, config)
            # Count the AWS calls of the handler path: the handler's clients are made at its first call,
            # and the runner gets a client of its own, shared by both loops, made after the hooks are in.
            recorder.install()
            loops.use(
                boto3.session.Session(region_name=pipeline.clients.region).client(
                    "sqs", endpoint_url=pipeline.clients.endpoint_url
                )
            )
            timers = Timers()
            source = timers.wrap_source(next(s for s in pipeline.event_sources() if s.name == "SendReceiptFunction"))
            timers.wrap_mailer()
            with quiet_functions(NullSink()):
                tally = loops.alternate(source, recorder, config, out)
            timers.restore()
        finally:
            recorder.uninstall()
    processed = sum(c.messages for c in tally.chunks if c.variant == "handler")
    calls = recorder.by_operation("handler")
    per_message = {name: len(group) / processed for name, group in sorted(calls.items())} if processed else {}
    left = {name: backlog.remaining + backlog.in_queue for name, backlog in loops.backlogs.items()}
    op_ms = {name: median([c.ms for c in group]) for name, group in sorted(calls.items())}
    spent = _where_the_time_goes(calls, tally.chunks, timers)
    return DrainResult(
        config,
        tally.chunks,
        loops.preload_seconds,
        left,
        tally.failures,
        per_message,
        op_ms,
        spent,
        loops.depth_probe_ms,
        machine(),
        started_at,
    )


@dataclass
class _Tally:
    """Messages and seconds per loop, cut into chunks of about ``chunk`` handler messages."""

    chunk: int
    chunks: list[Chunk] = field(default_factory=list)
    failures: int = 0
    _open: dict[str, list[float]] = field(default_factory=lambda: {"handler": [0, 0.0], "bare": [0, 0.0]})

    def add(self, name: str, count: int, seconds: float) -> None:
        self._open[name][0] += count
        self._open[name][1] += seconds

    def cut_if_full(self, out: TextIO) -> None:
        if self._open["handler"][0] < self.chunk:
            return
        self.close()
        if len(self.chunks) % 20 == 0:
            processed = sum(c.messages for c in self.chunks if c.variant == "handler")
            print(
                f"  {processed} messages each; last chunk: handler {self.chunks[-2].rate:.0f}/s, "
                f"bare {self.chunks[-1].rate:.0f}/s",
                file=out,
                flush=True,
            )

    def close(self) -> None:
        for name in ("handler", "bare"):
            if self._open[name][0]:
                self.chunks.append(Chunk(name, int(self._open[name][0]), float(self._open[name][1])))
            self._open[name] = [0, 0.0]


@dataclass
class _Loops:
    """The two queues, the receipt queue the handler drains and a bare copy, with their backlogs."""

    sqs: Any
    bare_url: str
    backlogs: dict[str, Backlog]
    preload_seconds: float
    depth_probe_ms: float | None

    @classmethod
    def preload(cls, pipeline: Any, config: DrainConfig) -> _Loops:
        sqs = pipeline.clients("sqs")
        receipt_url = pipeline.queue_url("ReceiptQueue")
        visibility = sqs.get_queue_attributes(QueueUrl=receipt_url, AttributeNames=["VisibilityTimeout"])
        bare_url = sqs.create_queue(
            QueueName="donations-drain-bare",
            Attributes={"VisibilityTimeout": visibility["Attributes"]["VisibilityTimeout"]},
        )["QueueUrl"]
        started = time.perf_counter()
        write_records(pipeline, config.messages)
        backlogs = {
            "handler": Backlog(sqs, receipt_url, config.messages),
            "bare": Backlog(sqs, bare_url, config.messages),
        }
        for backlog in backlogs.values():
            backlog.top_up(config.window)
        preload_seconds = time.perf_counter() - started
        depth_probe = probe_depth(sqs, bare_url, backlogs["bare"]) if config.window <= 0 else None
        return cls(sqs, bare_url, backlogs, preload_seconds, depth_probe)

    def use(self, sqs: Any) -> None:
        self.sqs = sqs
        for backlog in self.backlogs.values():
            backlog.sqs = sqs

    def alternate(self, source: Any, recorder: AwsCallRecorder, config: DrainConfig, out: TextIO) -> _Tally:
        """One handler batch, one bare batch, in turn, until a backlog or the time budget runs out."""
        print(
            f"alternating single batches (batch size {source.batch_size}); a chunk = {config.chunk} messages; "
            f"at most {config.max_seconds:.0f} s",
            file=out,
            flush=True,
        )
        tally = _Tally(config.chunk)
        deadline = time.monotonic() + config.max_seconds
        while time.monotonic() < deadline:
            for backlog in self.backlogs.values():  # outside the timing, the same for both
                backlog.top_up(config.window)
            started = time.perf_counter()
            with recorder.scope("handler"):
                done, failed = handler_batch(self.sqs, source)
            handler_seconds = time.perf_counter() - started
            started = time.perf_counter()
            bare_done = bare_batch(self.sqs, self.bare_url, source.batch_size)
            bare_seconds = time.perf_counter() - started
            self.backlogs["handler"].consumed(done)
            self.backlogs["bare"].consumed(bare_done)
            if not done or not bare_done:
                break
            tally.failures += failed
            tally.add("handler", done, handler_seconds)
            tally.add("bare", bare_done, bare_seconds)
            tally.cut_if_full(out)
        tally.close()  # the last, partial chunk
        return tally


def _where_the_time_goes(calls: dict[str, list[Any]], chunks: list[Chunk], timers: Timers) -> dict[str, float]:
    op_total = {name: sum(c.ms for c in group) / 1000 for name, group in calls.items()}
    spent: dict[str, float] = {
        "handler path (timed)": sum(c.seconds for c in chunks if c.variant == "handler"),
        "  runner: ReceiveMessage + DeleteMessageBatch": sum(
            v for k, v in op_total.items() if k in ("sqs:ReceiveMessage", "sqs:DeleteMessageBatch")
        ),
        "  handler invocations": timers.handler,
        DYNAMODB_LABEL: sum(v for k, v in op_total.items() if k.startswith("dynamodb:")),
        MAIL_LABEL: timers.mail,
        "    other AWS calls": sum(
            v for k, v in op_total.items() if not k.startswith(("dynamodb:", "sqs:Receive", "sqs:DeleteMessageB"))
        ),
    }
    rest = timers.handler - spent[DYNAMODB_LABEL] - spent[MAIL_LABEL] - spent["    other AWS calls"]
    if rest >= 0:  # with a batch's records overlapping, the sums exceed the invocations' time
        spent["    rest: Powertools batch/parser, logging, metrics, pydantic"] = rest
    return spent


class Timers:
    """Total time in the handler invocations and in SendGrid calls (attribution only)."""

    def __init__(self) -> None:
        self.handler = 0.0
        self.mail = 0.0
        self._restore: list[Any] = []

    def wrap_source(self, source: Any) -> Any:
        from simulator.local.delivery import EventSource

        inner = source.handler

        def timed(event: dict[str, Any], context: Any) -> Any:
            started = time.perf_counter()
            try:
                return inner(event, context)
            finally:
                self.handler += time.perf_counter() - started

        return EventSource(**{**source.__dict__, "handler": timed})

    def wrap_mailer(self) -> None:
        from donations.mail import ReceiptMailer

        inner = ReceiptMailer.send

        def timed(mailer: Any, donation: Any) -> str:
            started = time.perf_counter()
            try:
                return inner(mailer, donation)
            finally:
                self.mail += time.perf_counter() - started

        # Timing our own adapter by replacing its method for the run (restored below).
        ReceiptMailer.send = timed  # type: ignore[method-assign,assignment]
        self._restore.append(lambda: setattr(ReceiptMailer, "send", inner))

    def restore(self) -> None:
        while self._restore:
            self._restore.pop()()


def probe_depth(sqs: Any, queue_url: str, backlog: Backlog) -> float:
    """One receive + delete of ten at the full depth (moto recomputes the queue's attributes per message)."""
    started = time.perf_counter()
    done = bare_batch(sqs, queue_url, 10)
    backlog.consumed(done)
    return (time.perf_counter() - started) * 1000


def window_text(config: DrainConfig) -> str:
    if config.window <= 0:
        return "the whole backlog sits in each queue"
    return f"each queue kept at {config.window} messages (topped up untimed)"


def report(result: DrainResult, out: TextIO | None = None) -> str:
    out = out or sys.stdout
    print(
        f"\ndrain rate, {result.started_at}; {result.machine}\n"
        f"backlog {result.config.messages} receipt messages per loop, records preloaded in "
        f"{result.preload_seconds:.0f} s; {window_text(result.config)}; chunks of {result.config.chunk}; "
        f"not processed within the time budget: handler {result.backlog_left['handler']}, "
        f"bare {result.backlog_left['bare']}\n",
        file=out,
    )
    rows = []
    for variant, label in (("handler", "deliver_batch + send_receipt handler"), ("bare", "bare receive + delete")):
        rates = result.rates(variant)
        count, seconds = result.totals[variant]
        rows.append(
            [label, count, seconds, result.rate(variant), median(rates), percentile(rates, 5), percentile(rates, 95)]
        )
    table(["messages/s", "messages", "seconds", "overall", "chunk p50", "chunk p5", "chunk p95"], rows, out=out)
    _ratio_and_calls(result, out)
    bare_count, bare_seconds = result.totals["bare"]
    print(
        f"bare loop: {bare_seconds:.1f} s for {bare_count} messages = "
        f"{bare_seconds * 1000 / bare_count if bare_count else float('nan'):.2f} ms per message",
        file=out,
    )
    if result.depth_probe_ms is not None:
        print(f"one receive + delete of 10 at full depth: {result.depth_probe_ms:.0f} ms", file=out)
    if result.handler_failures:
        print(f"handler reported {result.handler_failures} failed messages (left for retry)", file=out)
    summary = (
        f"drain_rate: handler={result.rate('handler'):.0f} msg/s bare={result.rate('bare'):.0f} msg/s "
        f"ratio={result.ratio:.1%} (>= {TARGET:.0%}) {verdict(result.ratio >= TARGET)}"
    )
    print("\n" + summary, file=out, flush=True)
    return summary


def _ratio_and_calls(result: DrainResult, out: TextIO) -> None:
    paired = result.paired()
    print(file=out)
    table(
        ["ratio", "overall", "paired median", "paired p25", "paired p75", "target", "met"],
        [
            [
                "handler / bare",
                result.ratio,
                median(paired),
                percentile(paired, 25),
                percentile(paired, 75),
                f">= {TARGET:.0%}",
                verdict(result.ratio >= TARGET),
            ]
        ],
        out=out,
    )
    print(file=out)
    table(
        ["AWS calls of the handler path (deliver_batch + handler)", "per message", "median ms"],
        [
            [name, count, result.aws_call_ms.get(name, float("nan"))]
            for name, count in sorted(result.aws_calls_per_message.items(), key=lambda kv: -kv[1])
        ],
        out=out,
    )
    processed = result.totals["handler"][0]
    print(file=out)
    table(
        ["where the handler path's time goes", "seconds", "ms per message"],
        [
            [label, value, value * 1000 / processed if processed else float("nan")]
            for label, value in result.seconds_in.items()
        ],
        out=out,
    )


def parse_args(argv: Sequence[str] | None) -> DrainConfig:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.drain_rate", description=__doc__.split("\n\n")[0])
    defaults = DrainConfig()
    parser.add_argument("--messages", "-n", type=int, default=defaults.messages, help="backlog per queue")
    parser.add_argument("--chunk", type=int, default=defaults.chunk, help="messages per alternating chunk")
    parser.add_argument(
        "--window", type=int, default=defaults.window, help="messages kept in each queue (0: the whole backlog)"
    )
    parser.add_argument("--max-seconds", type=float, default=defaults.max_seconds, help="time budget for the chunks")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.chunk < 1 or args.max_seconds <= 0 or args.window < 0:
        parser.error("--messages, --chunk and --max-seconds must be positive, --window >= 0")
    return DrainConfig(messages=args.messages, chunk=args.chunk, window=args.window, max_seconds=args.max_seconds)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    report(run(parse_args(argv), out), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
