"""Cold start: import and initialise each function's handler module in fresh interpreters.

Each sample is a new ``python`` process with the function's environment as the template sets it
(Globals + the function's variables, references resolved to plausible names), Lambda's variables
(LAMBDA_TASK_ROOT, AWS_LAMBDA_FUNCTION_NAME, ...) so Powertools Tracer is ON as in production (X-Ray
SDK loaded, libraries patched), dummy AWS credentials and a region, and ``sys.path`` as Lambda builds
it: the function's folder, then the layer's python folder (``src/``), then the dependencies. What is
timed is the ``import`` of the handler module (Lambda's INIT phase runs exactly that), beside a bare
``import boto3, stripe`` (charge, tokenize, reconciler, Stripe webhook) or ``import boto3, sendgrid``
(send_receipt) in the same environment, all variants interleaved in a shuffled order. Byte-code caches
are warmed first.

``python -X importtime`` (the median of a few runs, as one run is noisy) then says what dominates each
handler's import, and which modules beyond the bare import cost most.

    python -m benchmarks.cold_start [--repeats 15]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from benchmarks.common import DUMMY_AWS_ENV, Summary, machine, median, percentile, table, verdict

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.5
STACK = "donations"
ACCOUNT = "123456789012"
REGION = "us-east-1"

TIMED_MARKER = "--- timed imports ---"

# The child: put the Lambda paths first, time the import, print JSON. Interpreter start-up is not timed.
CHILD = """
import sys, time, json, importlib
sys.path[0:0] = json.loads(sys.argv[2])
sys.stderr.write("--- timed imports ---\\n")
sys.stderr.flush()
started = time.perf_counter()
for name in sys.argv[1].split(","):
    importlib.import_module(name)
elapsed = (time.perf_counter() - started) * 1000
print(json.dumps({"import_ms": elapsed}))
"""


@dataclass(frozen=True)
class Variant:
    name: str
    modules: str  # comma-separated
    function: str  # logical id whose environment and paths are used
    bare: bool


@dataclass
class ColdStartResult:
    repeats: int
    samples: dict[str, list[float]]
    wall: dict[str, list[float]]
    pairs: dict[str, str]  # handler variant -> bare variant
    importtime: dict[str, list[tuple[str, int, float, float]]]  # variant -> (module, depth, self ms, cum ms)
    machine: str
    started_at: str
    summaries: dict[str, Summary] = field(init=False)

    def __post_init__(self) -> None:
        self.summaries = {name: Summary.of(values) for name, values in self.samples.items()}

    def ratio(self, handler: str) -> float:
        return self.summaries[handler].p50 / self.summaries[self.pairs[handler]].p50

    def paired(self, handler: str) -> list[float]:
        bare = self.samples[self.pairs[handler]]
        return [h / b for h, b in zip(self.samples[handler], bare, strict=True)]

    @property
    def met(self) -> bool:
        return all(self.ratio(handler) <= TARGET for handler in self.pairs)


# --------------------------------------------------------------------------- the functions, from the template


# The parameters a deployer must give (no default in template.yaml), as a deployer would.
DEPLOYER_PARAMETERS = {"AllowedOrigin": "https://donate.example.org", "TurnstileSiteKey": "0x4AAAAAAAbenchmark"}


@dataclass(frozen=True)
class FunctionSetup:
    logical_id: str
    module: str
    code_dir: Path
    layer_dirs: tuple[Path, ...]
    memory_mb: int
    environment: dict[str, str]


def functions_from_template(template_path: Path | None = None) -> dict[str, FunctionSetup]:
    from infra.deploy import load_template

    template = load_template(template_path or ROOT / "template.yaml")
    resources = template["Resources"]
    parameters = {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}
    parameters.update(DEPLOYER_PARAMETERS)
    globals_function = template.get("Globals", {}).get("Function", {})
    global_env = globals_function.get("Environment", {}).get("Variables", {})
    setups = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        env = {**global_env, **properties.get("Environment", {}).get("Variables", {})}
        layers = properties.get("Layers", globals_function.get("Layers", []))
        layer_dirs = tuple(
            ROOT / resources[layer["Ref"]]["Properties"]["ContentUri"]
            for layer in layers
            if isinstance(layer, dict) and "Ref" in layer and layer["Ref"] in resources
        )
        setups[logical_id] = FunctionSetup(
            logical_id=logical_id,
            module=properties["Handler"].rsplit(".", 1)[0],
            code_dir=ROOT / properties["CodeUri"],
            layer_dirs=layer_dirs,
            memory_mb=int(properties.get("MemorySize", globals_function.get("MemorySize", 128))),
            environment={k: _resolve(v, resources, parameters) for k, v in env.items()},
        )
    return setups


def _resolve(value: Any, resources: dict[str, Any], parameters: dict[str, str]) -> str:
    """What CloudFormation would put in the variable, for the intrinsics the template uses there."""
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, dict) and "Ref" in value:
        name = value["Ref"]
        if name in parameters:
            return parameters[name]
        resource = resources.get(name, {})
        physical = resource.get("Properties", {}).get("QueueName") or f"{STACK}-{name}"
        if isinstance(physical, dict):  # !Sub "${AWS::StackName}-tokenize"
            physical = str(physical.get("Fn::Sub", name)).replace("${AWS::StackName}", STACK)
        if resource.get("Type") == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{physical}"
        return str(physical)
    if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        return value["Fn::Sub"].replace("${AWS::StackName}", STACK).replace("${AWS::Region}", REGION)
    return json.dumps(value)


def lambda_environment(setup: FunctionSetup) -> dict[str, str]:
    """The process environment of the function on Lambda (tracing on), with dummy credentials."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        **DUMMY_AWS_ENV,
        "AWS_REGION": REGION,
        "LAMBDA_TASK_ROOT": str(setup.code_dir),
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_LAMBDA_FUNCTION_NAME": f"{STACK}-{setup.logical_id}",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(setup.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{STACK}-{setup.logical_id}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2025/01/01/[$LATEST]0123456789abcdef",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "_AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129",
        "_AWS_XRAY_DAEMON_PORT": "2000",
        "_HANDLER": f"{setup.module}.lambda_handler",
        **setup.environment,
    }
    env.pop("POWERTOOLS_TRACE_DISABLED", None)  # tracing ON, as deployed (Tracing: Active)
    return env


def variants(setups: dict[str, FunctionSetup]) -> tuple[list[Variant], dict[str, str]]:
    found: list[Variant] = []
    pairs: dict[str, str] = {}
    bare_for = {"send_receipt_handler": "boto3,sendgrid"}
    for logical_id, setup in sorted(setups.items()):
        bare_modules = bare_for.get(setup.module, "boto3,stripe")
        handler = Variant(setup.module, setup.module, logical_id, bare=False)
        bare = Variant(f"bare {bare_modules.replace(',', ', ')}", bare_modules, logical_id, bare=True)
        found.append(handler)
        if bare.name not in {v.name for v in found}:
            found.append(bare)
        pairs[handler.name] = bare.name
    return found, pairs


# --------------------------------------------------------------------------- measuring


def _paths(setup: FunctionSetup) -> list[str]:
    return [str(setup.code_dir), *(str(d) for d in setup.layer_dirs)]


def _child(variant: Variant, setup: FunctionSetup, cwd: str, *python_options: str) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter importing the variant's modules with the function's environment and paths."""
    return subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, *python_options, "-c", CHILD, variant.modules, json.dumps(_paths(setup))],
        env=lambda_environment(setup),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def sample(variant: Variant, setup: FunctionSetup, cwd: str) -> tuple[float, float]:
    """(import ms inside the child, wall ms of the whole child process)."""
    started = time.perf_counter()
    completed = _child(variant, setup, cwd)
    wall = (time.perf_counter() - started) * 1000
    if completed.returncode != 0:
        raise RuntimeError(f"{variant.name}: import failed:\n{completed.stderr[-3000:]}")
    return float(json.loads(completed.stdout.strip().splitlines()[-1])["import_ms"]), wall


IMPORTTIME_RUNS = 3


def importtime(
    variant: Variant, setup: FunctionSetup, cwd: str, runs: int = IMPORTTIME_RUNS
) -> list[tuple[str, int, float, float]]:
    """``python -X importtime``: (module, depth, self ms, cumulative ms) per imported module, each time the
    median of ``runs`` fresh interpreters (the order and depths are the first run's: imports are deterministic)."""
    profiles = []
    for _ in range(runs):
        completed = _child(variant, setup, cwd, "-X", "importtime")
        profiles.append(parse_importtime(completed.stderr))
    times: dict[str, list[tuple[float, float]]] = {}
    for profile in profiles:
        for module, _, self_ms, cumulative_ms in profile:
            times.setdefault(module, []).append((self_ms, cumulative_ms))
    return [
        (module, depth, median([s for s, _ in times[module]]), median([c for _, c in times[module]]))
        for module, depth, _, _ in profiles[0]
    ]


def parse_importtime(stderr: str) -> list[tuple[str, int, float, float]]:
    """Lines look like ``import time:       123 |        456 |     package.module`` (microseconds)."""
    rows = []
    lines = stderr.splitlines()
    if TIMED_MARKER in lines:  # only what the timed part imported, not the interpreter's start-up
        lines = lines[lines.index(TIMED_MARKER) + 1 :]
    for line in lines:
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_field, cumulative_field, name_field = line.removeprefix("import time:").split("|", 2)
        depth = (len(name_field) - len(name_field.lstrip(" ")) - 1) // 2
        rows.append((name_field.strip(), depth, int(self_field) / 1000, int(cumulative_field) / 1000))
    return rows


def run(
    repeats: int = 15,
    seed: int = 11,
    out: TextIO | None = None,
    importtime_runs: bool = True,
    functions: Sequence[str] | None = None,
) -> ColdStartResult:
    out = out or sys.stdout
    started_at = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    setups = functions_from_template()
    if functions:
        unknown = set(functions) - set(setups)
        if unknown:
            raise SystemExit(f"no such function in template.yaml: {sorted(unknown)}; have {sorted(setups)}")
        setups = {name: setup for name, setup in setups.items() if name in functions}
    found, pairs = variants(setups)
    samples: dict[str, list[float]] = {v.name: [] for v in found}
    wall: dict[str, list[float]] = {v.name: [] for v in found}
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="cold-start-") as cwd:
        for variant in found:  # warm the byte-code caches and the page cache; not measured
            sample(variant, setups[variant.function], cwd)
        print(f"{repeats} rounds x {len(found)} variants, fresh interpreter each, shuffled order", file=out)
        for round_no in range(repeats):
            order = list(found)
            rng.shuffle(order)
            for variant in order:
                imported, whole = sample(variant, setups[variant.function], cwd)
                samples[variant.name].append(imported)
                wall[variant.name].append(whole)
            if (round_no + 1) % 5 == 0:
                print(f"  {round_no + 1}/{repeats} rounds", file=out, flush=True)
        profiles = {v.name: importtime(v, setups[v.function], cwd) for v in found} if importtime_runs else {}
    return ColdStartResult(repeats, samples, wall, pairs, profiles, machine(), started_at)


# --------------------------------------------------------------------------- reporting


def package_of(module: str) -> str:
    """The top-level package; standard library modules are told apart too (asyncio, email...), and marked."""
    top = module.split(".")[0]
    return f"{top} (stdlib)" if top in sys.stdlib_module_names else top


def what_the_handler_adds(
    handler_rows: list[tuple[str, int, float, float]], bare_rows: list[tuple[str, int, float, float]], bare: str
) -> str:
    """Self time (under -X importtime) of the modules the bare import does not load, by package."""
    # The modules the bare variant names are imported by importlib, which -X importtime does not list.
    already = {row[0] for row in bare_rows} | set(bare.removeprefix("bare ").split(", "))
    extra_rows = [row for row in handler_rows if row[0] not in already]
    by_package: dict[str, float] = {}
    for module, _, self_ms, _ in extra_rows:
        by_package[package_of(module)] = by_package.get(package_of(module), 0.0) + self_ms
    extra = sum(by_package.values())
    heavy = sorted(by_package.items(), key=lambda kv: -kv[1])[:8]
    listed = ", ".join(f"{package} {ms:.0f} (via {_importer(handler_rows, package, already)})" for package, ms in heavy)
    return f"modules beyond '{bare}' cost {extra:.0f} ms of self time (-X importtime): {listed}"


def _importer(rows: list[tuple[str, int, float, float]], package: str, skip: set[str] | None = None) -> str:
    """The first module outside ``package`` that imported it (children are listed before their parent),
    looking only at modules not in ``skip`` (those the bare import loads too)."""
    skip = skip or set()
    first = next((i for i, row in enumerate(rows) if package_of(row[0]) == package and row[0] not in skip), None)
    if first is None:
        return "?"
    depth = rows[first][1]
    for module, row_depth, _, _ in rows[first + 1 :]:
        if row_depth < depth:
            if package_of(module) != package:
                return module
            depth = row_depth
    return "the handler"


def report(result: ColdStartResult, out: TextIO | None = None) -> str:
    out = out or sys.stdout
    print(
        f"\ncold start, {result.started_at}; {result.machine}\n"
        f"{result.repeats} fresh interpreters per variant; tracing on (Lambda environment), "
        f"sys.path = function dir + src/ (layer) + venv\n",
        file=out,
    )
    rows = []
    for name, s in result.summaries.items():
        rows.append([name, s.n, s.p50, s.p25, s.p75, s.p5, s.p95, median(result.wall[name])])
    table(["import (ms)", "n", "p50", "p25", "p75", "p5", "p95", "process wall p50"], rows, out=out)
    print(file=out)
    ratio_rows = []
    for handler, bare in result.pairs.items():
        paired = result.paired(handler)
        ratio_rows.append(
            [
                f"{handler} / {bare}",
                result.ratio(handler),
                median(paired),
                percentile(paired, 25),
                percentile(paired, 75),
                f"<= {TARGET}",
                verdict(result.ratio(handler) <= TARGET),
            ]
        )
    table(["ratio", "of medians", "paired median", "paired p25", "paired p75", "target", "met"], ratio_rows, out=out)

    for handler, bare in result.pairs.items():
        rows_ = result.importtime.get(handler) or []
        if not rows_:
            continue
        print(f"\n{handler}: python -X importtime, top 8 cumulative (depth 0 = imported by the handler)", file=out)
        top = sorted(rows_, key=lambda r: -r[3])[:8]
        table(["module", "depth", "cumulative ms", "self ms"], [[m, d, c, s] for m, d, s, c in top], out=out)
        print(f"{handler}: {what_the_handler_adds(rows_, result.importtime.get(bare) or [], bare)}", file=out)
    parts = [
        f"{handler}={result.summaries[handler].p50:.0f} ms ({result.ratio(handler):.2f}x)" for handler in result.pairs
    ]
    bares = sorted(set(result.pairs.values()))
    bare_text = ", ".join(f"{b.removeprefix('bare ')}={result.summaries[b].p50:.0f} ms" for b in bares)
    summary = f"cold_start: {'; '.join(parts)} vs bare {bare_text} (<= {TARGET}x) {verdict(result.met)}"
    print("\n" + summary, file=out, flush=True)
    return summary


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cold_start", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", "-n", type=int, default=15, help="fresh interpreters per variant")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--no-importtime", action="store_true", help="skip the -X importtime breakdown")
    parser.add_argument(
        "--functions", nargs="+", metavar="LOGICAL_ID", help="only these functions (default: every one in the template)"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    out = out or sys.stdout
    result = run(args.repeats, args.seed, out, importtime_runs=not args.no_importtime, functions=args.functions)
    report(result, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
