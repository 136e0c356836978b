"""docs/security.md says what the code and the template do: the restricted keys' permissions and parameters,
and how to store a key without putting it on a command line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from donations.stripe_keys import STRIPE_KEY_PERMISSIONS, STRIPE_KEY_VARIABLES
from infra.deploy import PROJECT_ROOT, load_template

pytestmark = pytest.mark.unit

SECURITY = PROJECT_ROOT / "docs" / "security.md"
# README.md is being rewritten into docs/ (its deploy section moves there): its put-parameter lines
# are the README rewrite's to change (tell the lead, not this test).
DOCUMENTS = [*sorted((PROJECT_ROOT / "docs").glob("**/*.md")), PROJECT_ROOT / "RUNBOOK.md"]
ROW = re.compile(r"^\| (\w+) \| `(\w+)` \(`([^`]+)`\) \| ([^|]+) \|$", re.MULTILINE)


def _documented_keys() -> dict[str, tuple[str, str, dict[str, str]]]:
    """Function -> (template parameter, its default name, Stripe resource -> permission) from the page."""
    rows = {}
    for function, parameter, default, permissions in ROW.findall(SECURITY.read_text()):
        pairs = (part.split(": ") for part in permissions.strip().split("; "))
        rows[function] = (parameter, default, {resource: access for resource, access in pairs})
    return rows


def test_the_page_lists_each_functions_key_with_the_permissions_the_code_needs() -> None:
    documented = _documented_keys()

    assert {function: permissions for function, (_, _, permissions) in documented.items()} == {
        function: {resource: access.value for resource, access in permissions.items()}
        for function, permissions in STRIPE_KEY_PERMISSIONS.items()
    }


def test_the_page_names_the_templates_parameters_and_their_defaults() -> None:
    template = load_template(PROJECT_ROOT / "template.yaml")
    environment = {
        variable: value["Ref"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function"
        for variable, value in resource["Properties"].get("Environment", {}).get("Variables", {}).items()
        if isinstance(value, dict) and "Ref" in value
    }
    for function, (parameter, default, _) in _documented_keys().items():
        assert environment[STRIPE_KEY_VARIABLES[function]] == parameter
        assert template["Parameters"][parameter]["Default"] == default


def _put_parameter_commands(document: Path) -> list[str]:
    text = document.read_text().replace("\\\n", " ")
    return [line for line in text.splitlines() if "put-parameter" in line and "--value" in line]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_no_document_puts_a_secret_on_the_command_line(document: Path) -> None:
    for command in _put_parameter_commands(document):
        value = re.search(r"--value\s+(\S+)", command)
        assert value and value.group(1).startswith("file://"), command


def test_the_page_stores_a_key_from_a_file_under_the_stacks_key() -> None:
    [command] = [c for c in _put_parameter_commands(SECURITY) if "--name" in c]
    assert "--value file://" in command and '--key-id "$KEY_ARN"' in command and "--type SecureString" in command
