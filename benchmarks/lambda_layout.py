"""What a function looks like on Lambda, rebuilt locally for the cold-start benchmarks; and Lambda's CPU share.

* The deployment: the function's folder and the layer (``src/donations`` plus the distributions
  ``src/requirements.txt`` pulls in, file by file as their RECORDs list them, as ``pip install -r``
  puts them in the layer), copied into a temporary directory, either with their bytecode (compiled as
  infra/sam_build/Makefile does: unchecked-hash .pyc) or without any, as SAM's python builder shipped
  them. Run with ``python -S`` and nothing writable, as on Lambda, where /var/task and /opt are
  read-only: a module without bytecode is compiled at every cold start.
* Another revision of the code (``git archive REF``), laid out the same way, for before/after ratios
  measured side by side in one run.
* CPU: "Lambda allocates CPU power in proportion to the amount of memory configured ... At 1,769 MB, a
  function has the equivalent of one vCPU" ("Configure Lambda function memory",
  docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html). A 512 MB function gets 0.29 of a
  vCPU, the charge function's 1,024 MB 0.58. :func:`on_lambda` scales the CPU time measured here by
  that share and leaves the rest of the wall time (waiting for moto, the Stripe emulator) as it is;
  see its docstring for the limits.
"""

from __future__ import annotations

import compileall
import importlib.metadata as metadata
import io
import py_compile
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
ONE_VCPU_MB = 1769


def vcpu_share(memory_mb: int) -> float:
    """The vCPU a function of ``memory_mb`` gets (a single-threaded interpreter uses at most one)."""
    return min(1.0, memory_mb / ONE_VCPU_MB)


def on_lambda(wall_ms: float, cpu_ms: float, share: float) -> float:
    """Wall time at Lambda's CPU share: CPU time / share, plus the time spent not on the CPU (I/O waits).

    Limits: it assumes this machine's core is as fast as Lambda's (arm64 Graviton here, a guess either
    way), that the CPU time was used by one thread (two threads share the same quota on Lambda: scaling
    their sum is right), and that waits do not scale, though on AWS they are different waits (DynamoDB
    and SQS in the same region instead of moto on loopback, TLS handshakes that loopback HTTP skips).
    """
    return cpu_ms / share + max(0.0, wall_ms - cpu_ms)


@dataclass(frozen=True)
class Layout:
    """A function as Lambda would load it: its sys.path entries, and whether the modules have bytecode."""

    function_dir: Path
    layer_dir: Path
    compiled: bool

    @property
    def paths(self) -> list[str]:
        return [str(self.function_dir), str(self.layer_dir)]


def layer_files(requirements: Path) -> dict[Path, Path]:
    """Every file the layer's distributions install (destination relative path -> installed file)."""
    wanted = [Requirement(line) for line in requirements.read_text().splitlines() if line.strip() and line[0] != "#"]
    seen: set[str] = set()
    files: dict[Path, Path] = {}
    while wanted:
        requirement = wanted.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        distribution = metadata.distribution(name)
        for relative in distribution.files or []:
            if relative.parts[0] != ".." and "__pycache__" not in relative.parts and relative.suffix != ".pyc":
                files[Path(relative)] = Path(str(distribution.locate_file(relative)))
        extras = requirement.extras or {""}
        for line in distribution.requires or []:
            dependency = Requirement(line)
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": e}) for e in extras):
                wanted.append(dependency)
    return files


def export_tree(ref: str, destination: Path) -> Path:
    """The functions, core package and template of git revision ``ref``, extracted into ``destination``."""
    archive = subprocess.run(  # noqa: S603 - git with fixed arguments
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref, "functions", "src", "template.yaml"],  # noqa: S607
        capture_output=True,
        check=True,
    ).stdout
    destination.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(destination, filter="data")
    return destination


def lay_out(tree: Path, code_uri: str, destination: Path, *, compiled: bool, dependencies: dict[Path, Path]) -> Layout:
    """The function ``code_uri`` of ``tree`` and the layer, in ``destination``, with or without bytecode."""
    function_dir, layer_dir = destination / "task", destination / "opt" / "python"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(tree / code_uri, function_dir, ignore=ignore)
    shutil.copytree(tree / "src" / "donations", layer_dir / "donations", ignore=ignore)
    for relative, installed in dependencies.items():
        (layer_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(installed, layer_dir / relative)
    if compiled:
        for directory in (function_dir, layer_dir):
            mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
            if not compileall.compile_dir(directory, quiet=1, workers=0, invalidation_mode=mode):
                raise RuntimeError(f"could not compile everything in {directory}")
    return Layout(function_dir, layer_dir, compiled)
