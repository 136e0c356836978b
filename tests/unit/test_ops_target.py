"""The commands donations-ops suggests are written for the stack they were made about (donations_ops.target)."""

from __future__ import annotations

import pytest

from donations_ops.target import Target

pytestmark = pytest.mark.unit


def test_the_local_stack_on_its_defaults_needs_only_local():
    assert Target.local_stack("http://127.0.0.1:4566", "donations-local").command("status") == (
        "donations-ops --local status"
    )


def test_another_local_stack_is_named_with_its_endpoint_and_stack_name():
    target = Target.local_stack("http://127.0.0.1:4601", "donations-two")
    assert target.command("dlq list receipt") == (
        "donations-ops --local --endpoint-url http://127.0.0.1:4601 --stack-name donations-two dlq list receipt"
    )


def test_a_deployed_stack_keeps_the_options_the_operator_gave():
    target = Target("donations-prod", region="eu-west-1")
    assert target.command("redrive receipt --force") == (
        "donations-ops --stack-name donations-prod --region eu-west-1 redrive receipt --force"
    )


def test_an_alarms_first_command_is_rewritten_for_the_local_stack():
    # As the template's AlarmDescription writes it: for a deployed stack, which on the local stack
    # fails with "You must specify a region"
    first = "donations-ops --stack-name donations-local dlq list receipt --reason sendgrid"

    assert Target(local=True).complete(first) == "donations-ops --local dlq list receipt --reason sendgrid"


def test_bare_commands_in_a_hint_become_whole_commands_and_the_rest_stays():
    hint = "SendGrid refused it: `donor fix-email don_1 --email NEW --note TEXT`; or `dlq discard receipt don_1`"
    target = Target("donations-e2e", local=True)

    completed = target.complete(hint)

    assert completed == (
        "SendGrid refused it: `donations-ops --local --stack-name donations-e2e donor fix-email don_1 "
        "--email NEW --note TEXT`; or `donations-ops --local --stack-name donations-e2e dlq discard receipt don_1`"
    )
    assert target.complete(completed) == completed  # completing twice changes nothing
    assert target.complete("the donation was not charged") == "the donation was not charged"
