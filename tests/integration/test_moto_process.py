"""The local stack's moto server (simulator.local.moto_process) answers SQS's redrive API as SQS refuses it."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from donations_ops.redrive import copy_messages, not_implemented, redrive
from donations_ops.stack_resources import Queue, Stack
from simulator.local.moto_process import MotoProcess
from simulator.local.process import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoProcess]:
    server = MotoProcess(free_port()).start()
    yield server
    server.stop()


def _queue(sqs, name: str, dlq: Queue | None = None) -> Queue:  # type: ignore[no-untyped-def]
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return Queue(logical_id=name, url=url, arn=arn, dlq_arn=dlq.arn if dlq else None)


def test_a_redrive_through_moto_falls_back_to_the_copy_without_a_traceback(moto_server, capfd):
    # Given a DLQ with two messages, on the moto server the local stack runs
    sqs = boto3.client(
        "sqs", endpoint_url=moto_server.url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    dlq = _queue(sqs, "work-dlq")
    source = _queue(sqs, "work", dlq)
    for body in ("one", "two"):
        sqs.send_message(QueueUrl=dlq.url, MessageBody=body)
    stack = Stack(name="local", queues={"work": source, "work-dlq": dlq})
    capfd.readouterr()

    # When donations-ops redrives it (move task first, as against AWS)
    with pytest.raises(sqs.exceptions.UnsupportedOperation) as refused:
        sqs.start_message_move_task(SourceArn=dlq.arn, DestinationArn=source.arn)
    result = redrive(lambda _: sqs, stack, dlq)

    # Then moto answers SQS's documented refusal (botocore's sqs model lists UnsupportedOperation for
    # StartMessageMoveTask), not a 500, and the copy moves both messages
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert not_implemented(refused.value) == "UnsupportedOperation from the endpoint"
    assert (result.method, result.moved, result.fallback_reason) == (
        "copy", 2, "StartMessageMoveTask not available: UnsupportedOperation from the endpoint"
    )  # fmt: skip
    # And the server printed nothing (moto's 500 came with a 50-line traceback in the run command's terminal)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert copy_messages(sqs, dlq_url=dlq.url, destination_url=source.url).moved == 0  # nothing left behind
