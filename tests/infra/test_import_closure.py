"""Each function's INIT loads its own provider's SDK and no other's (cold start: an SDK is tens of ms),
and builds no other function's settings.

Every handler is imported as Lambda's INIT imports it: in a fresh interpreter of its own, with the
environment the template deployed it with and only its folder and the layer (src) on the path.
A function may use a provider when the template hands it one of that provider's keys (a
``*_SECRET_NAME`` variable): no other provider's SDK is in its import closure once INIT is done. (The
reconciler, on a schedule, loads Stripe's at its first run, not at INIT; the charge loads it at INIT.)
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from donations.stripe_keys import STRIPE_KEY_VARIABLES
from tests.infra.template_contracts import Deployed
from tests.support.init_probe import after_init

pytestmark = pytest.mark.infra

# Each provider: the variables that hand a function one of its keys, and the top-level packages of
# its SDK (with the transport only that SDK brings).
PROVIDER_SDKS = {
    "stripe": ({*STRIPE_KEY_VARIABLES.values(), "STRIPE_WEBHOOK_SECRET_NAME"}, {"stripe", "requests"}),
    "sendgrid": ({"SENDGRID_SECRET_NAME"}, {"sendgrid", "python_http_client"}),
}
IMPORTED_BY = """
import json, sys
before = set(sys.modules)
import {module}
print(json.dumps(sorted({{name.split(".")[0] for name in set(sys.modules) - before}})))
"""
SETTINGS_BUILT_BY = """
import json
import {module}
from donations.settings import FUNCTION_SETTINGS
print(json.dumps(sorted(name for name, cls in FUNCTION_SETTINGS.items() if cls.__pydantic_complete__)))
"""
FUNCTIONS = ["ChargeFunction", "TokenizeFunction", "SendReceiptFunction", "StripeWebhookFunction",
             "ReconcilerFunction", "NotifierFunction", "RenewFunction", "ScheduleRenewalsFunction"]  # fmt: skip


def _at_init(deployed: Deployed, logical_id: str, script: str, **lambda_variables: str) -> Any:
    """What ``script`` prints (JSON) after importing the function's handler as Lambda's INIT does, with the
    environment the template gave it (placeholder credentials: INIT builds clients, calls nothing)."""
    spec = deployed.stack.functions[logical_id]
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        **lambda_variables,
        **spec.environment,
    }
    return after_init(spec, script, environment)


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_a_function_imports_at_init_the_sdk_of_each_provider_it_holds_a_key_for_and_no_other(
    deployed: Deployed, logical_id: str
) -> None:
    # Given the providers whose key the template gives this function
    environment = deployed.stack.functions[logical_id].environment
    own = {provider for provider, (variables, _) in PROVIDER_SDKS.items() if variables & set(environment)}

    # When its handler is imported as Lambda's INIT imports it
    packages = set(_at_init(deployed, logical_id, IMPORTED_BY))

    # Then no other provider's SDK (nor its transport) is loaded
    for provider, (_, sdk_packages) in PROVIDER_SDKS.items():
        if provider not in own:
            assert packages & sdk_packages == set(), (logical_id, provider)
    # And the charge, on the donor's path, loads its own during INIT, not during the first donation
    if logical_id == "ChargeFunction":
        assert PROVIDER_SDKS["stripe"][1] <= packages


def test_every_function_of_the_template_is_checked(deployed: Deployed) -> None:
    assert sorted(deployed.stack.functions) == sorted(FUNCTIONS)


UNBOUND_REQUEST_BUILT_BY = """
import json
import {module}
from donations.models import DonationRequest
print(json.dumps([DonationRequest.__pydantic_complete__, {module}.DonationRequest.__pydantic_complete__]))
"""


def test_the_charge_builds_the_validator_of_its_donations_at_init_and_not_the_unbound_ones(deployed: Deployed) -> None:
    # Given models.DonationRequest, which never validates (no limits), and the charge's, bound to its limits
    # When the charge handler is imported as INIT imports it
    unbound, charges = _at_init(deployed, "ChargeFunction", UNBOUND_REQUEST_BUILT_BY)

    # Then the charge's validator is built (not at the first donation), the unbound one's is not (about 5 ms)
    assert charges is True
    assert unbound is False


def test_the_charge_builds_only_its_own_settings_validator_at_init(deployed: Deployed) -> None:
    # Given settings.py, which declares every function's settings
    # When the charge handler is imported as INIT imports it
    built = _at_init(deployed, "ChargeFunction", SETTINGS_BUILT_BY)

    # Then only the charge's settings were built (pydantic's defer_build): not the five others'
    assert built == ["ChargeFunction"]


# Modules the charge's INIT must not load: none runs during a donation, each would add its import to every
# cold donor's wait (CPU ms after the charge's INIT, -X importtime on a shared 2-core VM, 2026-12-06; about
# 1.7x that at the charge function's 1,024 MB CPU share): Powertools' SQS batch utility (29 ms, the consumers'),
# idempotency and the event parser (the other functions'), sqlite3 (what X-Ray's patch_all would load), and
# the core modules of the other functions (3 to 11 ms each).
NOT_IN_THE_CHARGE_INIT = {
    "aws_lambda_powertools.utilities.batch",
    "aws_lambda_powertools.utilities.idempotency",
    "aws_lambda_powertools.utilities.parser",
    "sqlite3",
    "donations.consumer",
    "donations.mail",
    "donations.reconcile",
    "donations.refunds",
    "donations.renewals",
    "donations.statements",
    "donations.webhooks",
}
MODULES_LOADED_BY = """
import json, sys
import {module}
print(json.dumps(sorted(sys.modules)))
"""


def test_the_charge_init_loads_no_module_a_donation_never_runs(deployed: Deployed) -> None:
    # Given the modules no donation runs
    # When the charge handler is imported as INIT imports it
    loaded = set(_at_init(deployed, "ChargeFunction", MODULES_LOADED_BY))

    # Then none of them is loaded
    assert sorted(loaded & NOT_IN_THE_CHARGE_INIT) == []


GARBAGE_COLLECTION_AT_INIT = """
import gc, json
before = [generation["collections"] for generation in gc.get_stats()]
import {module}
collections = [generation["collections"] - count for generation, count in zip(gc.get_stats(), before)]
print(json.dumps({{"collections": collections, "enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}}))
"""


def test_the_charge_init_runs_no_garbage_collection_and_leaves_the_collector_on(deployed: Deployed) -> None:
    # Given the charge handler imported as Lambda's INIT imports it, on Lambda (the runtime sets LAMBDA_TASK_ROOT)
    code_uri = str(deployed.stack.functions["ChargeFunction"].code_uri)
    # When INIT is done
    after = _at_init(deployed, "ChargeFunction", GARBAGE_COLLECTION_AT_INIT, LAMBDA_TASK_ROOT=code_uri)

    # Then the collector never ran during it (about 200 collections, a tenth of INIT's CPU time, before
    # donations.init_phase), what INIT built is frozen out of every later collection's way, and the collector is
    # on again for the requests
    young, middle, old = after["collections"]
    assert young <= 1  # at most one, while the handler imports donations.init_phase, before it turns it off
    assert (middle, old) == (0, 0)
    assert after["frozen"] > 50_000
    assert after["enabled"] is True
