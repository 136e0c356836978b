"""The commands the README and the docs site show cannot drift from the product: each `donations-ops` line
parses with the tool's own parser, each `make` target exists, each `python -m` module exists, each `aws` call
names a real operation and real parameters (botocore's model of the API, which the AWS CLI is generated from),
each stack parameter the deploy guide names is in template.yaml, the README's commands are the snippets the
e2e tests run (tests/e2e/test_docs_snippets.py), and the key-storing script stores keys from files only."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import stat
import subprocess
from pathlib import Path

import botocore.session
import pytest

from donations_ops.cli import build_parser
from infra.deploy import load_template

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SNIPPETS = ROOT / "docs" / "snippets"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SCRIPTS = sorted(SNIPPETS.glob("*.sh"))
FENCE = re.compile(r"^ *```(\w*)\n(.*?)^ *```", re.S | re.M)
SNIPPET_INCLUDE = re.compile(r'--8<-- "([^"]+?)(?::(\w+))?"')
# The AWS CLI's own options, valid with every operation.
AWS_GLOBAL_OPTIONS = {"--query", "--output", "--region", "--profile", "--endpoint-url", "--no-cli-pager"}


def _snippet(path: str, section: str | None) -> str:
    text = (ROOT / path).read_text()
    if section is None:
        return text
    start, end = f"--8<-- [start:{section}]", f"--8<-- [end:{section}]"
    return text.split(start, 1)[1].split("\n", 1)[1].split(end, 1)[0]


def _code_blocks(page: Path) -> list[str]:
    """The shell blocks of a page, with the snippets it includes put in, as the built site shows them."""
    blocks = [body for lang, body in FENCE.findall(page.read_text()) if lang in ("bash", "sh")]
    return [SNIPPET_INCLUDE.sub(lambda m: _snippet(m[1], m[2]), block) for block in blocks]


def _command_lines(text: str) -> list[str]:
    """Shell lines with their continuations joined; comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = []
    for line in joined.splitlines():
        words = line.strip()
        if words and not words.startswith("#"):
            lines.append(words)
    return lines


def _all_commands() -> list[tuple[str, str]]:
    found = [(page.name, line) for page in PAGES for block in _code_blocks(page) for line in _command_lines(block)]
    found += [(script.name, line) for script in SCRIPTS for line in _command_lines(script.read_text())]
    return found


def _words_after(line: str, program: str) -> list[str] | None:
    """The arguments after ``program`` in a shell line (optional ``[...]`` synopsis parts removed)."""
    try:
        words = shlex.split(re.sub(r"\[[^\]]*\]", "", line), comments=True)
    except ValueError:
        return None
    for index, word in enumerate(words):
        if word == program or word.endswith(f"/{program}"):
            return words[index + 1 :]
    return None


def _ops_commands() -> list[tuple[str, list[str]]]:
    found = []
    for where, line in _all_commands():
        args = _words_after(line, "donations-ops")
        if args is not None:
            found.append((where, args))
    return found


def _cases(found: list[tuple[str, list[str]]]) -> list[object]:
    return [pytest.param(where, args, id=f"{where}: {' '.join(args)}"[:80]) for where, args in found]


@pytest.mark.parametrize(("where", "args"), _cases(_ops_commands()))
def test_each_donations_ops_command_shown_parses(where, args):
    # Given a donations-ops command a page shows
    parser = build_parser()
    if "stripe" in args and not re.search(r"^\s+stripe\s", parser.format_help(), re.M):
        pytest.xfail("the deploy guide's `donations-ops stripe install-webhook` comes with the providers' work")
    # When the tool's own parser reads it / Then it is a command the tool has, with options it takes
    try:
        parser.parse_args(args)
    except SystemExit as exit_:
        pytest.fail(f"{where}: donations-ops {' '.join(args)} does not parse (exit {exit_.code})")


def test_the_docs_show_the_operator_commands():
    # The test above checks something: the tour's and the runbook's commands are among those found
    shown = {" ".join(args) for _, args in _ops_commands()}
    assert "--local redrive receipt" in shown
    assert "receipts install-template" in shown


def test_each_make_target_named_exists():
    # Given every `make X` the pages and snippets name
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    named = {
        (page.name, target)
        for page in PAGES
        for code in [*_code_blocks(page), *re.findall(r"`([^`\n]+)`", page.read_text())]
        for target in re.findall(r"\bmake ([a-z][a-z-]*)", code)
    }
    # Then the Makefile has each
    assert {(where, target) for where, target in named if target not in targets} == set()
    assert {"run", "test", "check", "deploy", "lock"} <= {target for _, target in named}


def test_each_python_module_named_exists():
    modules = {
        (page.name, module)
        for page in PAGES
        for module in re.findall(r"python -m ([a-z_][a-z_.]*[a-z_])", page.read_text())
    }
    assert modules
    assert {(where, m) for where, m in modules if importlib.util.find_spec(m) is None} == set()


def _aws_calls() -> list[tuple[str, list[str]]]:
    calls = []
    for where, line in _all_commands():
        args = _words_after(line.replace("$(", " "), "aws")
        if args and not args[0].startswith("-"):
            calls.append((where, args))
    return calls


@pytest.mark.parametrize(("where", "args"), _cases(_aws_calls()))
def test_each_aws_call_names_a_real_operation_and_its_parameters(where, args):
    # Given an AWS CLI call a page or snippet shows, e.g. `aws ssm put-parameter --name ... --overwrite`
    service, operation, *options = args
    model = botocore.session.get_session().get_service_model(service)
    by_cli_name = {_cli_name(name): name for name in model.operation_names}
    # Then the operation exists
    assert operation in by_cli_name, f"{where}: aws {service} {operation}"
    shape = model.operation_model(by_cli_name[operation]).input_shape
    members = {_cli_name(name): name for name in shape.members} if shape else {}
    given = {option.split("=", 1)[0] for option in options if option.startswith("--")}
    # And every option is one of its parameters (or the CLI's own), and every required one is given
    unknown = {o for o in given - AWS_GLOBAL_OPTIONS if o[2:] not in members and o[5:] not in members}
    assert unknown == set(), f"{where}: aws {service} {operation}"
    missing = {f"--{_cli_name(name)}" for name in (shape.required_members if shape else [])} - given
    assert missing == set(), f"{where}: aws {service} {operation}"


def _cli_name(name: str) -> str:
    return botocore.xform_name(name, "-")


def test_every_put_parameter_shown_reads_the_value_from_a_file():
    # A value in an argument leaks into the shell's history and the process list.
    puts = [args for _, args in _aws_calls() if args[:2] == ["ssm", "put-parameter"]]
    assert puts
    for args in puts:
        assert args[args.index("--value") + 1].startswith("file://"), args


def test_the_deploy_guide_names_the_template_parameters_and_no_other():
    # Given template.yaml's parameters and outputs
    template = load_template(ROOT / "template.yaml")
    known = set(template["Parameters"]) | set(template["Outputs"])
    # When the deploy guide names a stack parameter (`CamelCase` in backquotes)
    named = set(re.findall(r"`([A-Z][a-z]+(?:[A-Z][a-z0-9]*)*)`", (ROOT / "docs" / "deploying.md").read_text()))
    # Then the template has it
    assert named - known == set()
    # And the guide names every parameter a deployer can set
    assert set(template["Parameters"]) - named == set()


def test_the_readme_commands_are_the_snippets_the_tests_run():
    # Given the README's shell blocks
    snippet_lines = {line.strip() for script in SCRIPTS for line in script.read_text().splitlines()}
    for block in _code_blocks(ROOT / "README.md"):
        for line in filter(str.strip, block.splitlines()):
            command = line.split("  #", 1)[0].strip()
            if command.startswith("bash docs/snippets/"):
                # Then a script it names exists
                assert (ROOT / command.split()[1]).is_file(), command
            elif not command.startswith(("make ", ".venv/bin/donations-ops")):  # both checked above
                # And every other line is a line of a snippet the e2e tests run
                assert line.strip() in snippet_lines, line


STACK_KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/0d6c1b4e-stack-secrets-key"


def _stand_in_aws(tmp_path: Path, key_arn: str) -> tuple[Path, Path]:
    """A stand-in `aws` on PATH that records its arguments, and the mode and content of a file:// value;
    `describe-stacks` answers ``key_arn`` as the stack's SecretsKeyArn output (``None``: the output is absent)."""
    log = tmp_path / "calls"
    stand_in = tmp_path / "bin" / "aws"
    stand_in.parent.mkdir()
    stand_in.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "ARGS $*" >> {log}\n'
        f'[ "$2" = describe-stacks ] && echo "{key_arn}"\n'
        'for a in "$@"; do case $a in file://*) f=${a#file://}; '
        f'echo "MODE $(stat -c %a "$f")" >> {log}; echo "VALUE [$(cat "$f")]" >> {log};; esac; done\n'
    )
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IXUSR)
    return stand_in.parent, log


def _run_snippet(
    name: str, tmp_path: Path, *args: str, typed: str = "", key_arn: str = STACK_KEY_ARN
) -> subprocess.CompletedProcess[str]:
    bin_dir, _ = _stand_in_aws(tmp_path, key_arn)
    return subprocess.run(  # noqa: S603 - our own snippet
        ["bash", str(SNIPPETS / name), *args],  # noqa: S607 - bash from PATH, as a reader runs it
        input=typed,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _put_parameter_calls(tmp_path: Path) -> list[str]:
    return [line for line in (tmp_path / "calls").read_text().splitlines() if line.startswith("ARGS ssm put-parameter")]


def test_the_key_script_stores_each_key_from_a_file_and_never_as_an_argument(tmp_path):
    # When the deploy guide's key script stores two keys typed at its prompts (a stand-in `aws` records the calls)
    ran = _run_snippet(
        "store-keys.sh", tmp_path, "stripe/charge-key", "sendgrid-api-key", typed="rk_test_51Secret\nSG.x\n"
    )

    # Then each key went to its SecureString parameter under the stack's KMS key, replacing any earlier one,
    # from a file only its owner can read, never as an argument
    assert ran.returncode == 0, ran.stderr
    calls = (tmp_path / "calls").read_text()
    assert [call.split(" --value")[0] for call in _put_parameter_calls(tmp_path)] == [
        f"ARGS ssm put-parameter --type SecureString --overwrite --key-id {STACK_KEY_ARN} --name /donations/{name}"
        for name in ("stripe/charge-key", "sendgrid-api-key")
    ]
    assert "VALUE [rk_test_51Secret]" in calls and "VALUE [SG.x]" in calls
    assert "MODE 600" in calls
    arguments = [line for line in calls.splitlines() if line.startswith("ARGS")]
    assert not any("rk_test_51Secret" in line or "SG.x" in line for line in arguments)
    # And nothing is echoed or left behind
    assert "rk_test_51Secret" not in ran.stdout + ran.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "calls"]


def test_the_key_script_stores_the_six_keys_the_template_reads_by_default(tmp_path):
    # Given the parameter names the template's functions read by default
    template = load_template(ROOT / "template.yaml")
    provider_keys = {
        "StripeChargeSecretName",
        "StripeTokenizeSecretName",
        "StripeReconcilerSecretName",
        "StripeRenewSecretName",
    }
    provider_keys |= {"SendGridSecretName", "TurnstileSecretName"}
    defaults = {template["Parameters"][name]["Default"] for name in provider_keys}

    # When the key script runs without names, on a stack deployed with EncryptSecrets=false (no SecretsKeyArn)
    ran = _run_snippet("store-keys.sh", tmp_path, typed="k1\nk2\nk3\nk4\nk5\nk6\n", key_arn="None")

    # Then it stores exactly those six, under aws/ssm
    assert ran.returncode == 0, ran.stderr
    calls = _put_parameter_calls(tmp_path)
    assert {call.split("--name ")[1].split()[0] for call in calls} == defaults
    assert all("--key-id alias/aws/ssm " in call for call in calls)


def test_the_identifier_secret_is_created_once_from_a_file_of_64_random_characters(tmp_path):
    # When the deploy guide creates the identifier secret (a stand-in `aws` records the call)
    ran = _run_snippet("create-identifier-secret.sh", tmp_path)

    # Then it is stored from a file only its owner can read, at least 32 characters as the charge requires,
    # and without --overwrite: an existing secret is never replaced by accident
    # (and the manage links' signing key, the same way, under the template's default name)
    assert ran.returncode == 0, ran.stderr
    calls = (tmp_path / "calls").read_text()
    identifier, link_key = _put_parameter_calls(tmp_path)
    template = load_template(ROOT / "template.yaml")
    for args, parameter in ((identifier, "IdentifierSecretName"), (link_key, "PledgeLinkSecretName")):
        name = template["Parameters"][parameter]["Default"]
        assert args.startswith(f"ARGS ssm put-parameter --type SecureString --key-id {STACK_KEY_ARN} --name {name} ")
        assert "--overwrite" not in args
    assert calls.count("MODE 600") == 2
    values = [line[len("VALUE [") : -1] for line in calls.splitlines() if line.startswith("VALUE")]
    assert [len(value) for value in values] == [64, 64] and values[0] != values[1]
    assert not any(value in calls.replace(f"VALUE [{value}]", "") for value in values)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "calls"]
