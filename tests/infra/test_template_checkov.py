"""checkov passes on template.yaml; every suppression is in the template, explained, and still needed.

checkov runs from its own venv (.tools/checkov: its pins clash with ours). Its cloudformation
framework reads the SAM resource types directly, so it scans template.yaml as written.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from infra.deploy import PROJECT_ROOT, Template
from tests.infra.tooling import TEMPLATE, tool, tool_env

pytestmark = pytest.mark.infra

CONFIG = PROJECT_ROOT / ".checkov.yaml"
Finding = tuple[str, str]  # (check id, "Type.LogicalId")


def _suppressions(template: Template) -> dict[Finding, str]:
    return {
        (skip["id"], f"{resource['Type']}.{lid}"): str(skip.get("comment", ""))
        for lid, resource in template["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    }


def _without_suppressions(template: Template) -> Template:
    bare = copy.deepcopy(template)
    for resource in bare["Resources"].values():
        resource.get("Metadata", {}).pop("checkov", None)
    return bare


def _start_checkov(target: Path) -> subprocess.Popen[str]:
    command = [str(tool("checkov")), "--config-file", str(CONFIG), "--file", str(target), "--output", "json"]
    return subprocess.Popen(  # noqa: S603 - fixed arguments
        command, cwd=PROJECT_ROOT, env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _report(process: subprocess.Popen[str]) -> dict[str, Any]:
    stdout, stderr = process.communicate(timeout=300)
    # Exit code 1 only means "some check failed": the report says which.
    assert process.returncode in (0, 1), stderr
    reports = json.loads(stdout)
    reports = reports if isinstance(reports, list) else [reports]
    [report] = [r for r in reports if r.get("check_type") == "cloudformation"]
    return dict(report)


@pytest.fixture(scope="module")
def reports(sam_template: Template, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """checkov on template.yaml and on a copy without its suppressions, side by side (seconds each)."""
    bare = tmp_path_factory.mktemp("checkov") / "template-without-suppressions.json"
    bare.write_text(json.dumps(_without_suppressions(sam_template)))
    processes = {"template": _start_checkov(TEMPLATE), "unsuppressed": _start_checkov(bare)}
    return {name: _report(process) for name, process in processes.items()}


def _findings(report: dict[str, Any], kind: str) -> set[Finding]:
    return {(c["check_id"], c["resource"]) for c in report["results"][kind]}


def test_checkov_reports_no_failed_check(reports: dict[str, dict[str, Any]]) -> None:
    report = reports["template"]
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in report["results"]["failed_checks"]]
    assert failed == [], "fix it, or add a Metadata checkov skip with a comment saying why"
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 0


def test_every_suppression_is_explained_and_still_needed(
    sam_template: Template, reports: dict[str, dict[str, Any]]
) -> None:
    suppressions = _suppressions(sam_template)
    unexplained = [finding for finding, comment in suppressions.items() if len(comment.strip()) < 20]
    assert unexplained == []
    # A suppression must hide a check that fails without it (a stale one hides future problems).
    would_fail = _findings(reports["unsuppressed"], "failed_checks")
    assert set(suppressions) - would_fail == set(), "stale suppressions"
    assert would_fail - set(suppressions) == set(), "failures that no suppression covers"
