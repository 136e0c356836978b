"""The January statements run on its schedule (template.yaml's StatementsRunRule on the schedule-renewals
function): each donor queued once, a rerun queues nothing, a run cut short is continued by the next."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from donations.identifiers import legacy_donor_key
from donations.statement_run import STATEMENTS_EVENT, run_statements
from tests.integration.test_statements import deliver_everything, ops, statements_in_outbox
from tests.support.gifts import Gift, charged_donation, write_gifts

# Many statements at once, and nothing here is about timeouts (tests/conftest.py, deployed_mail_timeout)
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("deployed_mail_timeout")]

YEAR = 2026
DONORS = 45
ON_THE_DAY = f"{YEAR + 1}-01-15T06:00:00+00:00"


class FunctionKilled(Exception):
    """The Lambda timeout (or a crash) ended the run between two batches."""


def a_year_of_donors() -> list[Gift]:
    gifts = [
        Gift(f"donor{n}@example.org", f"Donor {n}", 1_000 + n, "usd", f"{YEAR}-{1 + n % 12:02d}-05T10:00:00.000Z")
        for n in range(DONORS)
    ]
    # a monthly donor has three gifts in the year: still one statement
    gifts += [Gift("donor0@example.org", "Donor 0", 500, "usd", f"{YEAR}-{m}-20T09:00:00.000Z") for m in ("04", "09")]
    return gifts


def scheduled_run(world: Any, at: str = ON_THE_DAY) -> dict[str, Any]:
    """What EventBridge invokes on the day (the rule's constant input; the time given, as the local stack does)."""
    outcome: dict[str, Any] = world.pipeline.invoke("ScheduleRenewalsFunction", {"run": STATEMENTS_EVENT, "time": at})
    return outcome


def killed_after(world: Any, batches: int) -> Any:
    """The function's SQS client dies after ``batches`` SendMessageBatch calls; returns the hook to remove."""
    calls = Counter[str]()

    def count(**_: Any) -> None:
        calls["sent"] += 1
        if calls["sent"] > batches:
            raise FunctionKilled("the run died here")

    sqs = world.pipeline.handler("ScheduleRenewalsFunction").wiring().sqs
    sqs.meta.events.register("before-call.sqs.SendMessageBatch", count)
    return lambda: sqs.meta.events.unregister("before-call.sqs.SendMessageBatch", count)


def test_the_scheduled_run_queues_each_donor_once_and_a_rerun_queues_nothing(world, pipeline, capsys):
    # Given a year of 45 donors, one of them monthly
    write_gifts(world, a_year_of_donors())

    # When the rule fires on its January day
    first = scheduled_run(world)

    # Then every donor of last year is queued once, in one run
    assert first["statements_year"] == YEAR
    assert (first["statements_donors"], first["statements_queued"], first["statements_left"]) == (DONORS, DONORS, 0)
    assert first["statements_finished"] is True
    # ... and the operator sees them queued before the sender got to them
    code, out = ops(pipeline, capsys, "statements", "status", "--year", str(YEAR))
    assert code == 0 and f"{DONORS} queued and not sent yet, 0 to send." in out, out

    # When the rule fires again an hour later, before and after the statements went out
    again = scheduled_run(world, f"{YEAR + 1}-01-15T07:00:00+00:00")
    deliver_everything(world)
    after_sending = scheduled_run(world, f"{YEAR + 1}-01-15T08:00:00+00:00")

    # Then nothing new is queued, and each donor has exactly one statement
    assert (again["statements_queued"], after_sending["statements_queued"]) == (0, 0)
    assert after_sending["statements_sent"] == DONORS
    mails = statements_in_outbox(world, YEAR)
    assert sorted(Counter(m["to"][0] for m in mails).values()) == [1] * DONORS
    code, out = ops(pipeline, capsys, "statements", "status", "--year", str(YEAR))
    assert f"{DONORS} donor(s) with gifts, {DONORS} statement(s) sent, 0 to send." in out, out


def test_a_run_killed_midway_is_continued_by_the_next_and_each_donor_gets_one_statement(world):
    # Given a year of 45 donors
    write_gifts(world, a_year_of_donors())

    # When the run dies after queueing two batches of ten (the third is not sent)
    remove_hook = killed_after(world, 2)
    with pytest.raises(FunctionKilled):
        scheduled_run(world)
    remove_hook()
    # ... and the next hourly run continues
    resumed = scheduled_run(world, f"{YEAR + 1}-01-15T07:00:00+00:00")

    # Then the next run queued only those the first did not
    assert (resumed["statements_queued"], resumed["statements_left"]) == (DONORS - 20, 0)
    # ... and after sending, each donor has exactly one statement
    deliver_everything(world)
    mails = statements_in_outbox(world, YEAR)
    assert sorted(Counter(m["to"][0] for m in mails).values()) == [1] * DONORS


def test_a_run_out_of_time_stops_between_batches_and_leaves_the_rest_to_the_next(world):
    # Given a year of 45 donors, and a run whose time runs short after two batches
    write_gifts(world, a_year_of_donors())
    handler = world.pipeline.handler("ScheduleRenewalsFunction")
    checks = Counter[str]()

    def out_of_time() -> bool:
        checks["asked"] += 1
        return checks["asked"] > 2

    # When that run stops
    cut = run_statements(
        handler.wiring().statements,
        handler.wiring().sqs,
        handler.settings.receipt_queue_url,
        year=YEAR,
        time_zone="UTC",
        out_of_time=out_of_time,
    )
    # Then it says how many are left, and the scheduled run queues exactly those
    assert (cut.queued, cut.left, cut.as_dict()["statements_finished"]) == (20, DONORS - 20, False)
    assert scheduled_run(world)["statements_queued"] == DONORS - 20


def test_a_stack_without_a_statement_template_queues_nothing(world, monkeypatch):
    # Given the schedule function's settings without StatementTemplateId (statements would only be parked)
    handler = world.pipeline.handler("ScheduleRenewalsFunction")
    write_gifts(world, a_year_of_donors())
    monkeypatch.setattr(handler, "settings", handler.settings.model_copy(update={"statement_template_id": ""}))

    # When the rule fires, Then nothing is queued and the run says why
    assert scheduled_run(world)["statements_skipped"] == "no StatementTemplateId"
    deliver_everything(world)
    assert statements_in_outbox(world, YEAR) == []


def test_a_donor_whose_older_records_carry_the_legacy_key_gets_one_statement_of_all_their_gifts(
    world, pipeline, capsys
):
    # Given Ada, who gave in March before donor keys were keyed (her record carries the unkeyed key) and in
    # June since; and Bo, whose only gift of the year is that old
    march = Gift("ada@example.org", "Ada", 1_500, "usd", f"{YEAR}-03-02T10:00:00.000Z")
    write_gifts(world, [Gift("Ada@Example.org", "Ada", 2_500, "usd", f"{YEAR}-06-02T10:00:00.000Z")])
    bo = Gift("bo@example.org", "Bo", 700, "usd", f"{YEAR}-04-02T10:00:00.000Z")
    with world.wiring.store._table.batch_writer() as batch:
        for gift in (march, bo):
            old = charged_donation(gift, legacy_donor_key(gift.email))
            batch.put_item(Item=old.model_dump(mode="json", exclude_none=True))

    # When the January run queues the year's statements and they are sent
    ran = scheduled_run(world)
    deliver_everything(world)

    # Then each donor is counted and queued once, and Ada's one statement lists both her gifts
    assert (ran["statements_donors"], ran["statements_queued"]) == (2, 2)
    by_donor = Counter(m["to"][0].lower() for m in statements_in_outbox(world, YEAR))
    assert by_donor == {"ada@example.org": 1, "bo@example.org": 1}
    [ada] = [m for m in statements_in_outbox(world, YEAR) if m["to"][0].lower() == "ada@example.org"]
    assert [g["amount_display"] for g in ada["dynamic_template_data"]["gifts"]] == ["$15.00", "$25.00"]
    # ... and Ada asking again finds hers sent (the same statement, not a second one)
    code, out = ops(pipeline, capsys, "statements", "send", "--year", str(YEAR), "--email", "ada@example.org")
    assert code == 0 and "1 statement(s) sent, 0 to send" in out, out


def test_a_rotated_sendgrid_key_reaches_the_statements_of_a_warm_function(world, pipeline, capsys):
    # Given a warm send_receipt function that sent Ada's statement with the stored SendGrid key
    write_gifts(
        world,
        [Gift(f"{name}@example.org", name, 1_000, "usd", f"{YEAR}-03-02T10:00:00.000Z") for name in ("ada", "bo")],
    )
    assert (
        ops(pipeline, capsys, "statements", "send", "--year", str(YEAR), "--email", "ada@example.org", "--yes")[0] == 0
    )
    deliver_everything(world)
    handler = world.pipeline.handler("SendReceiptFunction")
    ssm, name = world.pipeline.clients("ssm"), handler.settings.sendgrid_secret_name
    old_key = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    try:
        # When the operator rotates the key (SendGrid refuses the old one) and the function's cache age passes
        ssm.put_parameter(Name=name, Value="SG.rotated", Type="SecureString", Overwrite=True)
        world.sendgrid.revoke_key(old_key)
        handler.wiring().api_keys.forget()
        # ... and Bo asks for his statement
        assert (
            ops(pipeline, capsys, "statements", "send", "--year", str(YEAR), "--email", "bo@example.org", "--yes")[0]
            == 0
        )
        deliver_everything(world)

        # Then Bo's statement went out with the new key, nothing parked
        assert sorted(m["to"][0] for m in statements_in_outbox(world, YEAR)) == ["ada@example.org", "bo@example.org"]
        assert world.queued("receipt_dlq") == []
    finally:
        ssm.put_parameter(Name=name, Value=old_key, Type="SecureString", Overwrite=True)
        handler.wiring().api_keys.forget()
