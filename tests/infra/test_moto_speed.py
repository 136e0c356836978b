"""moto with infra.deploy.moto_speed answers in DynamoDB's order and keeps SQS's visibility timeouts.

References nobody here wrote: DynamoDB's Query returns "results ... always sorted by the sort key
value", numbers by numeric value and strings by UTF-8 bytes (DynamoDB Developer Guide, "Query
operations", ScanIndexForward); SQS hides a received message for its visibility timeout (SQS
Developer Guide, "Amazon SQS visibility timeout").
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from infra.deploy.moto_speed import make_moto_costs_flat

pytestmark = pytest.mark.integration


@pytest.fixture
def dynamodb():
    make_moto_costs_flat()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "N"},
                {"AttributeName": "day", "AttributeType": "S"},
                {"AttributeName": "amount", "AttributeType": "N"},
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "day-index",
                    "KeySchema": [
                        {"AttributeName": "day", "KeyType": "HASH"},
                        {"AttributeName": "amount", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        )
        yield client


def test_queries_on_the_table_and_an_index_sort_numbers_by_value_not_as_text(dynamodb):
    # Given items written in a random order, with numbers whose text order differs from their value's
    numbers = [1, 2, 9, 10, 11, 100, 1000, -5, 3.5]
    random.Random(7).shuffle(numbers)
    for n in numbers:
        for pk in ("b", "a"):
            dynamodb.put_item(
                TableName="t",
                Item={"pk": {"S": pk}, "sk": {"N": str(n)}, "day": {"S": "2026-01-02"}, "amount": {"N": str(n)}},
            )

    # When they are queried on the table, on the index (both directions) and scanned
    table = dynamodb.query(
        TableName="t", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "a"}}
    )
    index = dynamodb.query(
        TableName="t",
        IndexName="day-index",
        KeyConditionExpression="#d = :d AND amount > :min",
        ExpressionAttributeNames={"#d": "day"},
        ExpressionAttributeValues={":d": {"S": "2026-01-02"}, ":min": {"N": "2"}},
        ScanIndexForward=False,
    )
    scan = dynamodb.scan(TableName="t")

    # Then each comes in DynamoDB's order: by numeric value, and a range condition compares values
    assert [float(i["sk"]["N"]) for i in table["Items"]] == sorted(float(n) for n in numbers)
    index_amounts = [float(i["amount"]["N"]) for i in index["Items"]]
    assert index_amounts == sorted((float(n) for n in numbers for _ in "ab" if n > 2), reverse=True)
    assert [(i["pk"]["S"], float(i["sk"]["N"])) for i in scan["Items"]] == sorted(
        (pk, float(n)) for pk in "ab" for n in numbers
    )


def test_a_received_message_stays_hidden_for_its_visibility_timeout_then_comes_back():
    make_moto_costs_flat()
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="m")

        # Given a message received with a visibility timeout of 1 s
        assert len(sqs.receive_message(QueueUrl=url, VisibilityTimeout=1).get("Messages", [])) == 1
        # Then it is hidden at once...
        assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []
        # ...and visible again after the timeout (bounded wait)
        deadline = time.monotonic() + 10
        again: list[dict[str, str]] = []
        while not again and time.monotonic() < deadline:
            time.sleep(0.2)
            again = sqs.receive_message(QueueUrl=url).get("Messages", [])
        assert [m["Body"] for m in again] == ["m"]


def test_metric_statistics_are_of_the_asked_metric_and_dimensions_only():
    # GetMetricStatistics returns "statistics for the specified metric" (CloudWatch API Reference,
    # GetMetricStatistics): one metric, by namespace, name and exact dimensions. (Namespaces of its own: in
    # the suite a worker's moto may hold the pipeline's metrics too.)
    make_moto_costs_flat()
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
        now = datetime.now(UTC).replace(microsecond=0)
        queue = [{"Name": "QueueName", "Value": "receipts"}]
        other_queue = [{"Name": "QueueName", "Value": "tokenize"}]
        # Given datapoints of several metrics, namespaces and dimensions, put in several calls
        for value in (1.0, 2.0, 4.0):
            cloudwatch.put_metric_data(
                Namespace="MotoSpeedTest/SQS",
                MetricData=[
                    {"MetricName": "Visible", "Dimensions": queue, "Value": value, "Timestamp": now},
                    {"MetricName": "Visible", "Dimensions": other_queue, "Value": 100 * value, "Timestamp": now},
                    {"MetricName": "Age", "Dimensions": queue, "Value": 1000 * value, "Timestamp": now},
                ],
            )
            cloudwatch.put_metric_data(
                Namespace="MotoSpeedTest/App", MetricData=[{"MetricName": "Visible", "Value": 7.0, "Timestamp": now}]
            )

        def total(namespace: str, name: str, dimensions: list[dict[str, str]]) -> float:
            points = cloudwatch.get_metric_statistics(
                Namespace=namespace,
                MetricName=name,
                Dimensions=dimensions,
                StartTime=now - timedelta(minutes=5),
                EndTime=now + timedelta(minutes=1),
                Period=360,
                Statistics=["Sum"],
            )["Datapoints"]
            return sum(point["Sum"] for point in points)

        # Then each question sums its own metric's datapoints, none of another's
        assert total("MotoSpeedTest/SQS", "Visible", queue) == 7.0
        assert total("MotoSpeedTest/SQS", "Visible", other_queue) == 700.0
        assert total("MotoSpeedTest/SQS", "Age", queue) == 7000.0
        assert total("MotoSpeedTest/App", "Visible", []) == 21.0
        assert total("MotoSpeedTest/App", "Missing", []) == 0
        # ...and the list of metrics still names every one
        listed = {
            (m["Namespace"], m["MetricName"], str(m["Dimensions"]))
            for namespace in ("MotoSpeedTest/SQS", "MotoSpeedTest/App")
            for m in cloudwatch.list_metrics(Namespace=namespace)["Metrics"]
        }
        assert len(listed) == 4


@pytest.mark.parametrize(
    "body",
    [
        '{"Resources": {"Inbox": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "from-json"}}}}',
        "Resources:\n  Inbox:\n    Type: AWS::SQS::Queue\n"
        "    Properties:\n      QueueName: !Sub 'from-${AWS::Region}'\n",
    ],
    ids=["json", "yaml"],
)
def test_a_stack_is_created_from_a_json_or_a_yaml_template(body):
    # CloudFormation takes a template "in JSON or YAML format" (CloudFormation User Guide, "Template
    # formats"); moto reads JSON ones as JSON here, YAML ones (short-form tags and all) as before
    make_moto_costs_flat()
    with mock_aws():
        cfn = boto3.client("cloudformation", region_name="us-east-1")
        # (A stack and queues of this test's own: in the suite a worker's moto holds the pipeline's too.)
        stack_name = f"formats-{uuid.uuid4().hex[:8]}"
        cfn.create_stack(StackName=stack_name, TemplateBody=body)
        [resource] = cfn.describe_stack_resources(StackName=stack_name)["StackResources"]
        queues = boto3.client("sqs", region_name="us-east-1").list_queues(QueueNamePrefix="from-")["QueueUrls"]
        boto3.client("sqs", region_name="us-east-1").delete_queue(QueueUrl=queues[0])
    assert resource["ResourceStatus"] == "CREATE_COMPLETE"
    assert [url.rsplit("/", 1)[1] for url in queues] == ["from-json" if body.startswith("{") else "from-us-east-1"]


def test_kms_keys_encrypt_sign_and_verify_as_before_and_make_a_key_pair_only_when_one_is_used():
    # Given moto with its KMS key pairs made when used, and two keys: one for encryption (as the template's),
    # one for signing. KeySpec RSA_2048 with KeyUsage SIGN_VERIFY, and RSASSA_PKCS1_V1_5_SHA_256 for it, are
    # from the AWS KMS API Reference (CreateKey, Sign), as botocore's kms model lists them
    make_moto_costs_flat()
    with mock_aws():
        kms = boto3.client("kms", region_name="us-east-1")
        encrypting = kms.create_key()["KeyMetadata"]["KeyId"]
        signing = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
        from moto.kms.models import kms_backends

        keys = kms_backends["123456789012"]["us-east-1"].keys
        # Then creating them made no key pair (the cost this saves, about 0.1 s of CPU a key)
        assert keys[encrypting].private_key._pair is None
        assert keys[signing].private_key._pair is None

        # When each is used
        secret = kms.encrypt(KeyId=encrypting, Plaintext=b"whsec_local")["CiphertextBlob"]
        signature = kms.sign(
            KeyId=signing, Message=b"donation", MessageType="RAW", SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256"
        )["Signature"]

        # Then each does what KMS does: the secret decrypts, and the signature verifies with KMS and with the
        # public key KMS gives out (the pair that signed is the pair it publishes), and not for another message
        assert kms.decrypt(CiphertextBlob=secret)["Plaintext"] == b"whsec_local"
        verified = kms.verify(
            KeyId=signing, Message=b"donation", MessageType="RAW", Signature=signature,
            SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256",
        )["SignatureValid"]  # fmt: skip
        assert verified
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding

        public = serialization.load_der_public_key(kms.get_public_key(KeyId=signing)["PublicKey"])
        public.verify(signature, b"donation", padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr]
        with pytest.raises(InvalidSignature):
            public.verify(signature, b"another", padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr]
