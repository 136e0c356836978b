"""`pip install .` in a fresh virtualenv gives a working operator tool: its dependencies are its own."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from infra.deploy import PROJECT_ROOT

pytestmark = pytest.mark.slow

_NOT_SOURCE = (".git", ".venv", ".tools", "build", "*.egg-info", "__pycache__", ".*_cache", ".aws-sam", "artifacts")


def test_a_plain_install_gives_a_working_donations_ops(tmp_path: Path):
    # Given a fresh virtualenv with nothing but pip
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / ("Scripts" if sys.platform == "win32" else "bin")

    # When a copy of the project (so the build leaves nothing in the working tree) is installed the
    # plain way, its runtime dependencies from the package index
    source = tmp_path / "source"
    shutil.copytree(PROJECT_ROOT, source, ignore=shutil.ignore_patterns(*_NOT_SOURCE))
    installed = subprocess.run(  # noqa: S603 - pip installing this repository
        [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,  # not the repository: the installed package must stand alone
    )
    assert installed.returncode == 0, installed.stderr[-3000:]

    # Then donations-ops answers --help and lists its commands
    helped = subprocess.run(  # noqa: S603 - the installed console script
        [str(bin_dir / "donations-ops"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert helped.returncode == 0, helped.stderr[-3000:]
    for command in ("status", "alarms", "dlq", "redrive", "replay", "donor", "report", "receipts"):
        assert command in helped.stdout

    # And the receipt template it installs into SendGrid is part of the package
    shipped = subprocess.run(  # noqa: S603 - the installed package
        [str(bin_dir / "python"), "-c", "from donations_ops.receipts import shipped_template as t; print(t().subject)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert shipped.returncode == 0, shipped.stderr[-3000:]
    assert "{{{org_name}}}" in shipped.stdout

    # And nothing dev-only comes with it: no simulator, no infrastructure recipes, no local-stack script
    for dev_only in ("simulator", "infra"):
        found = subprocess.run(  # noqa: S603 - the installed package
            [str(bin_dir / "python"), "-c", f"import importlib.util as u; print(u.find_spec({dev_only!r}))"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=tmp_path,
        )
        assert found.stdout.strip() == "None", f"{dev_only} ships in the wheel: {found.stdout}"
    assert not (bin_dir / "donations-local").exists()
