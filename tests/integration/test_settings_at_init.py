"""Each handler reads its settings during INIT: imported without its variables, it fails at once,
naming them, rather than at its first SendMessage."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from donations.settings import FUNCTION_SETTINGS, required_variables
from infra.deploy import PROJECT_ROOT

pytestmark = pytest.mark.integration

HANDLERS = {
    "ChargeFunction": ("functions/charge", "charge_handler"),
    "TokenizeFunction": ("functions/tokenize", "tokenize_handler"),
    "SendReceiptFunction": ("functions/send_receipt", "send_receipt_handler"),
    "ReconcilerFunction": ("functions/reconciler", "reconciler_handler"),
    "StripeWebhookFunction": ("functions/stripe_webhook", "stripe_webhook_handler"),
    "ScheduleRenewalsFunction": ("functions/schedule_renewals", "schedule_renewals_handler"),
    "RenewFunction": ("functions/renew", "renew_handler"),
}


@pytest.mark.parametrize("logical_id", sorted(HANDLERS))
def test_a_handler_without_its_variables_fails_at_import_naming_them(logical_id):
    # Given a Lambda-like environment with none of the function's own variables
    folder, module = HANDLERS[logical_id]
    keep = ("PATH", "HOME", "AWS_", "POWERTOOLS_")
    environment = {k: v for k, v in os.environ.items() if k.startswith(keep) and k != "AWS_ENDPOINT_URL"}
    environment["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT / "src"), str(PROJECT_ROOT / folder)])

    # When the handler module is imported (Lambda's INIT)
    imported = subprocess.run(  # noqa: S603 - our own handler, in this interpreter
        [sys.executable, "-c", f"import {module}"], env=environment, capture_output=True, text=True, timeout=60
    )

    # Then INIT fails with the settings error naming every missing variable
    assert imported.returncode != 0
    last_line = imported.stderr.strip().splitlines()[-1]
    assert last_line.startswith("donations.settings.SettingsError: "), imported.stderr[-2000:]
    for variable in required_variables(FUNCTION_SETTINGS[logical_id]):
        assert variable in last_line
