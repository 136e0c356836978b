"""The local front serves the donation form configured for its stack: the Stripe emulator's Stripe.js
stand-in, or, with a real publishable key, Stripe.js from js.stripe.com (the same files, unchanged)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from simulator.local.front import Front

pytestmark = pytest.mark.integration

FORM_JS = "https://js.stripe.com/v3/"


def serve(local_config: dict[str, Any]) -> Iterator[str]:
    # The stack's /_local/ answers, as Front calls them (simulator.local.front.LocalCall: with the header lines)
    def local(method: str, path: str, query: str, body: bytes, headers: list[tuple[str, str]]) -> tuple[int, Any]:
        return (200, local_config) if path == "/_local/config" else (404, {})

    def api(*_: Any) -> tuple[int, dict[str, str], str]:
        return 404, {}, "{}"

    front = Front(0, api, local)
    threading.Thread(target=front.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{front.server_address[1]}"
    finally:
        front.shutdown()
        front.server_close()


@pytest.fixture
def emulated() -> Iterator[str]:
    yield from serve(
        {
            "stripe_publishable_key": "pk_test_local",
            "stripe_js_url": "http://127.0.0.1:9/v3/",
            "turnstile_sitekey": "0x4AAAAAAALocal",
        }
    )


@pytest.fixture
def real_stripe() -> Iterator[str]:
    # A key a deployer pastes could hold anything: it must not end the <script> element
    yield from serve(
        {
            "stripe_publishable_key": "pk_test_real</script><script>alert(1)//",
            "stripe_js_url": None,
            "turnstile_sitekey": "0x4AAAAAAAReal",
        }
    )


def form_config(base: str) -> dict[str, Any]:
    page = requests.get(f"{base}/", timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    found = re.search(r'<script type="application/json" id="donation-form-config">(.*?)</script>', page.text, re.S)
    assert found is not None, page.text
    return dict(json.loads(found.group(1)))


def test_with_the_emulator_the_form_loads_its_stripe_js_stand_in(emulated: str) -> None:
    config = form_config(emulated)
    assert config["stripeJsUrl"] == "http://127.0.0.1:9/v3/"
    assert config["stripePublishableKey"] == "pk_test_local" and config["apiUrl"] == ""


def test_with_a_real_key_the_form_loads_stripe_js_from_stripe_and_the_key_stays_data(real_stripe: str) -> None:
    config = form_config(real_stripe)
    assert "stripeJsUrl" not in config  # donate.js then loads https://js.stripe.com/v3/
    assert config["stripePublishableKey"] == "pk_test_real</script><script>alert(1)//"
    script = requests.get(f"{real_stripe}/form/donate.js", timeout=5)
    assert script.headers["Content-Type"] == "text/javascript" and f'"{FORM_JS}"' in script.text


def test_the_form_files_are_served_as_they_are_in_the_repository(emulated: str) -> None:
    for name, content_type in (("donate.html", "text/html"), ("donate.css", "text/css")):
        answer = requests.get(f"{emulated}/form/{name}", timeout=5)
        assert answer.status_code == 200 and answer.headers["Content-Type"].startswith(content_type)
