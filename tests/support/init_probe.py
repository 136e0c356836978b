"""A handler imported as Lambda's INIT imports it: a fresh interpreter, its folder and the layer on the path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from infra.deploy import PROJECT_ROOT
from infra.deploy.resources import FunctionSpec


def after_init(spec: FunctionSpec, script: str, environment: Mapping[str, str]) -> Any:
    """What ``script`` prints as JSON, run in a fresh interpreter with ``environment``; ``{module}`` in it
    names the function's handler module (the script imports it: that import is the function's INIT)."""
    assert spec.code_uri is not None
    path = os.pathsep.join([str(PROJECT_ROOT / spec.code_uri), str(PROJECT_ROOT / "src")])
    completed = subprocess.run(  # noqa: S603 - our own handler, in this interpreter
        [sys.executable, "-c", script.format(module=spec.handler.rsplit(".", 1)[0])],
        env={**environment, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout)
