"""SnapStart's runtime hooks (donations.snapstart), run as the runtime runs them (tests/support/snapstart_runtime.py).

A snapshot is resumed by many execution environments, maybe long after it was taken: no connection
may cross a restore, each environment needs its own random sequence, and no secret rides along.
"""

from __future__ import annotations

import gc
import random
import sys
import weakref
from typing import Any

import pytest
from snapshot_restore_py import get_after_restore, get_before_snapshot

from donations import snapstart
from donations.challenge import TurnstileVerifier
from donations.payments import build_stripe_client
from donations.secrets import ApiKeys
from donations.settings import ChargeSettings
from donations.stripe_http import BudgetedRequestsClient
from donations.wiring import Wiring
from tests.support.snapstart_runtime import restore, take_snapshot

pytestmark = pytest.mark.unit

CHARGE_ENV = {
    "DONATIONS_TABLE": "donations-test",
    "TOKENIZE_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/tokenize",
    "RECEIPT_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/receipt",
    "STRIPE_CHARGE_SECRET_NAME": "/donations/stripe/charge-key",
    "CORS_ORIGIN": "*",
    "ALLOWED_CURRENCIES": "usd",
    "MIN_AMOUNT": "100",
    "MAX_AMOUNT": "5000000",
    "VELOCITY_TABLE": "velocity-test",
    "TURNSTILE_SECRET_NAME": "/donations/turnstile-secret-key",
    "FORM_HOSTNAMES": "donate.example.org",
    "TURNSTILE_SITEKEY": "1x00000000000000000000AA",
    "IDENTIFIER_SECRET_NAME": "/donations/identifier-secret",
    "PLEDGES_TABLE": "pledges-test",
    "PLEDGE_LINK_SECRET_NAME": "/donations/pledge-link-key",
    "MANAGE_PAGE_URL": "https://donate.example.org/manage.html",
}


class Pools:
    """A client whose pools can be closed, counting how often."""

    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


class RotatingSecrets:
    """SSM's GetParameter for one SecureString parameter whose value an operator rotates."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.calls = 0

    def get_parameter(self, Name: str, WithDecryption: bool = False, **_: Any) -> dict[str, Any]:  # the SDK's names
        self.calls += 1
        assert WithDecryption, "a SecureString is read decrypted"
        return {"Parameter": {"Name": Name, "Type": "SecureString", "Value": self.value}}


def test_the_runtime_finds_each_hook_once() -> None:
    # Given the module imported (by the handlers, through donations.wiring), with the library present
    assert snapstart.HOOKS_REGISTERED

    # Then the runtime's registries hold each hook exactly once
    assert [entry for entry in get_before_snapshot() if entry[0] is snapstart.before_snapshot] == [
        (snapstart.before_snapshot, (), {})
    ]
    assert [entry for entry in get_after_restore() if entry[0] is snapstart.after_restore] == [
        (snapstart.after_restore, (), {})
    ]


def test_without_the_library_nothing_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an interpreter without snapshot_restore_py (the local stack, a test run without it)
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)

    # Then registering does nothing, and fails nothing
    assert snapstart.register_hooks() is False


def test_connections_are_closed_before_the_snapshot_and_after_each_restore() -> None:
    # Given two clients holding connections, and one nobody uses any more
    first, second = snapstart.holds_connections(Pools()), snapstart.holds_connections(Pools())
    dropped = weakref.ref(snapstart.holds_connections(Pools()))
    gc.collect()

    # When the snapshot is taken, then restored twice
    take_snapshot()
    assert (first.closed, second.closed) == (1, 1)
    restore()
    restore()

    # Then every pool was closed each time; the client nobody holds was not kept alive by being watched
    assert (first.closed, second.closed) == (3, 3)
    assert dropped() is None


def test_the_clients_a_function_builds_are_watched() -> None:
    # Given a charge function's wiring (building clients opens no connection)
    before, _ = snapstart.watched()
    wiring = Wiring(ChargeSettings.from_env(CHARGE_ENV))

    # When INIT builds its clients (the table's resource has a client of its own), and a Stripe client
    built = wiring.build_clients()
    stripe_client = build_stripe_client(wiring.settings, "sk_test_unit")

    # Then each holds its connections in a client closed around snapshots and restores
    connections, secret_caches = snapstart.watched()
    new = [client for client in connections if not any(client is old for old in before)]
    services = sorted(client.meta.service_model.service_name for client in new if hasattr(client, "meta"))
    assert services == ["dynamodb", "dynamodb", "sqs", "ssm"]
    others = sorted(type(client).__name__ for client in new if not hasattr(client, "meta"))
    assert others == [BudgetedRequestsClient.__name__, TurnstileVerifier.__name__]  # Stripe; the card-testing CAPTCHA
    assert any(cache is wiring.api_keys for cache in secret_caches)
    assert built and stripe_client


def test_each_restore_gets_its_own_random_sequence() -> None:
    # Given the random state as the snapshot holds it
    state = random.getstate()

    # When two environments resume from the same snapshot
    sequences = []
    for _ in range(2):
        random.setstate(state)
        restore()
        sequences.append([random.random() for _ in range(4)])

    # Then their jitter (botocore's, the Stripe SDK's, our backoff) differs
    assert sequences[0] != sequences[1]


def test_no_secret_is_in_the_snapshot_and_a_rotated_key_is_read_after_a_restore() -> None:
    # Given the Stripe key read and cached during INIT
    secrets = RotatingSecrets("sk_test_before")
    keys = snapstart.caches_secrets(ApiKeys(secrets))
    assert keys.get("/donations/stripe/charge-key") == "sk_test_before"
    assert keys.get("/donations/stripe/charge-key") == "sk_test_before"
    assert secrets.calls == 1  # cached within its TTL

    # When the snapshot is taken, the key rotated, and an environment resumed
    take_snapshot()
    secrets.value = "sk_test_after"
    restore()

    # Then the first use after the restore fetches the key, the current one
    assert keys.get("/donations/stripe/charge-key") == "sk_test_after"
    assert secrets.calls == 2
