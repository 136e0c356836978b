"""`make smoke` (donations_ops.smoke) run against the emulators, so the live smoke test cannot rot."""

import pytest
import stripe

from donations.stripe_keys import STRIPE_KEY_PERMISSIONS
from donations_ops import smoke

pytestmark = pytest.mark.integration


def test_without_keys_it_says_so_and_succeeds(capsys):
    assert smoke.main({}) == 0
    assert "No STRIPE_API_KEY or SENDGRID_API_KEY set" in capsys.readouterr().out


@pytest.mark.parametrize(
    "environ", [{"STRIPE_API_KEY": "sk_live_x"}, {"STRIPE_API_KEY": "sk_test_x", "STRIPE_TOKENIZE_KEY": "rk_live_x"}]
)
def test_a_live_stripe_key_is_refused(capsys, environ):
    assert smoke.main(environ) == 2
    assert "test-mode keys" in capsys.readouterr().out


def _restricted(stripe_emulator, **changed: dict[str, str]) -> dict[str, str]:
    """Each function's restricted key as the deploy guide makes it (donations.stripe_keys), some changed."""
    environ = {"STRIPE_API_BASE": stripe_emulator.url}
    for function, permissions in STRIPE_KEY_PERMISSIONS.items():
        key = f"rk_test_smoke_{function}_{len(changed)}"
        stripe_emulator.restrict(key, changed.get(function, {r: a.value for r, a in permissions.items()}))
        environ[f"STRIPE_{function.upper()}_KEY"] = key
    return environ


def test_each_functions_restricted_key_does_its_job_and_nothing_else(stripe_emulator, capsys):
    # Given a restricted key per function with the permissions the deploy guide lists
    environ = _restricted(stripe_emulator)

    # When the smoke test runs with them
    status = smoke.main(environ)

    # Then every call ran with its function's key, and each key was refused what its function never does
    out = capsys.readouterr().out
    assert status == 0, out
    assert "16 passed, 0 failed" in out, out
    for refused in (
        "charge key refused Customers",
        "tokenize key refused PaymentIntents",
        "reconciler key refused Customers",
        "renew key refused Customers",
    ):
        assert f"PASS  {refused}" in out, out


def test_a_key_missing_a_permission_or_holding_one_too_many_fails_the_run(stripe_emulator, capsys):
    # Given a tokenize key that may only read PaymentMethods, and a reconciler key that may also write Customers
    environ = _restricted(
        stripe_emulator,
        tokenize={"Customers": "Write", "PaymentMethods": "Read"},
        reconciler={"PaymentIntents": "Write", "Customers": "Write"},
    )

    # When the smoke test runs, then it names both
    assert smoke.main(environ) == 1
    out = capsys.readouterr().out
    assert "FAIL  save the card (Customer + attach) [tokenize key]" in out, out
    assert "FAIL  reconciler key refused Customers" in out, out


def test_every_check_passes_against_the_emulators(stripe_emulator, sendgrid_emulator, capsys):
    environ = {
        "STRIPE_API_KEY": "sk_test_smoke",
        "STRIPE_API_BASE": stripe_emulator.url,
        "SENDGRID_API_KEY": "SG.smoke",
        "SENDGRID_API_HOST": sendgrid_emulator.url,
    }
    outbox = len(sendgrid_emulator.outbox)
    before = {i["id"] for i in stripe_emulator.state()["payment_intents"]}

    status = smoke.main(environ)

    out = capsys.readouterr().out
    assert status == 0, out
    assert "13 passed, 0 failed" in out, out
    assert "FAIL" not in out
    assert len(sendgrid_emulator.outbox) == outbox  # sandbox mode: validated, never delivered
    # A renewal's calls as Stripe saw them: two off-session charges of saved cards on their Customers
    # (docs.stripe.com/payments/cards/charging-saved-cards), one of them on a card a SetupIntent saved
    intents = [i for i in stripe_emulator.state()["payment_intents"] if i["id"] not in before]
    renewals = [i for i in intents if "pledge_id" in i["metadata"]]
    assert len(renewals) == 2
    assert all(i["status"] == "succeeded" and i["customer"] for i in renewals), renewals
    account = stripe.StripeClient("sk_test_smoke", base_addresses={"api": stripe_emulator.url})
    setup = account.v1.setup_intents.retrieve(_setup_intent_in(out))
    assert setup.status == "succeeded" and setup.usage == "off_session"
    assert (renewals[1]["payment_method"], renewals[1]["customer"]) == (setup.payment_method, setup.customer)


def _setup_intent_in(out: str) -> str:
    line = next(line for line in out.splitlines() if "SetupIntent confirmed" in line)
    return next(word for word in line.split() if word.startswith("seti_"))


def _smoke_with_fault(stripe_emulator, capsys, *, status: int, path_prefix: str) -> tuple[int, str]:
    """The smoke test against a Stripe answering ``status`` to every request under ``path_prefix``."""
    stripe_emulator.faults.add("http_error", status=status, path_prefix=path_prefix)
    try:
        code = smoke.main({"STRIPE_API_KEY": "sk_test_smoke", "STRIPE_API_BASE": stripe_emulator.url})
    finally:
        stripe_emulator.faults.clear()
    return code, capsys.readouterr().out


def test_a_renewal_that_cannot_be_charged_off_session_fails_the_run(stripe_emulator, capsys):
    # Given a Stripe that refuses every SetupIntent confirmation (the card cannot be saved), when the smoke runs
    status, out = _smoke_with_fault(stripe_emulator, capsys, status=402, path_prefix="/v1/setup_intents/")

    # Then the card update and the renewal on its card are both reported failed, the other renewal passed
    assert status == 1
    assert "FAIL  new card: SetupIntent confirmed with pm_card_visa [charge key]" in out, out
    assert "FAIL  renewal on the SetupIntent's card, off-session [renew key]" in out, out
    assert "PASS  renewal: off-session charge of the saved card [renew key]" in out, out


def test_a_failing_check_fails_the_run(stripe_emulator, capsys):
    status, out = _smoke_with_fault(stripe_emulator, capsys, status=503, path_prefix="/v1/customers")
    assert status == 1
    assert "FAIL  save the card (Customer + attach) [tokenize key]" in out
