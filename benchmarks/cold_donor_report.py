"""The cold donor benchmark's tables (benchmarks/cold_donor.py): cold vs warm, at Lambda's CPU share, what dominates."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from benchmarks.cold_donor_child import END_MARKER, FIRST_MARKER, INIT_MARKER
from benchmarks.cold_donor_results import NO_PYC, PYC, SNAPSTART, ColdDonorResult, Sample, warmed_up
from benchmarks.cold_start import package_of, parse_importtime
from benchmarks.common import median, percentile, table
from benchmarks.lambda_layout import on_lambda, vcpu_share


def _spread(values: Sequence[float]) -> str:
    return f"{percentile(values, 25):.0f}-{percentile(values, 75):.0f}"


def _ratio_spread(values: Sequence[float]) -> str:
    return f"{median(values):.2f} ({percentile(values, 25):.2f}-{percentile(values, 75):.2f})"


def _warm(sample: Sample) -> float:
    return median(sample.warm_wall)


def _scaled(result: ColdDonorResult, variant: str = PYC) -> dict[str, Callable[[Sample], float]]:
    """Each phase at the CPU share of the MemorySize ``variant``'s revision deploys the function with."""
    share = vcpu_share(result.memory_of(variant))
    return {
        "INIT": lambda s: on_lambda(s.init_wall, s.init_cpu, share),
        "first donation": lambda s: on_lambda(s.first_wall, s.first_cpu, share),
        "cold total": lambda s: (
            s.start / share + on_lambda(s.init_wall, s.init_cpu, share) + on_lambda(s.first_wall, s.first_cpu, share)
        ),
        "warm donation": lambda s: median(
            [on_lambda(w, c, share) for w, c in zip(s.warm_wall, s.warm_cpu, strict=True)]
        ),
    }


def report(result: ColdDonorResult, out: TextIO | None = None) -> str:
    out = out or sys.stdout
    share = vcpu_share(result.memory_mb)
    print(
        f"\ncold donor, {result.started_at}; {result.machine}; {result.load}\n"
        f"charge function, MemorySize {result.memory_mb} MB = {share:.3f} vCPU on Lambda; Stripe emulator "
        f"{result.config.charge_ms:.0f} ms per PaymentIntent; tracing on ({result.segments} X-Ray datagrams)\n",
        file=out,
    )
    _timed_table(result, out)
    _lambda_table(result, share, out)
    _ratios(result, out)
    _story(result, share, out)
    _attribution(result, out)
    summary = _summary(result, share)
    print("\n" + summary, file=out, flush=True)
    return summary


def _plain(result: ColdDonorResult) -> dict[str, list[Sample]]:
    """The variants whose donor arrives with nothing ahead of them: interpreter, INIT, first donation."""
    story = {warmed_up(result.config.typing_seconds), SNAPSTART}
    return {name: samples for name, samples in result.samples.items() if name not in story}


def _timed_table(result: ColdDonorResult, out: TextIO) -> None:
    rows = []
    for name, samples in _plain(result).items():
        cold = [s.cold for s in samples]
        warm = [_warm(s) for s in samples]
        rows.append(
            [name, len(samples), median([s.start for s in samples]), median([s.init_wall for s in samples]),
             median([s.first_wall for s in samples]), median(cold), _spread(cold), median(warm), _spread(warm),
             _ratio_spread([c / w for c, w in zip(cold, warm, strict=True)])]
        )  # fmt: skip
    print("measured here, ms (medians; p25-p75); cold = interpreter start + INIT + first donation", file=out)
    headers = ["variant", "n", "start", "INIT", "first", "cold", "cold p25-p75", "warm", "warm p25-p75", "cold/warm"]
    table(headers, rows, out=out)
    if _refused(result):
        print(f"answers other than 201 (204 to a warm-up): {_refused(result)}", file=out)


def _lambda_table(result: ColdDonorResult, share: float, out: TextIO) -> None:
    rows = [
        [name, result.memory_of(name), *(median([f(s) for s in samples]) for f in _scaled(result, name).values())]
        for name, samples in _plain(result).items()
    ]
    print(
        f"\nat Lambda's CPU share, ms: CPU time / the share of the variant's MemorySize ({share:.3f} for "
        f"{result.memory_mb} MB) + the time not on the CPU (waits unscaled; interpreter start all CPU); see "
        "benchmarks/lambda_layout.on_lambda for the limits",
        file=out,
    )
    table(["variant", "MB", *_scaled(result)], rows, out=out)


def _paired(
    result: ColdDonorResult, name: str, metric: Callable[[Sample], float], base: Callable[[Sample], float] | None = None
) -> list[float]:
    """``name``'s ``metric`` / the build as shipped's (``base``, if it is measured otherwise), round by round."""
    base = base or metric
    return [metric(a) / base(b) for a, b in zip(result.samples[name], result.samples[PYC], strict=True)]


def _ratios(result: ColdDonorResult, out: TextIO) -> None:
    rows = []
    for name in _plain(result):
        if name == PYC:
            continue
        for label, metric, base in (
            ("INIT", lambda s: s.init_wall, None),
            ("cold total", lambda s: s.cold, None),
            ("INIT at Lambda's share", _scaled(result, name)["INIT"], _scaled(result)["INIT"]),
            ("cold total at Lambda's share", _scaled(result, name)["cold total"], _scaled(result)["cold total"]),
        ):
            rows.append([f"{name} / {PYC}", label, _ratio_spread(_paired(result, name, metric, base))])
    if rows:
        print(
            "\nside by side, paired by round (median, p25-p75); at Lambda's share, each at its own MemorySize's",
            file=out,
        )
        table(["ratio", "of", "paired"], rows, out=out)


Metric = Callable[[Sample], float]


def _waits(result: ColdDonorResult, share: float) -> dict[str, tuple[Metric, Metric]]:
    """Per variant of the donor's story: (what the donor waits for, measured; the same at Lambda's share)."""
    scaled = _scaled(result)

    def first(s: Sample) -> float:
        return on_lambda(s.first_wall, s.first_cpu, share)

    return {
        PYC: (lambda s: s.cold, scaled["cold total"]),
        warmed_up(result.config.typing_seconds): (lambda s: s.first_wall, first),
        SNAPSTART: (lambda s: s.first_wall, first),
    }


def _warm_up_ready(s: Sample, share: float) -> float:
    """ms from the warm-up's arrival to its answer at Lambda's share: interpreter, INIT, the warm-up."""
    assert s.warm_up_wall is not None and s.warm_up_cpu is not None
    init = on_lambda(s.init_wall, s.init_cpu, share)
    return s.start / share + init + on_lambda(s.warm_up_wall, s.warm_up_cpu, share)


def _story(result: ColdDonorResult, share: float, out: TextIO) -> None:
    """The first donor's wait, with and without the form's warm-up, against a warm donation."""
    typing = result.config.typing_seconds
    rows = []
    for name, (measured, lambda_share) in _waits(result, share).items():
        samples = result.samples[name]
        warm_here = [_warm(s) for s in samples]
        warm_there = [_scaled(result)["warm donation"](s) for s in samples]
        waits, scaled = [measured(s) for s in samples], [lambda_share(s) for s in samples]
        rows.append(
            [name, median(waits), _ratio_spread([w / m for w, m in zip(waits, warm_here, strict=True)]),
             median(scaled), _ratio_spread([w / m for w, m in zip(scaled, warm_there, strict=True)])]
        )  # fmt: skip
    warm = result.samples[PYC]
    rows.append(
        ["warm donation (same interpreters as cold)", median([_warm(s) for s in warm]), "1",
         median([_scaled(result)["warm donation"](s) for s in warm]), "1"]
    )  # fmt: skip
    print(
        f"\nthe first donor's wait, ms (medians; / the same interpreter's warm donations, paired: median, p25-p75). "
        f"With the warm-up the donor waits for the donation alone: the warm-up ran while they typed ({typing:g} s); "
        "SnapStart's figure leaves out the restore, not measured here",
        file=out,
    )
    table(["what the donor meets", "waits", "/ warm", "at Lambda's share", "/ warm at share"], rows, out=out)
    ready = [_warm_up_ready(s, share) for s in result.samples[warmed_up(typing)]]
    late = sum(1 for r in ready if r > typing * 1000)
    print(
        f"the warm-up's answer came {median(ready):,.0f} ms after it was sent, at Lambda's share (p75 "
        f"{percentile(ready, 75):,.0f}); {late} of {len(ready)} were still running when the donor submitted",
        file=out,
    )


def _sections(stderr: str) -> tuple[str, str]:
    """The -X importtime lines of INIT, and those of the first invocation."""
    lines = stderr.splitlines()
    init, first, end = (lines.index(m) if m in lines else len(lines) for m in (INIT_MARKER, FIRST_MARKER, END_MARKER))
    return "\n".join(lines[init + 1 : first]), "\n".join(lines[first + 1 : end])


def _by_package(sections: list[str]) -> list[tuple[str, float, int]]:
    """(package, self ms median over runs, modules) for the modules each section imported."""
    per_run: list[dict[str, tuple[float, int]]] = []
    for text in sections:
        totals: dict[str, tuple[float, int]] = {}
        for module, _, self_ms, _ in parse_importtime(text):
            ms, count = totals.get(package_of(module), (0.0, 0))
            totals[package_of(module)] = (ms + self_ms, count + 1)
        per_run.append(totals)
    packages = {p for run in per_run for p in run}
    rows = [
        (p, median([run.get(p, (0.0, 0))[0] for run in per_run]), max(run.get(p, (0.0, 0))[1] for run in per_run))
        for p in packages
    ]
    return sorted(rows, key=lambda row: -row[1])


def _attribution(result: ColdDonorResult, out: TextIO) -> None:
    if not result.breakdown:
        return
    firsts = [r["invocations"][0] for r in result.breakdown]
    warms = [w for r in result.breakdown for w in r["invocations"][1:]]
    labels = sorted({k for i in firsts + warms for k in i["attribution"]})
    print(
        f"\nwhere the first and a warm donation spend their time, ms ({len(firsts)} instrumented runs, medians)",
        file=out,
    )
    rows = [[label, median([i["attribution"].get(label, 0.0) for i in firsts]),
             median([i["attribution"].get(label, 0.0) for i in warms])] for label in labels]  # fmt: skip

    def rest(i: dict[str, float | dict[str, float]]) -> float:
        parts = i["attribution"]
        assert isinstance(parts, dict) and isinstance(i["wall"], float)
        # The key fetch's Parameter Store call is inside ApiKeys.get: counted once.
        return i["wall"] - sum(ms for label, ms in parts.items() if label != "AWS ssm")

    rows.append(["the rest: handler, client set-up, Powertools, validation, X-Ray", median([rest(i) for i in firsts]),
                 median([rest(i) for i in warms])])  # fmt: skip
    rows.append(["the invocation", median([i["wall"] for i in firsts]), median([i["wall"] for i in warms])])
    table(["", "first", "warm"], rows, out=out)
    print("(SQS: the two follow-ups are sent side by side, their times add up beyond the wall time)", file=out)
    inits, lazies = zip(*(_sections(stderr) for stderr in result.importtime["stderr"]), strict=True)
    modules = median([float(i["modules_imported"]) for i in firsts])
    for title, sections in (
        ("INIT imports", inits),
        (f"the first donation still imports {modules:.0f} modules", lazies),
    ):
        top = _by_package(list(sections))[:8]
        listed = ", ".join(f"{p} {ms:.0f} ms ({n})" for p, ms, n in top)
        print(f"{title}, self time by package (-X importtime, modules): {listed}", file=out)


def _summary(result: ColdDonorResult, share: float) -> str:
    pyc = result.samples[PYC]
    cold, warm = median([s.cold for s in pyc]), median([_warm(s) for s in pyc])
    scaled = _scaled(result)
    lambda_cold = median([scaled["cold total"](s) for s in pyc])
    lambda_warm = median([scaled["warm donation"](s) for s in pyc])
    no_pyc = median(_paired(result, NO_PYC, lambda s: s.cold))
    no_pyc_lambda = median(_paired(result, NO_PYC, scaled["cold total"]))
    warmed = result.samples[warmed_up(result.config.typing_seconds)]
    after_warm_up = median([on_lambda(s.first_wall, s.first_cpu, share) / scaled["warm donation"](s) for s in warmed])
    init = median([scaled["INIT"](s) for s in pyc])
    before = [
        f"@{name.split('@')[1].split()[0]} ({result.memory_of(name)} MB) / this "
        f"{median(_paired(result, name, _scaled(result, name)['INIT'], scaled['INIT'])):.2f}x"
        for name in result.samples
        if "@" in name
    ]
    return (
        f"cold_donor: cold p50={cold:.0f} ms, warm p50={warm:.0f} ms, cold/warm={cold / warm:.2f}x; "
        f"INIT at {share:.2f} vCPU={init:.0f} ms{''.join(f' (INIT {b})' for b in before)}; "
        f"at {share:.2f} vCPU cold={lambda_cold:.0f} ms, warm={lambda_warm:.0f} ms ({lambda_cold / lambda_warm:.2f}x); "
        f"after a warm-up and {result.config.typing_seconds:g} s typing first/warm={after_warm_up:.2f}x at "
        f"{share:.2f} vCPU; without .pyc cold x{no_pyc:.2f} (x{no_pyc_lambda:.2f} at {share:.2f} vCPU) "
        # A refused donation (a 403 of the card-testing checks, say) never reaches Stripe: not a figure.
        + ("INFO" if not _refused(result) else f"MISS: answers other than 201 (204 to a warm-up) {_refused(result)}")
    )


def _refused(result: ColdDonorResult) -> list[int]:
    """Answers other than a charge (201) or, to a warm-up, 204."""
    samples = [sample for samples in result.samples.values() for sample in samples]
    statuses = {s for sample in samples for s in sample.statuses if s != 201}
    statuses |= {s.warm_up_status for s in samples if s.warm_up_status is not None and s.warm_up_status != 204}
    return sorted(statuses)
