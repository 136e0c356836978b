"""Cold donor: from a fresh interpreter to the answer of the first donation, vs a warm donation, in one run.

The charge function runs as on Lambda (benchmarks/lambda_layout.py): its folder and the layer copied
out, ``python -S``, nothing writable, its environment as the template deployed it into moto (a moto
server in its own process), tracing on (X-Ray segments to a UDP sink on loopback), the Stripe
emulator answering PaymentIntents in ``--charge-ms`` (+/- 10 %). Each round starts one fresh
interpreter per variant, in a shuffled order; each does INIT (the handler's import), the first
donation (the key from Parameter Store, the first connections, the request through the real handler)
and then ``--warm`` donations, so cold and warm samples share the machine's noise:

* ``cold (.pyc)``: the build as infra/sam_build/Makefile ships it, every module with its bytecode;
* ``cold (no .pyc)``: the same files without bytecode, as SAM's python builder shipped them;
* ``cold @REF (.pyc)`` with ``--compare REF``: another revision's code (e.g. main), same layout;
* ``warm-up, Ns typing (.pyc)``: the donor's story with the form's warm-up (docs/warm-up.md): the
  form is opened, its warm-up (POST /warmup) reaches a fresh interpreter, which runs INIT and the
  warm-up; the donor types for ``--typing`` seconds (default 10); then the first donation. What the
  donor waits for is that donation alone, if the warm-up was done by then (the report says);
* ``SnapStart, modelled (.pyc)``: INIT, then SnapStart's hooks as around a snapshot and a restore
  (connections closed, keys forgotten), then the first donation: a restored environment's, without
  the restore itself, which is not measured here.

Figures are also given at the CPU share Lambda gives the template's MemorySize (lambda_layout.on_lambda).
A few more interpreters, instrumented and run under ``-X importtime`` (``--breakdown``), say what
dominates: the imports of INIT, what the first donation still imports, and where its time goes.

    python -m benchmarks.cold_donor [--rounds 10 --warm 3 --charge-ms 300 --typing 10 --breakdown 3 --compare main]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from benchmarks.cold_donor_report import report
from benchmarks.cold_donor_results import NO_PYC, PYC, SNAPSTART, ColdDonorConfig, ColdDonorResult, Sample, warmed_up
from benchmarks.common import DUMMY_AWS_ENV, benchmark_process, machine
from benchmarks.cost_template import template_facts
from benchmarks.lambda_layout import ROOT, Layout, export_tree, lay_out, layer_files
from simulator.local.process import free_port

FUNCTION = "ChargeFunction"
CHILD = Path(__file__).with_name("cold_donor_child.py")
BOOTSTRAP = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
STRIPE_KEY = "sk_test_cold_donor"
IDENTIFIER_SECRET = "cold-donor-identifier-secret-of-32-characters"  # noqa: S105 - a benchmark-only value


class _UdpSink:
    """Where the X-Ray SDK sends its segments (AWS_XRAY_DAEMON_ADDRESS): loopback, counted, dropped."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.datagrams = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.socket.getsockname()[1]}"

    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                self.socket.recv(65536)
                self.datagrams += 1
            except (TimeoutError, OSError):
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.socket.close()


@dataclass
class _World:
    moto_url: str
    stripe_url: str
    xray: str
    spec: Any  # infra.deploy.FunctionSpec of the charge function


@contextmanager
def _world(config: ColdDonorConfig) -> Iterator[tuple[_World, Any, _UdpSink]]:
    """moto (own process) with the template deployed, the Stripe key stored, the Stripe emulator, the UDP sink."""
    from infra.deploy import AwsClients, deploy_to_moto, load_template, translate
    from simulator.emulators.stripe import StripeEmulator
    from simulator.local.moto_process import MotoProcess
    from simulator.local.pipeline import LOCAL_FORM_ORIGIN, ProviderEndpoints

    moto = MotoProcess(free_port()).start()
    stripe = StripeEmulator().start()
    sink = _UdpSink()
    try:
        clients = AwsClients(endpoint_url=moto.url)
        stack = deploy_to_moto(
            translate(load_template(ROOT / "template.yaml")),
            stack_name="cold-donor",
            # The parameters a deployer must give (docs/security.md): the local stack's values.
            parameters={"AllowedOrigin": LOCAL_FORM_ORIGIN, "TurnstileSiteKey": ProviderEndpoints().turnstile_sitekey},
            clients=clients,
        )
        spec = stack.functions[FUNCTION]
        key_name = spec.environment["STRIPE_CHARGE_SECRET_NAME"]
        clients("ssm").put_parameter(Name=key_name, Value=STRIPE_KEY, Type="SecureString")
        # The secret that keys donation ids (donations.identifiers), where the template names it.
        identifier = spec.environment.get("IDENTIFIER_SECRET_NAME")
        if identifier:
            clients("ssm").put_parameter(Name=identifier, Value=IDENTIFIER_SECRET, Type="SecureString")
        # Revisions before the keys moved to Parameter Store (--compare) read it from Secrets Manager.
        clients("secretsmanager").create_secret(Name=key_name, SecretString=STRIPE_KEY)
        stripe.set_latency("POST /v1/payment_intents", config.charge_ms, config.charge_ms * config.jitter)
        stripe.seed(config.seed)
        yield _World(moto.url, stripe.url, sink.address, spec), stripe, sink
    finally:
        sink.close()
        stripe.stop()
        moto.stop()


def _environment(world: _World, layout: Layout) -> dict[str, str]:
    """The charge function's process environment on Lambda, its AWS calls sent to moto."""
    spec = world.spec
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        **DUMMY_AWS_ENV,
        "AWS_REGION": DUMMY_AWS_ENV["AWS_DEFAULT_REGION"],
        "LAMBDA_TASK_ROOT": str(layout.function_dir),
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "1",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_XRAY_DAEMON_ADDRESS": world.xray,
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "_HANDLER": spec.handler,
        "FUNCTION_TIMEOUT": str(spec.timeout),
        "PYTHONDONTWRITEBYTECODE": "1",  # read-only, as /var/task and /opt are
        **spec.environment,
        "AWS_ENDPOINT_URL": world.moto_url,
        "STRIPE_API_BASE": world.stripe_url,
    }


@dataclass(frozen=True)
class Variant:
    layout: Layout
    options: tuple[str, ...] = ()  # the child's: --warm-up SECONDS, --snapstart
    memory_mb: int | None = None  # another revision's MemorySize for the function, from its template
    environment: Mapping[str, str] | None = None  # and the variables it reads that this one does not

    @property
    def warms_up(self) -> bool:
        return "--warm-up" in self.options


def _events(directory: Path, count: int, *, warm_up: bool = False) -> Path:
    from donations.api import WARMUP_PATH
    from simulator.local.events import api_gateway_event

    # The form's warm-up as a browser sends it: POST, no body, no header but the page's Origin.
    events = [api_gateway_event("POST", WARMUP_PATH, headers={"Origin": "https://donate.example.org"},
                                resource=WARMUP_PATH)] if warm_up else []  # fmt: skip
    # Each donation another donor from another address: one donor giving again and again from one
    # address is what the card-testing checks refuse (403 before Stripe), which is not a donation.
    for _ in range(count):
        donor = uuid.uuid4()
        body = {"amount": 2500, "currency": "usd", "email": f"donor-{donor.hex[:12]}@example.org", "name": "Ada"}
        events.append(
            api_gateway_event(
                "POST",
                "/donations",
                body={**body, "payment_method": "pm_card_visa", "save_card": False},
                headers={"Content-Type": "application/json", "Idempotency-Key": f"cold-donor-{donor}"},
                resource="/donations",
                source_ip=f"198.51.{donor.int % 250}.{donor.int // 250 % 250 + 1}",
            )
        )
    path = directory / f"events-{uuid.uuid4().hex}.json"
    path.write_text(json.dumps(events))
    return path


def _run_child(
    world: _World,
    layout: Layout,
    events: Path,
    *options: str,
    python: Sequence[str] = (),
    instrument: bool = False,
    environment: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], str, float]:
    """(the child's report, its stderr, the wall clock at its spawn); ``python``: the interpreter's options."""
    module = world.spec.handler.rsplit(".", 1)[0]
    command = [sys.executable, "-S", *python, "-c", BOOTSTRAP, str(CHILD), json.dumps(layout.paths), module]
    command += [str(events), *options, *(["--instrument"] if instrument else [])]
    spawned = time.time()
    completed = subprocess.run(  # noqa: S603 - our interpreter and script
        command,
        env={**_environment(world, layout), **(environment or {})},
        cwd=events.parent,
        capture_output=True,
        text=True,
        timeout=180,
    )
    report = next((line for line in reversed(completed.stdout.splitlines()) if line.startswith('{"started"')), None)
    if completed.returncode != 0 or report is None:
        raise RuntimeError(f"the cold donor child failed:\n{completed.stderr[-3000:]}")
    return json.loads(report), completed.stderr, spawned


def sample(world: _World, variant: Variant, events: Path) -> Sample:
    report, _, spawned = _run_child(world, variant.layout, events, *variant.options, environment=variant.environment)
    first, *warm = report["invocations"]
    warm_up = report.get("warm_up") or {}
    return Sample(
        start=(report["started"] - spawned) * 1000,
        init_wall=report["init"]["wall"],
        init_cpu=report["init"]["cpu"],
        first_wall=first["wall"],
        first_cpu=first["cpu"],
        warm_wall=[w["wall"] for w in warm],
        warm_cpu=[w["cpu"] for w in warm],
        statuses=[i["status"] for i in report["invocations"]],
        warm_up_status=warm_up.get("status"),
        warm_up_wall=warm_up.get("wall"),
        warm_up_cpu=warm_up.get("cpu"),
    )


def _variants(config: ColdDonorConfig, workspace: Path, spec: Any) -> dict[str, Variant]:
    """``spec``: the charge function as deployed (infra.deploy.FunctionSpec)."""
    from infra.deploy import load_template

    code_uri = spec.code_uri or "functions/charge/"
    dependencies = layer_files(ROOT / "src" / "requirements.txt")
    compiled = lay_out(ROOT, code_uri, workspace / "pyc", compiled=True, dependencies=dependencies)
    variants = {
        PYC: Variant(compiled),
        NO_PYC: Variant(lay_out(ROOT, code_uri, workspace / "source", compiled=False, dependencies=dependencies)),
        warmed_up(config.typing_seconds): Variant(compiled, ("--warm-up", str(config.typing_seconds))),
        SNAPSTART: Variant(compiled, ("--snapstart",)),
    }
    if config.compare:
        tree = export_tree(config.compare, workspace / "ref-tree")
        variants[f"cold @{config.compare} (.pyc)"] = Variant(
            lay_out(tree, code_uri, workspace / "ref", compiled=True, dependencies=dependencies),
            # Scaled at the share that revision deployed the function with: its INIT, as its donors met it.
            memory_mb=template_facts(load_template(tree / "template.yaml")).memory_mb[FUNCTION],
            # Revisions before each function had a Stripe key of its own (3e58ed9) read STRIPE_SECRET_NAME;
            # _world stores the key under that name where both kinds read it.
            environment={"STRIPE_SECRET_NAME": spec.environment["STRIPE_CHARGE_SECRET_NAME"]},
        )
    return variants


def run(config: ColdDonorConfig, out: TextIO | None = None) -> ColdDonorResult:
    out = out or sys.stdout
    started_at = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    load = "load average {:.2f} {:.2f} {:.2f} at the start".format(*os.getloadavg())
    with benchmark_process(), tempfile.TemporaryDirectory(prefix="cold-donor-") as workspace_name:
        workspace = Path(workspace_name)
        with _world(config) as (world, _, sink):
            variants = _variants(config, workspace, world.spec)
            # Each layout once, unmeasured: the page cache
            for variant in {v.layout: Variant(v.layout, environment=v.environment) for v in variants.values()}.values():
                sample(world, variant, _events(workspace, 1))
            print(
                f"{config.rounds} rounds x {len(variants)} fresh interpreters, shuffled; {load}", file=out, flush=True
            )
            samples: dict[str, list[Sample]] = {name: [] for name in variants}
            rng = random.Random(config.seed)
            for round_no in range(config.rounds):
                order = list(variants)
                rng.shuffle(order)
                for name in order:
                    events = _events(workspace, 1 + config.warm, warm_up=variants[name].warms_up)
                    samples[name].append(sample(world, variants[name], events))
                if (round_no + 1) % 5 == 0:
                    print(f"  {round_no + 1}/{config.rounds} rounds", file=out, flush=True)
            breakdown, importtime = _breakdown(config, world, variants[PYC].layout, workspace)
            segments = sink.datagrams
    memory_by_variant = {name: v.memory_mb for name, v in variants.items() if v.memory_mb is not None}
    return ColdDonorResult(
        config, world.spec.memory_size, samples, breakdown, importtime, machine(), started_at, load, segments,
        memory_by_variant=memory_by_variant,
    )  # fmt: skip


def _breakdown(
    config: ColdDonorConfig, world: _World, layout: Layout, workspace: Path
) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Instrumented interpreters under -X importtime: attribution only, never the timed samples."""
    reports: list[dict[str, Any]] = []
    stderrs: list[str] = []
    for _ in range(config.breakdown):
        report, stderr, _ = _run_child(
            world, layout, _events(workspace, 1 + max(1, config.warm)), python=("-X", "importtime"), instrument=True
        )
        reports.append(report)
        stderrs.append(stderr)
    return reports, {"stderr": stderrs}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cold_donor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", "-n", type=int, default=10, help="fresh interpreters per variant")
    parser.add_argument("--warm", type=int, default=3, help="warm donations after each first one")
    parser.add_argument("--charge-ms", type=float, default=300.0, help="the Stripe emulator's PaymentIntent latency")
    parser.add_argument("--breakdown", type=int, default=3, help="instrumented interpreters for the attribution")
    parser.add_argument("--compare", metavar="REF", help="also run this git revision's code (e.g. main)")
    parser.add_argument(
        "--typing", type=float, default=10.0, help="seconds the donor takes on the form after the warm-up"
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.warm < 1 or args.typing < 0:
        parser.error("--rounds and --warm must be >= 1, --typing >= 0")
    config = ColdDonorConfig(
        args.rounds, args.warm, args.charge_ms, 0.10, args.seed, args.breakdown, args.compare, args.typing
    )
    out = out or sys.stdout
    result = run(config, out)
    report(result, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
