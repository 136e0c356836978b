"""`make build` finds the Pythons `sam build` needs among those pyenv has installed, whatever their patch."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from infra.deploy import PROJECT_ROOT

pytestmark = pytest.mark.infra

FAKE_PYENV = """#!/bin/sh
# `pyenv versions --bare` of a machine with other patches than the ones the Makefile once named
printf '%s\\n' 2.7.18 3.11.2 3.11.10 3.11.9 3.11.10/envs/tools 3.12.0 3.12.3 3.13.0
"""


def _sam_build_line(path: str) -> str:
    made = subprocess.run(  # noqa: S603 - make, dry run (-n): prints the recipe, runs nothing
        [shutil.which("make") or "make", "-s", "-n", "build"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": path},
        check=True,
    )
    return next(line for line in made.stdout.splitlines() if "sam build" in line)


def test_make_build_puts_the_newest_installed_3_11_and_3_12_on_path(tmp_path: Path):
    # Given pyenv with several patches of 3.11 and 3.12 (none of them 3.11.7 or 3.12.1)
    fake = tmp_path / "pyenv"
    fake.write_text(FAKE_PYENV)
    fake.chmod(0o755)

    # When make prints its build recipe
    line = _sam_build_line(f"{tmp_path}:{os.environ['PATH']}")

    # Then the newest of each, by patch number (3.11.10 after 3.11.9), is what sam build runs with
    assert line.startswith("PYENV_VERSION=3.11.10:3.12.3 ")
