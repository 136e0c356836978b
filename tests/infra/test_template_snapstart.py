"""SnapStart on the API functions: aliases, the API on the aliases, the parameter (tests/infra/snapstart_contracts.py).

The checks run on the template as deployed with the parameter off (its default) and on, and each is
shown to catch what it claims by a template broken on purpose.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from infra.deploy import AwsClients, Template, translate
from simulator.local.gateway import RestApi
from tests.infra.snapstart_contracts import (
    SNAPSTART_FUNCTIONS,
    check_aliases,
    check_api_invokes_aliases,
    check_snapstart,
)
from tests.infra.template_contracts import Deployed, Violations, deploy_and_observe

pytestmark = pytest.mark.infra

ON, OFF = "PublishedVersions", "None"


@pytest.fixture(scope="module")
def deployed_on(cfn_template: Template, aws: AwsClients) -> Deployed:
    return deploy_and_observe(cfn_template, aws, "infra-snapstart-on", Stage="test", SnapStart="true")


def test_snapstart_is_off_by_default(sam_template: Template, deployed: Deployed, aws: AwsClients) -> None:
    # The cache charge runs all month whether donations come or not: a small charity opts in (README).
    assert sam_template["Parameters"]["SnapStart"]["Default"] == "false"
    assert check_snapstart(deployed, OFF) == []
    assert check_aliases(deployed, aws("lambda")) == []
    assert check_api_invokes_aliases(deployed) == []


def test_snapstart_on_applies_to_published_versions(deployed_on: Deployed, aws: AwsClients) -> None:
    assert check_snapstart(deployed_on, ON) == []
    assert check_aliases(deployed_on, aws("lambda")) == []
    assert check_api_invokes_aliases(deployed_on) == []
    # Only the functions on the donor's and Stripe's request path: the queue consumers and the
    # reconciler have no one waiting on their cold starts.
    snapped = {lid for lid, spec in deployed_on.stack.functions.items() if spec.snap_start == ON}
    assert snapped == set(SNAPSTART_FUNCTIONS)


def test_the_local_front_invokes_the_functions_behind_their_aliases(deployed: Deployed) -> None:
    routes = RestApi.from_template(deployed.template, {}).routes()
    assert sorted(routes) == [
        ("GET", "/donations/{donation_id}", "ChargeFunction"),
        ("POST", "/donations", "ChargeFunction"),
        ("POST", "/pledge-links", "ChargeFunction"),
        ("POST", "/pledges/{pledge_id}", "ChargeFunction"),
        ("POST", "/pledges/{pledge_id}/amount", "ChargeFunction"),
        ("POST", "/pledges/{pledge_id}/authenticate", "ChargeFunction"),
        ("POST", "/pledges/{pledge_id}/authenticate/complete", "ChargeFunction"),
        ("POST", "/pledges/{pledge_id}/cancel", "ChargeFunction"),
        ("POST", "/pledges/{pledge_id}/card", "ChargeFunction"),
        ("POST", "/pledges/{pledge_id}/card/complete", "ChargeFunction"),
        ("POST", "/pledges/{pledge_id}/pause", "ChargeFunction"),
        ("POST", "/pledges/{pledge_id}/resume", "ChargeFunction"),
        ("POST", "/pledges/{pledge_id}/skip", "ChargeFunction"),
        ("POST", "/warmup", "ChargeFunction"),
        ("POST", "/webhooks/stripe", "StripeWebhookFunction"),
    ]


def _pop(function: str, *names: str) -> Callable[[Template], None]:
    def mutate(template: Template) -> None:
        for name in names:
            template["Resources"][function]["Properties"].pop(name)

    return mutate


def _put(function: str, name: str, value: object) -> Callable[[Template], None]:
    def mutate(template: Template) -> None:
        template["Resources"][function]["Properties"][name] = value

    return mutate


@dataclass(frozen=True)
class Breakage:
    name: str
    apply: Callable[[Template], None]
    check: Callable[[Deployed, AwsClients], Violations]
    mentions: str


BREAKAGES = [
    Breakage(
        "no alias",
        _pop("ChargeFunction", "AutoPublishAlias", "VersionDeletionPolicy", "VersionDescription"),
        lambda d, aws: check_aliases(d, aws("lambda")),
        "no alias",
    ),
    Breakage(
        "the API on $LATEST",
        _pop("StripeWebhookFunction", "AutoPublishAlias", "VersionDeletionPolicy", "VersionDescription"),
        lambda d, aws: check_api_invokes_aliases(d),
        "$LATEST",
    ),
    Breakage(
        "superseded versions kept",
        _put("ChargeFunction", "VersionDeletionPolicy", "Retain"),
        lambda d, aws: check_aliases(d, aws("lambda")),
        "not deleted",
    ),
    Breakage(
        "SnapStart never on",
        _put("ChargeFunction", "SnapStart", {"ApplyOn": "None"}),
        lambda d, aws: check_snapstart(d, ON),
        "ApplyOn None",
    ),
    Breakage(
        "switching SnapStart publishes nothing",
        _pop("StripeWebhookFunction", "VersionDescription"),
        lambda d, aws: check_snapstart(d, ON),
        "would not publish",
    ),
    Breakage(
        "ephemeral storage SnapStart does not support",
        _put("ChargeFunction", "EphemeralStorage", {"Size": 1024}),
        lambda d, aws: check_snapstart(d, ON),
        "ephemeral storage",
    ),
]


@pytest.mark.parametrize("breakage", BREAKAGES, ids=[b.name for b in BREAKAGES])
def test_check_reports_the_breakage(sam_template: Template, aws: AwsClients, breakage: Breakage) -> None:
    # Given the template broken on purpose, deployed with SnapStart on
    broken = copy.deepcopy(sam_template)
    breakage.apply(broken)
    deployed = deploy_and_observe(
        translate(broken), aws, f"infra-snapstart-{BREAKAGES.index(breakage)}", Stage="test", SnapStart="true"
    )

    # Then the matching check reports it
    violations = breakage.check(deployed, aws)
    assert any(breakage.mentions in v for v in violations), violations
