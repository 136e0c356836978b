"""donations-ops against the template deployed in moto: depths, DLQ contents, alarms, redrive and replay."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from donations.models import Attention, FollowUpMessage, Step, StepStatus
from donations.ports import ParkedMessage
from donations_ops.alarms import stack_alarms
from donations_ops.aws import LOCAL_ENDPOINT, make_clients, resolve_endpoint
from donations_ops.cli import main
from donations_ops.redrive import Pacer, copy_messages, redrive
from donations_ops.stack_resources import QueueNotFound, discover, resolve_dlq
from tests.support.keys import a_key
from tests.support.world import DONATION as SAMPLE

pytestmark = pytest.mark.integration

DONATION = {**SAMPLE, "save_card": False}
BOUNCING = "bounce@blocked.example"


# --------------------------------------------------------------------------- helpers


def ops(pipeline: Any, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process against the moto stack; return (exit code, stdout, stderr)."""
    capsys.readouterr()  # drop what the consumers logged (JSON lines on stdout) before this command
    code = main(["--stack-name", pipeline.stack.stack_name, *args], clients=pipeline.clients)
    out, err = capsys.readouterr()
    return code, out, err


def ops_json(pipeline: Any, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code, out, err = ops(pipeline, capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def donate(world: Any, key: str, **changes: Any) -> str:
    answer = world.post({**DONATION, **changes}, key=a_key(key))
    assert answer.status == 201, answer.body
    return str(answer.body["donation_id"])


def park_bouncing_receipt(world: Any, key: str) -> str:
    """A receipt SendGrid refuses: the consumer parks it at once, reason in the message attributes."""
    world.sendgrid.reject_recipient("blocked.example")
    donation_id = donate(world, key, email=BOUNCING)
    world.drain()
    return donation_id


def park_directly(world: Any, donation_id: str, reason: str = "send_receipt:sendgrid:http_503") -> str:
    """Put a message in ReceiptDLQ shaped like the consumer's parked ones (fast; no delivery)."""
    body = FollowUpMessage(type=Step.SEND_RECEIPT, donation_id=donation_id).model_dump_json()
    attributes = {
        "donation_id": donation_id,
        "type": Step.SEND_RECEIPT.value,
        "correlation_id": f"corr-{donation_id}",
        "failure_reason": reason,
        "failed_step": Step.SEND_RECEIPT.value,
        "parked_at": "2024-01-01T00:00:00+00:00",
    }
    response = world.sqs.send_message(
        QueueUrl=world.queue_url("receipt_dlq"),
        MessageBody=body,
        MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
    )
    return str(response["MessageId"])


def park_transient(world: Any, key: str) -> str:
    """A charged donation whose receipt exhausted its receives (an outage), parked as SQS moves it: the
    record says why (the consumer wrote it on the last receive), the message carries no reason."""
    donation_id = donate(world, key)
    world.clear_queue("receipt")
    body = FollowUpMessage(type=Step.SEND_RECEIPT, donation_id=donation_id).model_dump_json()
    attributes = {"donation_id": donation_id, "type": Step.SEND_RECEIPT.value}
    world.wiring.store.record_step_failure(
        donation_id,
        Step.SEND_RECEIPT,
        "send_receipt:sendgrid:http_503:retries_exhausted",
        parked=ParkedMessage("m-1", body, attributes, 6, permanent=False),
    )
    world.sqs.send_message(
        QueueUrl=world.queue_url("receipt_dlq"),
        MessageBody=body,
        MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
    )
    return donation_id


def attributes_of(message: dict[str, Any]) -> dict[str, str]:
    return {name: value["StringValue"] for name, value in message.get("MessageAttributes", {}).items()}


@pytest.fixture
def alarm_states(pipeline: Any) -> Iterator[Any]:
    """The CloudWatch client; every alarm is set back to OK afterwards (the stack outlives the test)."""
    cloudwatch = pipeline.clients("cloudwatch")
    yield cloudwatch
    for name in pipeline.stack.alarms.values():
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="reset by test")


# --------------------------------------------------------------------------- status and alarms


def test_status_shows_depths_and_a_parked_message_without_consuming_it(world, pipeline, capsys):
    # Given a parked receipt in ReceiptDLQ
    donation_id = "don_status"
    park_directly(world, donation_id)

    # When the operator looks at the status
    code, out, err = ops(pipeline, capsys, "status")

    # Then the table shows each queue next to its DLQ, and the DLQ's message
    assert code == 0, err
    assert "\x1b[" not in out  # no colour codes when stdout is not a terminal
    receipt_dlq_row = next(line for line in out.splitlines() if "ReceiptDLQ" in line)
    assert "DLQ of ReceiptQueue" in receipt_dlq_row
    assert " 1 " in receipt_dlq_row and "peek" in receipt_dlq_row
    assert f"{pipeline.stack.stack_name}-receipt-dlq-not-empty" in out
    status = ops_json(pipeline, capsys, "status")
    rows = {row["logical_id"]: row for row in status["queues"]}
    # each queue, then its DLQ
    assert list(rows) == ["TokenizeQueue", "TokenizeDLQ", "ReceiptQueue", "ReceiptDLQ", "RenewalQueue", "RenewalDLQ"]
    assert (rows["ReceiptDLQ"]["visible"], rows["ReceiptDLQ"]["in_flight"], rows["ReceiptDLQ"]["role"]) == (1, 0, "dlq")
    assert rows["ReceiptDLQ"]["age_source"] == "peek" and 0 <= rows["ReceiptDLQ"]["oldest_age_seconds"] < 60
    assert rows["ReceiptQueue"]["visible"] == rows["TokenizeDLQ"]["visible"] == 0
    assert status["problems"] == ["ReceiptDLQ holds 1 message(s)"]
    # And looking consumed nothing
    [parked] = world.queued("receipt_dlq")
    assert attributes_of(parked)["donation_id"] == donation_id
    # And --fail-on-alarm turns a non-empty DLQ into exit code 1
    assert ops(pipeline, capsys, "status", "--fail-on-alarm")[0] == 1


def _age_metric(pipeline: Any, queue_logical_id: str, seconds: float) -> None:
    """SQS's age metric for a queue (AWS publishes it; moto only has what is put)."""
    queue_name = pipeline.stack.queues[queue_logical_id].rsplit("/", 1)[-1]
    pipeline.clients("cloudwatch").put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[
            {
                "MetricName": "ApproximateAgeOfOldestMessage",
                "Dimensions": [{"Name": "QueueName", "Value": queue_name}],
                "Value": seconds,
                "Unit": "Seconds",
            }
        ],
    )


def test_status_prefers_cloudwatch_age_when_the_metric_exists(world, pipeline, capsys):
    # Given a message waiting in TokenizeQueue and SQS's age metric for it (below the backlog threshold)
    world.send_follow_up("tokenize", "don_waiting")
    _age_metric(pipeline, "TokenizeQueue", 75.0)

    rows = {row["logical_id"]: row for row in ops_json(pipeline, capsys, "status")["queues"]}
    _, out, _ = ops(pipeline, capsys, "status")

    assert (rows["TokenizeQueue"]["oldest_age_seconds"], rows["TokenizeQueue"]["age_source"]) == (75.0, "cloudwatch")
    row = next(line for line in out.splitlines() if "TokenizeQueue" in line and "source" in line)
    assert "1m 15s" in row and "cloudwatch" in row


def test_status_never_shows_an_age_for_an_empty_queue(world, pipeline, capsys):
    # Given an age CloudWatch still holds from the last minutes, for a queue that is empty now
    _age_metric(pipeline, "ReceiptQueue", 293.0)

    rows = {row["logical_id"]: row for row in ops_json(pipeline, capsys, "status")["queues"]}
    _, out, _ = ops(pipeline, capsys, "status")

    # Then no age is shown for it (an age would be a gone message's)
    assert (rows["ReceiptQueue"]["oldest_age_seconds"], rows["ReceiptQueue"]["age_source"]) == (None, "empty")
    row = next(line for line in out.splitlines() if "ReceiptQueue" in line and "source" in line)
    assert "4m 53s" not in row and "empty" in row


def test_alarm_states_and_fail_on_alarm(world, pipeline, capsys, alarm_states):
    # Given a healthy, empty pipeline
    assert ops(pipeline, capsys, "status", "--fail-on-alarm")[0] == 0
    # When an alarm fires (moto never evaluates alarms: set its state)
    name = pipeline.stack.alarms["ReceiptDLQAlarm"]
    alarm_states.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="Threshold Crossed: 1 datapoint")

    code, out, _ = ops(pipeline, capsys, "alarms", "--fail-on-alarm")

    # Then the alarm table says so and the exit code is 1
    assert code == 1
    row = next(line for line in out.splitlines() if name in line)
    assert "ALARM" in row and "Threshold Crossed" in row
    listed = ops_json(pipeline, capsys, "alarms")
    assert {a["name"] for a in listed["alarms"]} == set(pipeline.stack.alarms.values())
    assert listed["problems"] == [f"alarm {name} is in ALARM"]
    assert ops(pipeline, capsys, "alarms")[0] == 0  # without --fail-on-alarm it is only a report


def test_alarms_are_found_by_prefix_even_though_moto_does_not_list_them_as_stack_resources(pipeline):
    stack = discover(pipeline.clients, pipeline.stack.stack_name)
    assert stack.alarm_names == ()  # moto skipped them; the local deploy created them through CloudWatch
    assert {a.name for a in stack_alarms(pipeline.clients, stack)} == set(pipeline.stack.alarms.values())


# --------------------------------------------------------------------------- dlq list


def test_dlq_list_shows_why_a_message_was_parked_and_receives_nothing(world, pipeline, capsys):
    donation_id = park_bouncing_receipt(world, "key-list")

    code, out, err = ops(pipeline, capsys, "dlq", "list", "receipt")

    assert code == 0, err
    assert "ReceiptDLQ: 1 message(s) in the DLQ" in out and "nothing was received" in out
    row = next(line for line in out.splitlines() if donation_id in line)
    assert "parked" in row and "permanent" in row and "send_receipt:sendgrid:http_400" in row
    assert "bounce" not in out and "blocked.example" not in out  # never the donor's address
    listed = ops_json(pipeline, capsys, "dlq", "list", "ReceiptDLQ")
    [row] = listed["rows"]
    expected = (donation_id, "parked", "permanent", False)
    assert (row["donation_id"], row["state"], row["kind"], row["redrive"]) == expected
    assert row["reason"].startswith("send_receipt:sendgrid:http_400")
    assert (listed["dlq_messages"], listed["without_record"]) == (1, 0)
    # Still there after two listings, and never received: its first receive is this one
    [parked] = world.queued("receipt_dlq")
    assert parked["Attributes"]["ApproximateReceiveCount"] == "1"


def test_dlq_peek_receives_and_hands_back_messages_without_a_donation(world, pipeline, capsys):
    park_directly(world, "don_unknown")  # no such donation: only a receive shows it

    listed = ops_json(pipeline, capsys, "dlq", "list", "receipt")
    peeked = ops_json(pipeline, capsys, "dlq", "peek", "receipt")

    assert (listed["rows"], listed["without_record"]) == ([], 1)
    [message] = peeked["messages"]
    assert (message["donation_id"], message["reason_source"]) == ("don_unknown", "message")
    assert len(world.queued("receipt_dlq")) == 1


def test_dlq_names_resolve_from_logical_ids_short_names_and_queue_names(pipeline, capsys):
    stack = discover(pipeline.clients, pipeline.stack.stack_name)
    receipt_dlq = stack.queues["ReceiptDLQ"]
    for name in ("ReceiptDLQ", "receipt", "receipt-dlq", "receipt_dlq", "RECEIPT", receipt_dlq.name, receipt_dlq.url):
        assert resolve_dlq(stack, name) is receipt_dlq, name
    assert resolve_dlq(stack, "tokenize").logical_id == "TokenizeDLQ"
    assert stack.source_of(receipt_dlq).logical_id == "ReceiptQueue"
    with pytest.raises(QueueNotFound):
        resolve_dlq(stack, "ReceiptQueue")  # a source queue is not a DLQ
    code, _, err = ops(pipeline, capsys, "dlq", "list", "nope")
    assert code == 2 and "no dead-letter queue 'nope'" in err and "ReceiptDLQ" in err


# --------------------------------------------------------------------------- redrive and replay


@pytest.mark.slow  # about 6 s: six receives, each waiting out the template's 1 s batching window
def test_after_an_outage_redrive_brings_the_receipts_back_and_they_are_sent(world, pipeline, capsys):
    # Given two receipts that exhausted their receives during a SendGrid outage (moved by SQS redrive)
    ids = [donate(world, f"key-outage-{n}") for n in range(2)]
    world.sendgrid.faults.add("http_error", status=503)
    world.deliver_until_dead_lettered("receipt")
    assert len(world.queued("receipt_dlq")) == 2
    # Then the listing finds the reason on the donation records (SQS moved them with their original attributes)
    listed = ops_json(pipeline, capsys, "dlq", "list", "receipt")["rows"]
    assert sorted(m["donation_id"] for m in listed) == sorted(ids)
    assert all(m["state"] == "parked" and m["kind"] == "transient" and m["redrive"] for m in listed)
    assert all("retries_exhausted" in m["reason"] for m in listed)

    # When the outage is over and the operator redrives the DLQ
    world.sendgrid.faults.clear()
    code, out, err = ops(pipeline, capsys, "redrive", "receipt", "--note", "INC-7 SendGrid outage over")

    # Then moto's missing move task is replaced by the copy, and every message is back in its queue
    assert code == 0, err
    assert "StartMessageMoveTask not available" in out
    assert "Moved 2 message(s) from ReceiptDLQ to ReceiptQueue" in out
    assert world.queued("receipt_dlq") == []
    assert sorted(attributes_of(m)["donation_id"] for m in world.queued("receipt")) == sorted(ids)
    assert all(world.record(d).attention is Attention.REDRIVEN for d in ids)
    # And delivering them completes the donations; the redrive count and the note survive the redrive
    world.drain()
    for donation_id in ids:
        record = world.record(donation_id)
        assert record.receipt_status is StepStatus.DONE and record.failed_step is None
        assert (record.attention_step, record.redrives) == (None, 1)
        assert record.operator_log[-1]["note"] == "INC-7 SendGrid outage over"
        assert len(world.sendgrid.outbox_for(donation_id)) == 1


def test_replay_moves_exactly_one_message(world, pipeline, capsys):
    first, second = park_directly(world, "don_first"), park_directly(world, "don_second")
    original = {m["MessageId"]: m for m in world.queued("receipt_dlq")}[first]

    code, out, err = ops(pipeline, capsys, "replay", "receipt", first)

    assert code == 0, err
    assert f"Replayed {first} from ReceiptDLQ to ReceiptQueue" in out
    assert [m["MessageId"] for m in world.queued("receipt_dlq")] == [second]
    [replayed] = world.queued("receipt")
    assert replayed["Body"] == original["Body"]
    assert attributes_of(replayed) == attributes_of(original)


def test_replay_of_an_unknown_message_id_fails_clearly_and_moves_nothing(world, pipeline, capsys):
    parked = park_directly(world, "don_stays")

    code, out, err = ops(pipeline, capsys, "replay", "receipt", "00000000-0000-0000-0000-000000000000")

    assert code == 1 and out == ""
    assert "message 00000000-0000-0000-0000-000000000000 is not in the DLQ" in err
    assert [m["MessageId"] for m in world.queued("receipt_dlq")] == [parked]  # handed back, visible at once
    assert world.queued("receipt") == []


def test_dry_run_and_max(world, pipeline, capsys):
    ids = [park_transient(world, f"key-max-{n}") for n in range(3)]

    code, out, _ = ops(pipeline, capsys, "redrive", "receipt", "--dry-run")
    assert code == 0 and "Would move 3 message(s) from ReceiptDLQ to ReceiptQueue" in out
    assert len(world.queued("receipt_dlq")) == 3

    result = ops_json(pipeline, capsys, "redrive", "receipt", "--max", "2")
    assert (result["method"], len(result["moved"]), result["ok"], result["exit_code"]) == ("copy", 2, True, 0)
    assert set(result["moved"]) < set(ids)
    assert len(world.queued("receipt_dlq")) == 1 and len(world.queued("receipt")) == 2


def test_rate_limit_spaces_the_sends(world, pipeline):
    count, rate = 4, 10.0
    for n in range(count):
        park_directly(world, f"don_rate_{n}")

    started = time.monotonic()
    result = copy_messages(
        world.sqs, dlq_url=world.queue_url("receipt_dlq"), destination_url=world.queue_url("receipt"), rate=rate
    )
    elapsed = time.monotonic() - started

    assert result.moved == count and result.ok
    assert elapsed >= (count - 1) / rate
    assert len(world.queued("receipt")) == count


def test_pacer_waits_one_interval_between_calls():
    now, sleeps = [100.0], []

    def sleep(seconds: float) -> None:
        sleeps.append(round(seconds, 6))
        now[0] += seconds

    pacer = Pacer(4.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        pacer.wait()
    assert sleeps == [0.25, 0.25]


def test_a_failed_send_never_deletes_the_dlq_message(world):
    parked = sorted(park_directly(world, f"don_keep_{n}") for n in range(2))

    result = copy_messages(world.sqs, dlq_url=world.queue_url("receipt_dlq"), destination_url=world.missing_queue_url())

    assert result.moved == 0 and not result.ok
    assert "failed" in (result.error or "")
    # Both still in the DLQ, and visible again at once (handed back, not left to time out)
    assert sorted(m["MessageId"] for m in world.queued("receipt_dlq")) == parked


class FailingDelete:
    """SQS whose DeleteMessage fails: what a crash (or an expired handle) between send and delete looks like."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def delete_message(self, **arguments: Any) -> Any:
        raise ClientError({"Error": {"Code": "ReceiptHandleIsInvalid", "Message": "expired"}}, "DeleteMessage")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_a_failed_delete_after_the_send_duplicates_and_never_loses(world):
    parked = park_directly(world, "don_twice")

    result = copy_messages(
        FailingDelete(world.sqs),
        dlq_url=world.queue_url("receipt_dlq"),
        destination_url=world.queue_url("receipt"),
        visibility_timeout=0,  # so the test sees it back in the DLQ at once
    )

    assert (result.moved, result.not_deleted, result.ok) == (0, [parked], False)
    assert [m["MessageId"] for m in world.queued("receipt_dlq")] == [parked]
    assert [attributes_of(m)["donation_id"] for m in world.queued("receipt")] == ["don_twice"]


# --------------------------------------------------------------------------- the AWS move task path


class MoveTaskSqs:
    """moto's SQS plus the message move task moto lacks (or a chosen error from StartMessageMoveTask)."""

    def __init__(self, real: Any, *, error: Exception | None = None, statuses: tuple[str, ...] = ()) -> None:
        self._real = real
        self._error = error
        self._statuses = list(statuses)
        self.started: list[dict[str, Any]] = []
        self.polls = 0

    def start_message_move_task(self, **arguments: Any) -> dict[str, Any]:
        self.started.append(arguments)
        if self._error is not None:
            raise self._error
        return {"TaskHandle": "task-1"}

    def list_message_move_tasks(self, **arguments: Any) -> dict[str, Any]:
        self.polls += 1
        if not self._statuses:
            raise NotImplementedError("The list_message_move_tasks action has not been implemented")
        status = self._statuses.pop(0) if len(self._statuses) > 1 else self._statuses[0]
        task = {"Status": status, "ApproximateNumberOfMessagesMoved": 3 if status == "COMPLETED" else 1}
        return {"Results": [{**task, "TaskHandle": "task-1"} if status == "RUNNING" else task]}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _WithSqs:
    """The pipeline's clients, with another SQS."""

    def __init__(self, pipeline: Any, sqs: Any) -> None:
        self._pipeline, self._sqs = pipeline, sqs

    def __call__(self, service: str) -> Any:
        return self._sqs if service == "sqs" else self._pipeline.clients(service)

    def resource(self, service: str) -> Any:
        return self._pipeline.clients.resource(service)


def _with_sqs(pipeline: Any, sqs: Any) -> Any:
    return _WithSqs(pipeline, sqs)


def test_on_aws_redrive_starts_a_move_task_and_waits_for_it(pipeline):
    sqs = MoveTaskSqs(pipeline.clients("sqs"), statuses=("RUNNING", "RUNNING", "COMPLETED"))
    clients = _with_sqs(pipeline, sqs)
    stack = discover(clients, pipeline.stack.stack_name)
    dlq = resolve_dlq(stack, "receipt")

    result = redrive(clients, stack, dlq, rate=5, sleep=lambda _: None)

    assert sqs.started == [
        {
            "SourceArn": dlq.arn,
            "DestinationArn": stack.queues["ReceiptQueue"].arn,
            "MaxNumberOfMessagesPerSecond": 5,
        }
    ]
    assert (result.method, result.task_handle, result.task_status, result.moved, result.ok) == (
        "move-task",
        "task-1",
        "COMPLETED",
        3,
        True,
    )
    assert sqs.polls == 3


def test_a_started_task_whose_progress_cannot_be_read_is_not_copied_as_well(world, pipeline, capsys):
    park_transient(world, "key-task")
    [parked] = [m["MessageId"] for m in world.queued("receipt_dlq")]
    sqs = MoveTaskSqs(world.sqs)  # starts, but ListMessageMoveTasks is missing

    capsys.readouterr()
    code = main(["--stack-name", pipeline.stack.stack_name, "redrive", "receipt"], clients=_with_sqs(pipeline, sqs))

    out = capsys.readouterr().out
    assert code == 0 and "Move task task-1" in out and "UNKNOWN" in out and "cannot poll" in out
    assert [m["MessageId"] for m in world.queued("receipt_dlq")] == [parked]  # left to the task, not copied


def test_a_moto_server_500_falls_back_to_the_copy_but_access_denied_does_not(world, pipeline, capsys):
    park_transient(world, "key-fallback")
    server_error = ClientError(
        {"Error": {"Code": "500", "Message": "<html>"}, "ResponseMetadata": {"HTTPStatusCode": 500}},
        "StartMessageMoveTask",
    )
    capsys.readouterr()
    code = main(
        ["--stack-name", pipeline.stack.stack_name, "redrive", "receipt"],
        clients=_with_sqs(pipeline, MoveTaskSqs(world.sqs, error=server_error)),
    )
    assert code == 0 and "Moved 1 message(s)" in capsys.readouterr().out

    park_transient(world, "key-denied")
    denied = ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "not allowed"}, "ResponseMetadata": {"HTTPStatusCode": 403}},
        "StartMessageMoveTask",
    )
    code = main(
        ["--stack-name", pipeline.stack.stack_name, "redrive", "receipt"],
        clients=_with_sqs(pipeline, MoveTaskSqs(world.sqs, error=denied)),
    )
    assert code == 2 and "AccessDenied" in capsys.readouterr().err
    assert len(world.queued("receipt_dlq")) == 1  # a real refusal is reported, not worked around


# --------------------------------------------------------------------------- configuration errors


def test_an_unknown_stack_is_a_configuration_error(pipeline, capsys):
    code = main(["--stack-name", "no-such-stack", "status"], clients=pipeline.clients)

    _, err = capsys.readouterr()
    assert code == 2
    assert "stack 'no-such-stack' not found" in err


def test_usage_errors_exit_2(pipeline, capsys):
    assert main(["redrive", "receipt", "--rate", "0"], clients=pipeline.clients) == 2
    assert main([], clients=pipeline.clients) == 2
    assert "usage: donations-ops" in capsys.readouterr().err


def test_the_target_endpoint_comes_from_the_flag_the_environment_or_local():
    assert (
        resolve_endpoint("http://flag:1", local=True, environ={"DONATIONS_OPS_ENDPOINT": "http://env:2"})
        == "http://flag:1"
    )
    assert resolve_endpoint(None, local=True, environ={"DONATIONS_OPS_ENDPOINT": "http://env:2"}) == "http://env:2"
    assert resolve_endpoint(None, local=True, environ={}) == LOCAL_ENDPOINT
    assert resolve_endpoint(None, local=False, environ={}) is None  # real AWS
    local = make_clients(endpoint_url=LOCAL_ENDPOINT, local=True)
    assert local("sqs").meta.endpoint_url == LOCAL_ENDPOINT
    assert local.session.get_credentials().access_key == "testing"  # never the user's real credentials


def test_local_targets_the_moto_port_and_stack_name_the_run_command_was_given(pipeline, monkeypatch, capsys):
    # Two local stacks on one machine: the second runs with DONATIONS_MOTO_PORT and DONATIONS_STACK_NAME.
    assert resolve_endpoint(None, local=True, environ={"DONATIONS_MOTO_PORT": "4601"}) == "http://127.0.0.1:4601"
    assert resolve_endpoint(None, local=False, environ={"DONATIONS_MOTO_PORT": "4601"}) is None
    assert resolve_endpoint("http://flag:1", local=True, environ={"DONATIONS_MOTO_PORT": "4601"}) == "http://flag:1"

    monkeypatch.setenv("DONATIONS_STACK_NAME", pipeline.stack_name)
    assert main(["--local", "status"], clients=pipeline.clients) == 0
    assert main(["--local", "--stack-name", "donations-local", "status"], clients=pipeline.clients) == 2
    assert "donations-local" in capsys.readouterr().err
