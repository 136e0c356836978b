"""`sam build` turns the template into deployable functions, with no hand steps.

The functions target arm64. Lambda's layout is reproduced for each function: a clean python3.12
with the function's build dir, then the layer's python/ dir, then what Lambda's runtime itself
provides (boto3 and its dependencies) on the path; the handler module must import and expose a
callable `lambda_handler`. The layer holds compiled wheels (pydantic_core...), which an x86_64
machine cannot load from an arm64 build: there the imports run against a second build of the same
template for the machine's architecture, while the arm64 build is checked for its layout and wheels.

Every module ships with its bytecode (infra/sam_build/Makefile): /var/task and /opt are read-only, so a
module without it is compiled on every cold start. The import runs as on Lambda after `sam package`:
the sources' modification time 1980-01-01 (the zip's), nothing written, and no module of the build
may be compiled from source (``python -v`` says which file each module's code object came from).
"""

from __future__ import annotations

import copy
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

from infra.deploy import PROJECT_ROOT, Template
from tests.infra.template_contracts import Deployed
from tests.infra.tooling import tool, tool_env

pytestmark = [pytest.mark.infra, pytest.mark.slow]

PYENV_VERSION = "3.11.7:3.12.1"  # puts python3.12 on PATH next to the project's 3.11 (TOOLING.md)
ZIP_EPOCH = 315_532_800  # 1980-01-01: `sam package` writes its zip entries without a date (zipfile's default)
UNCHECKED_HASH = 0b01  # PEP 552 flags: hash-based, source not checked
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")
HOST_IS_ARM = platform.machine().lower() in ("aarch64", "arm64")
IMPORT_HANDLER = """
import importlib, json, sys
module_name, attribute = sys.argv[1].rsplit(".", 1)
module = importlib.import_module(module_name)
assert callable(getattr(module, attribute)), f"{sys.argv[1]} is not callable"
import donations, pydantic_core
origins = {"handler": module, "donations": donations, "pydantic_core": pydantic_core}
print(json.dumps({name: m.__file__ for name, m in origins.items()}))
"""


def _functions(template: Template) -> dict[str, str]:
    """Function logical id -> Handler."""
    return {
        lid: r["Properties"]["Handler"]
        for lid, r in template["Resources"].items()
        if r["Type"] == "AWS::Serverless::Function"
    }


def _for_architecture(template: Template, architecture: str) -> Template:
    variant = copy.deepcopy(template)
    variant["Globals"]["Function"]["Architectures"] = [architecture]
    layer = variant["Resources"]["CoreLayer"]
    layer["Properties"]["CompatibleArchitectures"] = [architecture]
    layer["Metadata"]["BuildArchitecture"] = architecture
    return variant


def _sam_build(template: Path, build_dir: Path, architecture: str | None) -> subprocess.Popen[str]:
    """``architecture``: for infra/sam_build/Makefile, which SAM does not tell; None leaves its default (arm64)."""
    command = [
        str(tool("sam")), "build", "--template-file", str(template), "--build-dir", str(build_dir),
        "--base-dir", str(PROJECT_ROOT),
    ]  # fmt: skip
    return subprocess.Popen(  # noqa: S603 - fixed arguments
        command,
        cwd=PROJECT_ROOT,
        env=tool_env(PYENV_VERSION=PYENV_VERSION, **({"LAMBDA_ARCHITECTURE": architecture} if architecture else {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait(process: subprocess.Popen[str]) -> None:
    output, _ = process.communicate(timeout=900)
    assert process.returncode == 0, output


def _python312() -> str:
    found = shutil.which("python3.12", path=os.environ.get("PATH"))
    if found is None:
        pytest.fail(f"python3.12 not on PATH (with pyenv: PYENV_VERSION={PYENV_VERSION})", pytrace=False)
    return found


def _runtime_provided(directory: Path) -> Path:
    """What Lambda's python3.12 runtime adds after the layers: boto3 and friends (pure Python)."""
    import boto3

    site_packages = Path(boto3.__file__).parent.parent
    directory.mkdir()
    for name in RUNTIME_PROVIDED:
        (directory / name).symlink_to(site_packages / name)
    return directory


@pytest.fixture(scope="module")
def builds(sam_template: Template, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The template built as deployed (arm64) and, on other machines, for the machine (side by side)."""
    root = tmp_path_factory.mktemp("sam")
    targets = {"arm64": PROJECT_ROOT / "template.yaml"}
    if not HOST_IS_ARM:
        variant = root / "template-x86_64.json"
        variant.write_text(json.dumps(_for_architecture(sam_template, "x86_64")))
        targets["x86_64"] = variant
    # The template's own build (arm64) with the Makefile's default architecture, which must agree with it.
    processes = {
        arch: _sam_build(template, root / arch, None if arch == "arm64" else arch) for arch, template in targets.items()
    }
    for process in processes.values():
        _wait(process)
    for arch in targets:  # as `sam package` zips them, and Lambda unzips them
        for source in (root / arch).rglob("*.py"):
            os.utime(source, (ZIP_EPOCH, ZIP_EPOCH))
    return {arch: root / arch for arch in targets}


def _built_dirs(sam_template: Template, build: Path) -> list[Path]:
    return [build / logical_id for logical_id in _functions(sam_template)] + [build / "CoreLayer" / "python"]


def test_every_module_ships_its_bytecode_for_python_3_12(sam_template: Template, builds: dict[str, Path]) -> None:
    magic = bytes.fromhex(
        subprocess.run(  # noqa: S603 - fixed arguments
            [_python312(), "-c", "import importlib.util; print(importlib.util.MAGIC_NUMBER.hex())"],
            env={**os.environ, "PYENV_VERSION": PYENV_VERSION},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    for directory in _built_dirs(sam_template, builds["arm64"]):
        sources = list(directory.rglob("*.py"))
        assert sources, directory
        missing, wrong = [], []
        for source in sources:
            compiled = source.parent / "__pycache__" / f"{source.stem}.cpython-312.pyc"
            if not compiled.is_file():
                missing.append(source)
                continue
            header = compiled.read_bytes()[:8]
            if header[:4] != magic or int.from_bytes(header[4:8], "little") != UNCHECKED_HASH:
                wrong.append(compiled)
        assert missing == [], f"{len(missing)} of {len(sources)} modules without bytecode, e.g. {missing[:3]}"
        assert wrong == [], f"not Python 3.12's unchecked-hash bytecode: {wrong[:3]}"


def test_arm64_build_has_each_handler_and_the_core_layer(sam_template: Template, builds: dict[str, Path]) -> None:
    build = builds["arm64"]
    for logical_id, handler in _functions(sam_template).items():
        module = handler.rsplit(".", 1)[0]
        assert (build / logical_id / f"{module}.py").is_file(), f"{logical_id}: {module}.py not built"
    layer = build / "CoreLayer" / "python"
    assert (layer / "donations" / "__init__.py").is_file()
    # Compiled dependencies were fetched for Lambda's arm64, not for this machine.
    assert list(layer.glob("pydantic_core/_pydantic_core.*aarch64*.so"))


@pytest.mark.parametrize(
    "logical_id",
    [
        "ChargeFunction",
        "TokenizeFunction",
        "SendReceiptFunction",
        "ReconcilerFunction",
        "StripeWebhookFunction",
        "RenewFunction",
        "ScheduleRenewalsFunction",
    ],
)
def test_built_handler_imports_like_on_lambda(
    sam_template: Template, builds: dict[str, Path], deployed: Deployed, tmp_path: Path, logical_id: str
) -> None:
    build = builds["arm64" if HOST_IS_ARM else "x86_64"]
    handler = _functions(sam_template)[logical_id]
    function_dir, layer_dir = build / logical_id, build / "CoreLayer" / "python"
    path = os.pathsep.join(map(str, (function_dir, layer_dir, _runtime_provided(tmp_path / "runtime"))))
    env = {
        # The function's variables as the template sets them (resolved by the stack in moto): its
        # settings are read, and required, during INIT.
        **deployed.stack.functions[logical_id].environment,
        "PATH": os.environ["PATH"],
        "PYENV_VERSION": PYENV_VERSION,
        "PYTHONPATH": path,
        "AWS_DEFAULT_REGION": "us-east-1",
    }

    result = subprocess.run(  # noqa: S603 - fixed arguments
        [_python312(), "-s", "-v", "-c", IMPORT_HANDLER, handler],
        cwd=tmp_path,  # nothing importable from the working tree
        env={**env, "PYTHONDONTWRITEBYTECODE": "1"},  # read-only, as /var/task and /opt are
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    # "# code object from <file>.py" (unquoted) is a module compiled from source; from bytecode it names the .pyc.
    compiled_here = [
        line
        for line in result.stderr.splitlines()
        if line.startswith(f"# code object from {build}") and line.endswith(".py")
    ]
    assert compiled_here == [], f"{len(compiled_here)} modules compiled at import, e.g. {compiled_here[:3]}"
    origins = json.loads(result.stdout.strip().splitlines()[-1])
    assert origins["handler"].startswith(str(function_dir))
    assert origins["donations"].startswith(str(layer_dir))
    assert origins["pydantic_core"].startswith(str(layer_dir))
