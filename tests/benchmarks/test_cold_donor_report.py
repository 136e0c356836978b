"""The cold donor's report scales each variant at the CPU share of the MemorySize its own revision deploys:
a revision compared with --compare is read at its template's, so "INIT before and after" is what each
revision's donors met (benchmarks/cold_donor_report.py)."""

from __future__ import annotations

import io
import re

import pytest

from benchmarks.cold_donor_report import report
from benchmarks.cold_donor_results import NO_PYC, PYC, SNAPSTART, ColdDonorConfig, ColdDonorResult, Sample, warmed_up
from benchmarks.lambda_layout import vcpu_share

BEFORE = "cold @28daf88 (.pyc)"


def _sample(init_cpu: float) -> Sample:
    # INIT all CPU (no wait), a donation of 50 ms CPU and 300 ms waiting for Stripe, warm or not
    return Sample(
        start=20.0, init_wall=init_cpu, init_cpu=init_cpu, first_wall=350.0, first_cpu=50.0,
        warm_wall=[350.0], warm_cpu=[50.0], statuses=[201, 201],
        warm_up_status=204, warm_up_wall=100.0, warm_up_cpu=20.0,
    )  # fmt: skip


def _result(before_mb: int, after_mb: int) -> ColdDonorResult:
    config = ColdDonorConfig(rounds=3, warm=1, breakdown=0, compare="28daf88")
    samples = {
        PYC: [_sample(400.0)] * 3,
        NO_PYC: [_sample(800.0)] * 3,
        warmed_up(config.typing_seconds): [_sample(400.0)] * 3,
        SNAPSTART: [_sample(400.0)] * 3,
        BEFORE: [_sample(440.0)] * 3,  # the same code but for a tenth more INIT
    }
    return ColdDonorResult(
        config, after_mb, samples, [], {"stderr": []}, "test machine", "2026-12-06", "load 0",
        memory_by_variant={BEFORE: before_mb},
    )  # fmt: skip


def test_a_compared_revision_is_scaled_at_its_own_memory_size() -> None:
    # Given the revision before deployed the function at 512 MB, and this one at 1,024 MB
    result = _result(before_mb=512, after_mb=1024)

    # When the report is printed
    out = io.StringIO()
    summary = report(result, out)

    # Then INIT is scaled at each one's share: 440 / 0.289 before, 400 / 0.579 after
    before, after = 440.0 / vcpu_share(512), 400.0 / vcpu_share(1024)
    assert f"INIT at {vcpu_share(1024):.2f} vCPU={after:.0f} ms" in summary
    assert f"(INIT @28daf88 (512 MB) / this {before / after:.2f}x)" in summary
    text = out.getvalue()
    assert re.search(rf"^{re.escape(BEFORE)} / .*INIT at Lambda's share\s+{before / after:.2f} ", text, re.MULTILINE)
    assert re.search(rf"^{re.escape(BEFORE)}\s+512\s+{before:,.0f}\s", text, re.MULTILINE)
    assert re.search(rf"^{re.escape(PYC)}\s+1024\s+{after:,.0f}\s", text, re.MULTILINE)


def test_without_another_memory_size_both_are_scaled_alike() -> None:
    # Given both revisions at 512 MB
    summary = report(_result(before_mb=512, after_mb=512), io.StringIO())

    # Then the ratio is the CPU's alone
    assert f"/ this {440 / 400:.2f}x" in summary
    assert pytest.approx(440 / 400, abs=0.005) == float(summary.split("/ this ")[1].split("x")[0])
