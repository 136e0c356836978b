"""RUNBOOK.md and the template's alarms stay in step: a section per alarm and an alarm per section, and
each description names its cause, a first command that donations-ops accepts, and its section."""

from __future__ import annotations

import re
import shlex

import pytest

from donations.notify import describe
from donations_ops.cli import build_parser
from infra.deploy import PROJECT_ROOT, Template

pytestmark = pytest.mark.infra

RUNBOOK = (PROJECT_ROOT / "RUNBOOK.md").read_text()
SECTION = re.compile(r"^## ([a-z0-9-]+)$", re.MULTILINE)  # alarm sections; others have capitals or spaces


def _alarms(cfn_template: Template) -> dict[str, dict[str, str]]:
    """Alarm name without the stack prefix -> its properties (Sub resolved for ${AWS::StackName})."""
    found = {}
    for resource in cfn_template["Resources"].values():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        properties = resource["Properties"]
        name = properties["AlarmName"]["Fn::Sub"].removeprefix("${AWS::StackName}-")
        description = properties["AlarmDescription"]
        text = description["Fn::Sub"] if isinstance(description, dict) else description
        found[name] = {"AlarmName": f"prod-{name}", "AlarmDescription": text.replace("${AWS::StackName}", "prod")}
    return found


def _sections() -> dict[str, str]:
    heads = list(SECTION.finditer(RUNBOOK))
    ends = [*(h.start() for h in heads[1:]), len(RUNBOOK)]
    return {head.group(1): RUNBOOK[head.end() : end] for head, end in zip(heads, ends, strict=True)}


def test_every_alarm_has_a_runbook_section_and_every_section_an_alarm(cfn_template: Template) -> None:
    alarms, sections = set(_alarms(cfn_template)), set(_sections())
    assert alarms - sections == set(), "alarms without a runbook section"
    assert sections - alarms == set(), "runbook sections for alarms that do not exist"


def test_every_section_says_what_it_means_and_when_to_escalate() -> None:
    for name, text in _sections().items():
        assert "**Means.**" in text and "**Escalate**" in text, name


def test_every_description_gives_the_cause_a_first_command_and_its_section(cfn_template: Template) -> None:
    parser = build_parser()
    for name, alarm in _alarms(cfn_template).items():
        cause, first, section = describe(alarm, "prod-")
        assert section == name, f"{name}: description points at RUNBOOK.md#{section}"
        assert cause and not cause.startswith("prod-"), f"{name}: no cause"
        assert len(alarm["AlarmDescription"]) <= 1024, f"{name}: CloudWatch takes at most 1024 characters"
        program, *arguments = shlex.split(first)
        assert program == "donations-ops", f"{name}: first command {first!r}"
        parser.parse_args(arguments)  # exits (SystemExit) on a command donations-ops does not have
