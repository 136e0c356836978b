"""The local console's actions refuse cross-site requests (simulator.local.console_api).

A page on another site can make the operator's browser POST to 127.0.0.1 (a form, or fetch with
``mode: "no-cors"``): such a request has a foreign Origin, and cannot carry a custom header without
a CORS preflight the console never approves. Both are checked; a refused action changes nothing.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from donations.models import FollowUpMessage, Step
from donations_ops.target import Target
from simulator.local.console_api import CONSOLE_HEADER, ConsoleApi, console_origins
from simulator.local.front import Front
from tests.support.keys import a_key
from tests.support.world import DONATION

pytestmark = pytest.mark.integration


@pytest.fixture
def console(world) -> Iterator[str]:
    """The front with the console API on a free loopback port, routed as the local stack routes it."""
    holder: dict[str, ConsoleApi] = {}

    def local(method: str, path: str, query: str, body: bytes, headers: list[tuple[str, str]]) -> tuple[int, Any]:
        route = "/".join(path.strip("/").split("/")[1:])
        return holder["api"].handle(method, route, query, body, headers) or (404, {"message": "Not Found"})

    front = Front(0, lambda *_: (404, {}, "{}"), local)
    port = front.server_address[1]
    pipeline = world.pipeline
    target = Target(pipeline.stack.stack_name, local=True)
    holder["api"] = ConsoleApi(pipeline.clients, pipeline.stack.stack_name, "", console_origins(port), target)
    threading.Thread(target=front.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}"
    front.shutdown()
    front.server_close()


def _post(url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(  # noqa: S310 - a loopback http URL the test built
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **headers}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback only
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def test_a_cross_site_post_is_refused_with_403_and_only_the_consoles_own_pages_act(world, console):
    # Given a parked receipt an operator could discard from the console
    donation_id = world.post({**DONATION, "save_card": False}, key=a_key("console-csrf")).body["donation_id"]
    world.clear_queue("receipt")
    world.send_raw("receipt_dlq", FollowUpMessage(type=Step.SEND_RECEIPT, donation_id=donation_id).model_dump_json())
    discard = {"queue": "receipt", "donation": donation_id, "note": "csrf test"}
    url = f"{console}/_local/ops/discard"

    # When other sites' pages make the browser post (a form: no custom header; fetch: a foreign Origin)
    refusals = [
        _post(url, discard, {"Origin": "https://evil.example"}),
        _post(url, discard, {"Origin": "https://evil.example", CONSOLE_HEADER: "1"}),
        _post(url, discard, {"Origin": console}),  # a form can post from a page that looks same-site
        _post(url, discard, {CONSOLE_HEADER: "1"}),  # no Origin: not a browser page of ours
    ]

    # Then each is refused and nothing changed
    assert [status for status, _ in refusals] == [403] * 4
    assert len(world.queued("receipt_dlq")) == 1
    assert world.record(donation_id).operator_log == []

    # ... while the console's own page (its Origin, its header) acts
    status, answer = _post(url, discard, {"Origin": console, CONSOLE_HEADER: "1"})
    assert (status, answer["removed_messages"]) == (200, 1)
    assert world.queued("receipt_dlq") == []
