"""The donation form's bundle (simulator/local/static/form/): its size, and a donor message for every
error code the API answers a donation with."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from donations import errors

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
FORM = ROOT / "simulator" / "local" / "static" / "form"
BUNDLE = ("donate.html", "donate.js", "donate.css")  # without Stripe.js and the local-only test-card list
BUDGET_BYTES = 30 * 1024
# Answers of the Stripe webhook route only: the form never sees them.
WEBHOOK_ONLY = {"invalid_signature", "invalid_event", "donation_not_recorded_yet", "api_version_mismatch"}


def test_the_form_bundle_stays_under_30_kb(record_property: pytest.RecordProperty) -> None:
    sizes = {name: (FORM / name).stat().st_size for name in BUNDLE}
    total = sum(sizes.values())
    record_property("form_bundle_bytes", total)
    report = ", ".join(f"{name} {size} B" for name, size in sizes.items())
    print(f"donation form bundle: {total} B of {BUDGET_BYTES} B ({report})")
    assert total < BUDGET_BYTES, f"the form's bundle is {total} B ({report}); its budget is {BUDGET_BYTES} B"


def test_the_bundle_is_plain_files_with_no_framework_and_loads_stripe_js_from_stripe() -> None:
    script = (FORM / "donate.js").read_text()
    assert not re.search(r"^\s*(import|export)\s|require\(", script, re.MULTILINE)
    assert '"https://js.stripe.com/v3/"' in script  # docs.stripe.com/js/including: always from js.stripe.com
    page = (FORM / "donate.html").read_text()
    assert 'src="donate.js"' in page and 'href="donate.css"' in page and 'id="donation-form-config"' in page


def api_error_codes() -> set[str]:
    """Every ``code`` the API's errors carry: the hierarchy's classes and the codes given where raised."""
    classes = {cls.code for cls in _subclasses(errors.DonationError)}
    raised = set()
    for source in (ROOT / "src" / "donations").glob("*.py"):
        raised |= set(re.findall(r'\bcode="([a-z_]+)"', source.read_text()))
    return (classes | raised) - WEBHOOK_ONLY


def _subclasses(cls: type[errors.DonationError]) -> list[type[errors.DonationError]]:
    return [cls, *(found for sub in cls.__subclasses__() for found in _subclasses(sub))]


def test_every_error_code_the_api_answers_has_a_donor_message_in_the_form() -> None:
    script = (FORM / "donate.js").read_text()
    block = script[script.index("const TITLES = {") : script.index("};", script.index("const TITLES = {"))]
    titles = set(re.findall(r"^\s+([a-z_]+): ", block, re.MULTILINE))
    missing = api_error_codes() - titles
    assert not missing, f"donate.js TITLES has no message for {sorted(missing)}"
