"""The Lambda layer ships exactly the core's runtime dependencies; the operator tool's stay out of it."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _imported_distributions(package: Path) -> set[str]:
    """The installed distributions whose top-level modules a package's code imports."""
    modules: set[str] = set()
    for source in package.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    providers = packages_distributions()
    return {
        canonicalize_name(dist)
        for module in modules - set(sys.stdlib_module_names)
        for dist in providers.get(module, [])
    }


def _requirements(lines: list[str]) -> dict[str, Requirement]:
    found = [Requirement(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return {canonicalize_name(requirement.name): requirement for requirement in found}


def test_the_layer_requirements_are_the_project_dependencies_the_core_needs():
    project = _requirements(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    layer = _requirements((ROOT / "src" / "requirements.txt").read_text().splitlines())
    core = _imported_distributions(ROOT / "src" / "donations")
    operator_only = _imported_distributions(ROOT / "src" / "donations_ops") - core

    # The operator tool's own dependencies (rich) are project dependencies, and never in the layer...
    assert "rich" in operator_only and "rich" in project
    # ...and the layer holds every other runtime dependency, with the same version and extras.
    expected = {name: str(requirement) for name, requirement in project.items() if name not in operator_only}
    assert {name: str(requirement) for name, requirement in layer.items()} == expected
