"""Each benchmark script runs end to end with tiny sizes, so the scripts cannot rot.

These tests check that a script prints its table and its one-line summary and that its numbers are
sane (positive, finite ratios). They never assert a performance target: that is what the scripts
report, on a quiet machine, with their real sizes.
"""

from __future__ import annotations

import io
import math
import re

import pytest

pytestmark = pytest.mark.slow

NUMBER = r"([0-9][0-9,]*\.?[0-9]*)"


def _number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in:\n{text}"
    return float(found.group(1).replace(",", ""))


def _summary(text: str, name: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith(f"{name}:")]
    assert lines, f"no summary line for {name}:\n{text}"
    summary = lines[-1]
    assert summary.endswith(("PASS", "MISS")), summary
    return summary


def _sane(*values: float) -> None:
    for value in values:
        assert math.isfinite(value) and value > 0, values


def test_donor_latency_prints_percentiles_ratios_and_where_the_time_goes() -> None:
    from benchmarks import donor_latency

    # Given a tiny run with short provider latencies
    out = io.StringIO()
    argv = ["--donations", "3", "--warmup", "1", "--charge-ms", "30", "--save-card-ms", "20", "--mail-ms", "20"]

    # When the script runs
    assert donor_latency.main(argv, out=out) == 0

    # Then it prints the latency table, the ratios and the breakdown, and a sane summary
    text = out.getvalue()
    for heading in ("client-side latency (ms)", "baseline / pipeline", "pipeline / floor", "where the time goes"):
        assert heading in text
    summary = _summary(text, "donor_latency")
    _sane(
        _number(r"pipeline p50=" + NUMBER, summary),
        _number(r"baseline p50=" + NUMBER, summary),
        _number(r"floor p50=" + NUMBER, summary),
        _number(r"baseline/pipeline=" + NUMBER, summary),
        _number(r"pipeline/floor=" + NUMBER, summary),
    )
    for variant in ("pipeline", "baseline", "floor"):  # three measured requests each, none failed
        assert re.search(rf"^{variant} .*\s3\s.*\s0$", text, re.MULTILINE), variant


def test_cold_start_prints_imports_ratio_and_importtime_breakdown() -> None:
    from benchmarks import cold_start

    # Given two fresh interpreters per variant, for the charge function only
    out = io.StringIO()

    # When the script runs
    assert cold_start.main(["--repeats", "2", "--functions", "ChargeFunction"], out=out) == 0

    # Then both variants were timed, the ratio and the -X importtime top list are printed
    text = out.getvalue()
    assert "charge_handler / bare boto3, stripe" in text
    assert "top 8 cumulative" in text
    assert "modules beyond 'bare boto3, stripe'" in text
    summary = _summary(text, "cold_start")
    _sane(
        _number(r"charge_handler=" + NUMBER, summary),
        _number(r"\(" + NUMBER + r"x\)", summary),
        _number(r"boto3, stripe=" + NUMBER, summary),
    )


def test_cold_donor_prints_cold_and_warm_at_both_cpu_shares_and_what_dominates() -> None:
    from benchmarks import cold_donor

    # Given one fresh interpreter per variant, one warm donation each, one instrumented run
    out = io.StringIO()

    # When the script runs
    argv = ["--rounds", "1", "--warm", "1", "--breakdown", "1", "--charge-ms", "20", "--typing", "0.5"]
    assert cold_donor.main(argv, out=out) == 0

    # Then every donation was charged (201), every warm-up answered 204, both cold variants are timed,
    # scaled, compared and attributed, and the donor's story puts the warm-up and SnapStart beside them
    text = out.getvalue()
    assert "answers other than 201" not in text
    for variant in ("cold (.pyc)", "cold (no .pyc)"):
        assert re.search(rf"^{re.escape(variant)}\s+1\s", text, re.MULTILINE), variant
    assert "the first donor's wait" in text
    for variant in ("warm-up, 0.5s typing (.pyc)", "SnapStart, modelled (.pyc)", "warm donation"):
        assert re.search(rf"^{re.escape(variant)}", text, re.MULTILINE), variant
    assert "the warm-up's answer came" in text
    for heading in ("at Lambda's CPU share", "paired by round", "where the first and a warm donation", "INIT imports"):
        assert heading in text
    assert "Stripe PaymentIntent" in text and "AWS dynamodb" in text
    summary = text.strip().splitlines()[-1]
    assert summary.startswith("cold_donor:") and summary.endswith("INFO"), summary
    _sane(
        _number(r"cold p50=" + NUMBER, summary),
        _number(r"warm p50=" + NUMBER, summary),
        _number(r"cold/warm=" + NUMBER, summary),
        _number(r"without .pyc cold x" + NUMBER, summary),
        _number(r"first/warm=" + NUMBER, summary),
    )


def test_drain_rate_prints_both_loops_and_their_ratio() -> None:
    from benchmarks import drain_rate

    # Given a backlog of 100 messages
    out = io.StringIO()

    # When the script runs
    assert drain_rate.main(["--messages", "100", "--chunk", "50", "--max-seconds", "30"], out=out) == 0

    # Then both loops processed the whole backlog and the rates are sane
    text = out.getvalue()
    assert "deliver_batch + send_receipt handler" in text and "bare receive + delete" in text
    assert "not processed within the time budget: handler 0, bare 0" in text
    assert "dynamodb:UpdateItem" in text  # the claim and the mark, per receipt
    summary = _summary(text, "drain_rate")
    _sane(
        _number(r"handler=" + NUMBER, summary),
        _number(r"bare=" + NUMBER, summary),
        _number(r"ratio=" + NUMBER, summary),
    )


def test_cost_model_counts_requests_and_prices_them() -> None:
    from benchmarks import cost_model

    # Given a few donations with short provider latencies and a given INIT time
    out = io.StringIO()
    argv = ["--donations", "4", "--init-ms", "400", "--charge-ms", "20", "--save-card-ms", "20", "--mail-ms", "20",
            "--warm-up-samples", "3", "--renewals", "3"]  # fmt: skip

    # When the script runs
    assert cost_model.main(argv, out=out) == 0

    # Then every donation was answered 201, the breakdown names each service, and the total is sane
    text = out.getvalue()
    assert "answers {201: 4}" in text
    for service in ("API Gateway", "Lambda", "SQS", "DynamoDB", "KMS", "CloudWatch Logs", "X-Ray"):
        assert f"\n{service}" in text, service
    assert "REST API requests (POST /donations)" in text
    summary = _summary(text, "cost_model")
    _sane(_number(r"\$" + NUMBER + r" per 1,000 donations", summary))
    # and the monthly bill at four volumes names every fixed line of the template and its price page
    assert all(f"{volume}/month" in text for volume in ("100", "1,000", "10,000", "100,000"))
    for line in ("alarms: ", "dashboards: 0", "customer managed keys: 1", "secrets: 0",
                 "SecureString parameters (standard tier): 9", "idle long polling",
                 "schedule: reconciler", "schedule: NotifierFunction", "web ACL + 6 rules", "custom metrics (EMF)",
                 "point-in-time recovery", "log storage", "price source: AWS Lambda pricing"):  # fmt: skip
        assert line in text, line
    # and the renewal schedule's hourly runs, measured on a run that found nothing due, which sends no custom
    # metric (no heartbeat: its alarm reads the function's free AWS/Lambda metrics), so the fixed bill
    # without WAF and SnapStart stays within the $5 target
    assert "schedule: ScheduleRenewalsFunction, 720 runs (one run measured)" in text
    assert "custom metrics sent by every ScheduleRenewalsFunction run" not in text
    assert re.search(r"\(\d+ alarm metrics, [1-9]\d* metric math\)", text)
    assert 0 < _number(r", \$" + NUMBER + r" without WAF and SnapStart", summary) <= 5.00
    # and the renewals, metered apart from the donations, priced per 1,000 next to them
    assert "  3 pledges renewed on " in text and "{'renewals_scheduled': 3}" in text
    assert "3 monthly renewals, metered apart (RenewFunction, ScheduleRenewalsFunction, SendReceiptFunction" in text
    _sane(_number(r"\$" + NUMBER + r" per 1,000 renewals", summary))
    # and the form's warm-ups, priced apart, 10 per donation, in the bill (WAF's share optional)
    _sane(_number(r"form warm-ups, 10 per donation \(API Gateway[^)]*\): \$" + NUMBER, text))
    assert re.search(r"per donation \(EnableWaf\)\s+warm-up\s+form warm-ups", text)
    # Healthy donations send only the metrics operators graph (each is billed for the hours it gets data)
    emf = re.search(r"custom metrics \(EMF\), billed per hour with data: (\d+) seen \(([^)]*)\)", text)
    assert emf, text
    assert re.sub(r"\[[^]]*\]", "", emf.group(2)) == "CardsSaved, DonationsCharged, ReceiptsSent"


def test_the_cost_model_prices_index_writes_as_dynamodb_bills_them() -> None:
    from benchmarks.cost_model import IndexSpec, index_write_units

    # Given a sparse keys-only index and an index projecting everything
    table_keys = frozenset({"donation_id"})
    sparse = IndexSpec("by-intent", frozenset({"payment_intent_id"}), "KEYS_ONLY", frozenset())
    full = IndexSpec("by-status", frozenset({"status", "updated_at"}), "ALL", frozenset())

    def item(**attributes: str) -> dict[str, object]:
        typed = {"donation_id": {"S": "don_1"}, **{k: {"S": v} for k, v in attributes.items()}}
        return {"attributes": typed, "size": 100}

    pending = item(status="pending", updated_at="1")
    charged = item(status="succeeded", updated_at="2", payment_intent_id="pi_1")
    noted = item(status="succeeded", updated_at="2", payment_intent_id="pi_1", note="x")

    # Then: a new item enters an index once; an index key change costs a delete and a put;
    # an item outside a sparse index costs nothing there; a projected change costs one write
    assert index_write_units(None, pending, full, table_keys) == 1
    assert index_write_units(pending, charged, full, table_keys) == 2
    assert index_write_units(None, pending, sparse, table_keys) == 0
    assert index_write_units(pending, charged, sparse, table_keys) == 1
    assert index_write_units(charged, noted, sparse, table_keys) == 0
    assert index_write_units(charged, noted, full, table_keys) == 1
    assert index_write_units(charged, charged, full, table_keys) == 0


def test_renewal_run_drains_every_pledge_once_and_reports_rates_and_the_donors_side_by_side() -> None:
    from benchmarks import renewal_run

    # Given a handful of due pledges, a short Stripe latency and one donation per phase
    out = io.StringIO()
    argv = ["--pledges", "6", "--charge-ms", "30", "--phase-donations", "1", "--max-seconds", "15"]

    # When the script runs
    assert renewal_run.main(argv, out=out) == 0

    # Then the schedule queued every pledge, each was charged exactly once, and the rates are reported
    text = out.getvalue()
    assert "schedule-renewals handler queued 6" in text
    assert "renewed 6 of 6" in text and "left 0;" in text and "parked in the DLQ 0" in text
    assert "double charges 0; skipped 0" in text
    for row in ("template model", "peak, any second", "mean while the run was going", "run paused", "run going"):
        assert row in text, row
    summary = _summary(text, "renewal_run")
    assert "renewed=6/6" in summary and "doubles=0 skipped=0" in summary
    _sane(_number(r"peak=" + NUMBER, summary), _number(r"donor p50 x" + NUMBER, summary))
