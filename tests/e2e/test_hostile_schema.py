"""Generated requests from the OpenAPI document, through the real front (schemathesis): positive and negative
cases for every operation, none answered 500 or more, no refusal charging anything, and the stack's logs
holding no card number, secret or clear address afterwards. A file of its own, handed out a test at a time
(tests/support/scheduling.py, SPREAD_OVER_WORKERS) as four tests, each mode for the donation routes and for the pledge
routes: together they are the suite's longest work after chaos, and each route the API gains adds to it."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.e2e.test_hostile_input import assert_nothing_sensitive, intents_created, logs_since_ready
from tests.support.hostile import count

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXAMPLES_PER_OPERATION_AND_MODE = 400
# The pledge routes (a pledge id and a link's token, or an address) share one refusal path
# (donations.pledge_manage.verified_link, each route's hostile links in tests/integration/test_pledge_links.py):
# fewer generated cases each, so that every route the manage page gains does not add 400 requests per mode.
EXAMPLES_PER_PLEDGE_OPERATION_AND_MODE = 100


def _is_pledge_route(path: str) -> bool:
    return path.startswith(("/pledges/", "/pledge-links"))


def _can_be_invalid(operation) -> bool:
    """Whether the schema constrains an input of the operation (a body, a header, a query parameter), so
    that a request breaking the schema exists to generate; path parameters are any string here."""
    return bool(operation.body) or any(p.location != "path" for p in operation.iter_parameters())


@pytest.mark.parametrize("routes", ["donations", "pledges"])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda mode: mode.value)
def test_generated_requests_never_fail_the_server_and_refusals_charge_nothing(local_stack, mode, routes):
    schema = schemathesis.openapi.from_url(f"{local_stack.api}/_local/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {(op.method.upper(), op.path) for op in operations} >= {
        ("POST", "/donations"),
        ("GET", "/donations/{donation_id}"),
    }
    operations = [op for op in operations if _is_pledge_route(op.path) == (routes == "pledges")]
    sent = {"requests": 0, "refused": 0}

    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not _can_be_invalid(operation):
            continue  # e.g. GET (any string is a valid path parameter) and POST /warmup (takes no input)

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_PLEDGE_OPERATION_AND_MODE
            if routes == "pledges"
            else EXAMPLES_PER_OPERATION_AND_MODE,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def call(case):
            before = intents_created(local_stack)
            response = case.call(base_url=local_stack.api, timeout=20)
            sent["requests"] += 1
            count(response.status_code)
            assert response.status_code < 500, (case.method, case.path, response.status_code, response.text)
            if response.status_code >= 400 and response.status_code != 402:
                sent["refused"] += 1
                assert intents_created(local_stack) == before, "a refused request created a PaymentIntent"
            if response.headers.get("Content-Type", "").startswith("application/json"):
                assert isinstance(response.json(), dict)

        call()

    # Positive (both operations) and negative (POST) together: more than the 1,000 requests asked for
    # on /donations; every pledge route is called in both modes (each takes a body).
    assert len(operations) >= (2 if routes == "donations" else 11), [op.path for op in operations]
    assert sent["requests"] >= (800 if mode is GenerationMode.POSITIVE else 400), sent
    if mode is GenerationMode.NEGATIVE:
        assert sent["refused"] >= sent["requests"] // 2, sent
    # And nothing the generated requests carried reached the logs in clear
    assert_nothing_sensitive(logs_since_ready(local_stack))
