"""The local stack's moto server (simulator.local.moto_process): SQS's redrive API refused as SQS refuses it, and
the queue metrics the alarm ticker reads in one request."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from donations_ops.redrive import copy_messages, not_implemented, redrive
from donations_ops.stack_resources import Queue, Stack
from simulator.local.alarms import StatisticsQuery
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


def test_the_queue_metrics_of_several_queues_come_in_one_request_as_sqs_counts_them(moto_server):
    # Given two queues on the server: one with two messages, one of them received (in flight)
    sqs = boto3.client(
        "sqs", endpoint_url=moto_server.url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    busy = _queue(sqs, "metrics-busy")
    _queue(sqs, "metrics-idle")
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=busy.url, MessageBody=body)
    assert len(sqs.receive_message(QueueUrl=busy.url, MaxNumberOfMessages=1, VisibilityTimeout=60)["Messages"]) == 1

    # When the ticker asks for both (and a queue that does not exist)
    metrics = moto_server.queue_metrics(["metrics-busy", "metrics-idle", "metrics-gone"])

    # Then the counts are SQS's GetQueueAttributes', the age is the oldest message's, the unknown left out
    attributes = sqs.get_queue_attributes(
        QueueUrl=busy.url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert (
        metrics["metrics-busy"]["ApproximateNumberOfMessagesVisible"]
        == float(attributes["ApproximateNumberOfMessages"])
        == 1
    )
    assert metrics["metrics-busy"]["ApproximateNumberOfMessagesNotVisible"] == 1
    assert 0 <= metrics["metrics-busy"]["ApproximateAgeOfOldestMessage"] < 60
    assert metrics["metrics-idle"] == {
        "ApproximateNumberOfMessagesVisible": 0,
        "ApproximateNumberOfMessagesNotVisible": 0,
        "ApproximateAgeOfOldestMessage": 0,
    }
    assert "metrics-gone" not in metrics


def test_many_metric_statistics_in_one_request_are_what_get_metric_statistics_answers(moto_server):
    # Given datapoints of two metrics, one with dimensions, single values and a statistic set
    cloudwatch = boto3.client(
        "cloudwatch", endpoint_url=moto_server.url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    now = datetime.now(UTC).replace(microsecond=0)
    queue = (("QueueName", "receipts"),)
    for seconds_ago, value in ((50, 1.0), (30, 3.0), (29, 5.0), (5, 2.0)):
        cloudwatch.put_metric_data(
            Namespace="AWS/SQS",
            MetricData=[
                {
                    "MetricName": "ApproximateNumberOfMessagesVisible",
                    "Dimensions": [{"Name": name, "Value": value} for name, value in queue],
                    "Value": value,
                    "Timestamp": now - timedelta(seconds=seconds_ago),
                }
            ],
        )
    cloudwatch.put_metric_data(
        Namespace="Donations",
        MetricData=[
            {
                "MetricName": "ReceiptFailed",
                "StatisticValues": {"SampleCount": 2, "Sum": 7, "Minimum": 3, "Maximum": 4},
                "Timestamp": now - timedelta(seconds=10),
            }
        ],
    )
    questions = [
        StatisticsQuery(
            "AWS/SQS", "ApproximateNumberOfMessagesVisible", queue, now - timedelta(seconds=60), now, 20, statistic
        )
        for statistic in ("Maximum", "Sum", "SampleCount")
    ] + [
        StatisticsQuery("Donations", "ReceiptFailed", (), now - timedelta(seconds=30), now, 30, "Sum"),
        StatisticsQuery("Donations", "Unknown", (), now - timedelta(seconds=30), now, 30, "Sum"),
    ]

    # When the alarm ticker asks them all at once
    answers = moto_server.metric_statistics(questions)

    # Then each answer is GetMetricStatistics' own (CloudWatch API Reference: Datapoints, each with its
    # Timestamp and the asked statistic), in the order asked
    expected = [cloudwatch.get_metric_statistics(**question.as_request())["Datapoints"] for question in questions]
    assert [
        [(p["Timestamp"], p[q.statistic]) for p in answer] for q, answer in zip(questions, answers, strict=True)
    ] == [[(p["Timestamp"], p[q.statistic]) for p in answer] for q, answer in zip(questions, expected, strict=True)]
    assert sum(point["Sum"] for point in answers[1]) == 11.0 and answers[3][0]["Sum"] == 7.0 and answers[4] == []


def test_the_process_that_deploys_to_the_moto_process_does_not_load_moto(moto_server):
    # Given the local stack's way of deploying: the pipeline, against moto's server in a process of its own
    deploy = (
        "import sys\n"
        "from simulator.local.pipeline import Pipeline, ProviderEndpoints\n"
        "providers = ProviderEndpoints(stripe_api_base='http://127.0.0.1:9', sendgrid_api_host='http://127.0.0.1:9')\n"
        f"Pipeline(providers, endpoint_url={moto_server.url!r}, stack_name='deployed-from-afar').start()\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'moto'))\n"
    )
    # When it deploys the template
    done = subprocess.run(  # noqa: S603 - this interpreter, our own code, against 127.0.0.1
        [sys.executable, "-c", deploy], capture_output=True, text=True, timeout=120, check=False
    )
    # Then the stack is created, and the deploying process never imported moto: its patches are the moto
    # process's business, and importing moto's CloudFormation took 1.5 s of CPU at each stack start
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
