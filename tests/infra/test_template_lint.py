"""The template translates offline and passes cfn-lint and `sam validate --lint`."""

from __future__ import annotations

import subprocess

import pytest

from infra.deploy import PROJECT_ROOT, Template
from tests.infra.tooling import TEMPLATE, tool, tool_env

pytestmark = pytest.mark.infra

# cfn-lint warnings we accept, by rule id, each with the reason. Keep empty unless justified.
ACCEPTED_CFN_LINT_WARNINGS: dict[str, str] = {}


def test_translation_leaves_no_sam_resources(cfn_template: Template) -> None:
    # Given the SAM template translated offline
    kinds = {r["Type"] for r in cfn_template["Resources"].values()}

    # Then only CloudFormation resource types remain, including the API and the event sources
    assert not {k for k in kinds if k.startswith("AWS::Serverless::")}
    assert {"AWS::ApiGateway::RestApi", "AWS::Lambda::EventSourceMapping", "AWS::Lambda::LayerVersion"} <= kinds
    assert "Transform" not in cfn_template


def test_translation_keeps_local_code_paths(cfn_template: Template) -> None:
    # The local stack finds each function's code (and the layer's) from the translated template.
    local = {
        lid: r.get("Metadata", {}).get("LocalUri")
        for lid, r in cfn_template["Resources"].items()
        if r["Type"] in ("AWS::Lambda::Function", "AWS::Lambda::LayerVersion")
    }
    assert {k: v for k, v in local.items() if k.endswith("Function")} == {
        "ChargeFunction": "functions/charge/",
        "TokenizeFunction": "functions/tokenize/",
        "SendReceiptFunction": "functions/send_receipt/",
        "ReconcilerFunction": "functions/reconciler/",
        "StripeWebhookFunction": "functions/stripe_webhook/",
        "NotifierFunction": "functions/notifier/",
        "ScheduleRenewalsFunction": "functions/schedule_renewals/",
        "RenewFunction": "functions/renew/",
    }
    assert [v for k, v in local.items() if k.startswith("CoreLayer")] == ["src/"]


def test_cfn_lint_reports_no_errors_and_only_accepted_warnings() -> None:
    from cfnlint.api import lint_file

    # When cfn-lint checks the template (SAM is translated by cfn-lint itself)
    matches = lint_file(TEMPLATE)

    # Then there are no errors, and every warning is one we accepted on purpose
    problems = [
        f"{m.rule.id} line {m.linenumber}: {m.message}"
        for m in matches
        if not (m.rule.id.startswith("W") and m.rule.id in ACCEPTED_CFN_LINT_WARNINGS) and not m.rule.id.startswith("I")
    ]
    assert problems == []


def test_sam_validate_lint_passes_offline() -> None:
    sam = tool("sam")
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [str(sam), "validate", "--lint", "--template-file", str(TEMPLATE)],
        cwd=PROJECT_ROOT,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr
