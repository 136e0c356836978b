"""Fixtures for the template contract tests: the template loaded, translated and deployed in moto."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from moto import mock_aws

from infra.deploy import AwsClients, Template, load_template, translate
from tests.infra.template_contracts import EVERYTHING_ON, Deployed, deploy_and_observe, isolated_clients
from tests.infra.tooling import TEMPLATE


@pytest.fixture(scope="session")
def sam_template() -> Template:
    return load_template(TEMPLATE)


@pytest.fixture(scope="session")
def cfn_template(sam_template: Template) -> Template:
    return translate(sam_template)


@pytest.fixture(scope="module")
def aws(request: pytest.FixtureRequest) -> Iterator[AwsClients]:
    """moto, in process, for the whole module, in an account of its own; clients are reused
    (creating them is slow). Stack names start with "infra-" all the same.

    The account is the module's own: under pytest-xdist a worker may already hold a session-wide moto
    (tests/conftest.py), inside which a module's mock_aws resets nothing, so two modules deploying the
    same stack in one account would collide."""
    digest = hashlib.sha256(request.module.__name__.encode()).hexdigest()
    with mock_aws():
        yield isolated_clients(account=str(int(digest, 16))[:12])


@pytest.fixture(scope="module")
def deployed(cfn_template: Template, aws: AwsClients) -> Deployed:
    return deploy_and_observe(cfn_template, aws, "infra-contract", Stage="test", **EVERYTHING_ON)
