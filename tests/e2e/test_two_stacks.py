"""Two local stacks on one machine, each on its own ports, and the operator CLI acting on the right one;
and a stack that cannot charge never says "Ready."."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import boto3
import pytest
import requests

from simulator.local.process import free_port
from simulator.local.process import start_stack as start_local_stack
from tests.e2e.conftest import E2E_ENVIRONMENT, donate, stop_stack, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _ops_local(stack, *args: str) -> subprocess.CompletedProcess[str]:
    """`donations-ops --local ...` as a user of that stack runs it: with the variables it was started with."""
    env = {
        **os.environ,
        "DONATIONS_MOTO_PORT": str(urlsplit(stack.moto).port),
        "DONATIONS_STACK_NAME": stack.stack_name,
    }
    env.pop("DONATIONS_OPS_ENDPOINT", None)
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "donations_ops", "--local", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def _park_in_receipt_dlq(stack, body: str) -> None:
    sqs = boto3.client(
        "sqs",
        endpoint_url=stack.moto,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    urls = sqs.list_queues(QueueNamePrefix=stack.stack_name)["QueueUrls"]
    url = next(url for url in urls if "receiptdlq" in url.lower().replace("-", ""))
    sqs.send_message(QueueUrl=url, MessageBody=body)


def test_two_stacks_on_one_machine_each_work_and_the_ops_cli_finds_each(tmp_path):
    # Given two stacks started side by side, each on ports of its own
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(
            lambda name: start_local_stack(tmp_path / f"{name}.log", stack_name=name, extra_env=E2E_ENVIRONMENT),
            ["donations-one", "donations-two"],
        )
    try:
        # When each takes a donation
        for stack in (first, second):
            answer = donate(stack.api, f"two-stacks-{stack.stack_name}")
            assert answer.status_code == 201, answer.text
            donation_id = answer.json()["donation_id"]
            wait_for(
                lambda stack=stack, donation_id=donation_id: requests.get(
                    f"{stack.api}/donations/{donation_id}", timeout=10
                ).json()["receipt_sent"],
                what=f"the receipt on {stack.stack_name}",
            )
            other = first if stack is second else second
            assert requests.get(f"{other.api}/donations/{donation_id}", timeout=10).status_code == 404

        # And a message is parked in the second stack's receipt DLQ only
        _park_in_receipt_dlq(second, '{"schema_version": 1, "type": "send_receipt", "donation_id": "don_parked"}')

        # Then `donations-ops --local` with each stack's variables acts on that stack
        # (`dlq list` reads donation records, and this message has none: it counts it; `dlq peek` receives it)
        listed_second = _ops_local(second, "dlq", "list", "receipt", "--json")
        listed_first = _ops_local(first, "dlq", "list", "receipt", "--json")
        assert listed_second.returncode == 0, listed_second.stderr
        assert listed_first.returncode == 0, listed_first.stderr
        assert json.loads(listed_second.stdout)["without_record"] == 1
        assert json.loads(listed_first.stdout)["without_record"] == 0
        peeked_second = _ops_local(second, "dlq", "peek", "receipt", "--json")
        peeked_first = _ops_local(first, "dlq", "peek", "receipt", "--json")
        assert "don_parked" in peeked_second.stdout and peeked_second.returncode == 0, peeked_second.stderr
        assert "don_parked" not in peeked_first.stdout and peeked_first.returncode == 0, peeked_first.stderr
        assert _ops_local(first, "status").returncode == 0
    finally:
        stop_stack(first)
        stop_stack(second)


def test_a_stack_whose_charge_function_cannot_reach_stripe_never_says_ready(tmp_path):
    # Given the charge function pointed at a port where nothing listens (its Stripe client would fail)
    environment = {
        **E2E_ENVIRONMENT,
        "DONATIONS_FN_STRIPE_API_BASE": f"http://127.0.0.1:{free_port()}",
        "DONATIONS_LOCAL_READY_TIMEOUT": "2",
    }

    # When the run command starts, then it stops without "Ready.", saying which check failed
    with pytest.raises(RuntimeError, match="exited early"):
        started = start_local_stack(tmp_path / "not-ready.log", stack_name="donations-not-ready", extra_env=environment)
        stop_stack(started)  # it said "Ready." (the test fails): leave nothing running
    log = (tmp_path / "not-ready.log").read_text()
    assert "Ready." not in log
    assert "Not ready, stopping: Stripe: APIConnectionError" in log, log
