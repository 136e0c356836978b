"""`make smoke` (donations_ops.smoke) run against the emulators, so the live smoke test cannot rot."""

import pytest

from donations_ops import smoke

pytestmark = pytest.mark.integration


def test_without_keys_it_says_so_and_succeeds(capsys):
    assert smoke.main({}) == 0
    assert "No STRIPE_API_KEY or SENDGRID_API_KEY set" in capsys.readouterr().out


def test_a_live_stripe_key_is_refused(capsys):
    assert smoke.main({"STRIPE_API_KEY": "sk_live_x"}) == 2
    assert "test-mode key" in capsys.readouterr().out


def test_every_check_passes_against_the_emulators(stripe_emulator, sendgrid_emulator, capsys):
    environ = {
        "STRIPE_API_KEY": "sk_test_smoke",
        "STRIPE_API_BASE": stripe_emulator.url,
        "SENDGRID_API_KEY": "SG.smoke",
        "SENDGRID_API_HOST": sendgrid_emulator.url,
    }
    outbox = len(sendgrid_emulator.outbox)

    status = smoke.main(environ)

    out = capsys.readouterr().out
    assert status == 0, out
    assert "9 passed, 0 failed" in out, out
    assert "FAIL" not in out
    assert len(sendgrid_emulator.outbox) == outbox  # sandbox mode: validated, never delivered


def test_a_failing_check_fails_the_run(stripe_emulator, capsys):
    stripe_emulator.faults.add("http_error", status=503, path_prefix="/v1/customers")
    try:
        status = smoke.main({"STRIPE_API_KEY": "sk_test_smoke", "STRIPE_API_BASE": stripe_emulator.url})
    finally:
        stripe_emulator.faults.clear()
    out = capsys.readouterr().out
    assert status == 1
    assert "FAIL  save the card" in out
