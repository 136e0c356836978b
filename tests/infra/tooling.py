"""Where the template and the dev tools (in their own venvs under .tools/) are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from infra.deploy import PROJECT_ROOT

TEMPLATE = PROJECT_ROOT / "template.yaml"
TOOLS = PROJECT_ROOT / ".tools"
# checkov and aws-sam-cli pin boto/botocore versions that clash with the project's: own venvs.
TOOL_INSTALL = {
    "checkov": "python3 -m venv .tools/checkov && .tools/checkov/bin/pip install checkov==3.3.30",
    "sam": "python3 -m venv .tools/sam && .tools/sam/bin/pip install aws-sam-cli==1.170.0",
}


def tool(name: str, executable: str | None = None) -> Path:
    """A dev tool's executable; fails the test (never skips) with the install command if absent."""
    path = TOOLS / name / "bin" / (executable or name)
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make tools` (or: {TOOL_INSTALL[name]})", pytrace=False)
    return path


def tool_env(**extra: str) -> dict[str, str]:
    """Environment for tool subprocesses: a region, no real AWS credentials, no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"AWS_DEFAULT_REGION": "us-east-1", "SAM_CLI_TELEMETRY": "0"}
    return env | extra
