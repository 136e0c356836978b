"""`make smoke`: the product's own Stripe and SendGrid calls against the real services, in test mode.

    STRIPE_API_KEY=sk_test_... [SENDGRID_API_KEY=SG... RECEIPT_FROM_EMAIL=you@verified.org \\
        RECEIPT_TEMPLATE_ID=d-...] make smoke
    STRIPE_CHARGE_KEY=rk_test_... STRIPE_TOKENIZE_KEY=rk_test_... STRIPE_RECONCILER_KEY=rk_test_... make smoke

Each function's calls run with that function's key (STRIPE_<FUNCTION>_KEY, else STRIPE_API_KEY): with
the restricted keys you made for the functions (docs/security.md), it proves each key can do its job,
and that each restricted key is refused what its function never does (donations.stripe_keys).

Our emulators are only our own understanding of Stripe and SendGrid; this proves the product's
calls against the providers themselves, with the same adapters the functions use
(donations.payments, donations.mail), under the pinned Stripe API version. Stripe runs in test
mode (only ``sk_test_`` keys are accepted) with Stripe's published test payment methods; SendGrid
runs with ``mail_settings.sandbox_mode`` on, so it validates the receipt and delivers nothing.
Without keys it says so and exits 0. Exit 1 if a check failed. Its own test runs it against the
emulators (``STRIPE_API_BASE`` / ``SENDGRID_API_HOST`` point it there), so it cannot rot.
"""

from __future__ import annotations

import functools
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import stripe

from donations.errors import CardDeclined
from donations.mail import build_sendgrid_client, receipt_mail
from donations.models import Donation, DonationStatus, utc_now
from donations.payments import STRIPE_API_VERSION, StripePayments, build_stripe_client
from donations.ports import ChargeState
from donations.redaction import mask_email
from donations.renewals import renewal_key
from donations.settings import MailSettings, StripeClientSettings
from donations.stripe_keys import STRIPE_KEY_PERMISSIONS

SEARCH_WAIT_SECONDS = 90  # Stripe's search index lags, usually by under a minute
SMOKE_EMAIL = "smoke-test@example.org"
TEST_MODE_KEYS = ("sk_test_", "rk_test_")


class SmokeSettings(StripeClientSettings, MailSettings):
    """The adapters' settings from the environment; the receipt's defaults are the template's."""

    receipt_template_id: str = "d-00000000000000000000000000000000"
    receipt_from_email: str = "receipts@example.org"
    org_name: str = "Example Charity"
    org_address: str = ""
    goods_or_services_statement: str = "No goods or services were provided in exchange for this donation."
    support_email: str = "support@example.org"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def stripe_keys(environ: dict[str, str]) -> dict[str, str]:
    """Function -> the key its calls run with: STRIPE_<FUNCTION>_KEY, else STRIPE_API_KEY (none: left out)."""
    fallback = environ.get("STRIPE_API_KEY", "")
    keys = {function: environ.get(f"STRIPE_{function.upper()}_KEY", fallback) for function in STRIPE_KEY_PERMISSIONS}
    return {function: key for function, key in keys.items() if key}


def main(environ: dict[str, str] | None = None) -> int:
    environ = dict(os.environ if environ is None else environ)
    keys, sendgrid_key = stripe_keys(environ), environ.get("SENDGRID_API_KEY", "")
    if not keys and not sendgrid_key:
        print("No STRIPE_API_KEY or SENDGRID_API_KEY set: nothing to check against the real services.")
        print("Set STRIPE_API_KEY=sk_test_... (and optionally SENDGRID_API_KEY) to run the smoke test.")
        return 0
    if not all(key.startswith(TEST_MODE_KEYS) for key in keys.values()):
        print("Stripe keys must be test-mode keys (sk_test_... or rk_test_...): the smoke test makes real charges.")
        return 2
    if keys and keys.keys() != STRIPE_KEY_PERMISSIONS.keys():
        print(f"Give every function a key (STRIPE_API_KEY, or each of {', '.join(_key_variables())}).")
        return 2
    settings = SmokeSettings.from_env(environ)
    checks: list[Check] = []
    if keys:
        clients = {function: build_stripe_client(settings, key) for function, key in keys.items()}
        checks += stripe_checks(clients)
        checks += least_privilege_checks({f: c for f, c in clients.items() if keys[f].startswith("rk_")})
        # In the browser Stripe.js creates the PaymentMethod with the publishable key; here the tokenize
        # key may (PaymentMethods Write) and the charge key may not, so it stands in for the browser.
        maker, charger = clients["tokenize"], clients["charge"]
        checks.append(_run("the form's flow: card PaymentMethod, then the charge", lambda: _form_flow(maker, charger)))
    if sendgrid_key:
        checks.append(_run("receipt (SendGrid sandbox)", lambda: sendgrid_check(settings, sendgrid_key)))
    _print_table(checks, settings, stripe=bool(keys), sendgrid=bool(sendgrid_key))
    return 0 if all(check.ok for check in checks) else 1


def stripe_checks(clients: dict[str, stripe.StripeClient]) -> list[Check]:
    """The Stripe calls the product makes, each with the key of the function that makes it and Stripe's
    published test payment methods (docs.stripe.com/testing): charge, decline, 3-D Secure, the card's
    fingerprint and the spent attempt's lookup (charge); save the card (tokenize); search and cancel
    (reconciler); and a monthly renewal (renewal_checks)."""
    payments = {function: StripePayments(client) for function, client in clients.items()}
    charge, tokenize, reconciler = payments["charge"], payments["tokenize"], payments["reconciler"]
    charged = _donation("pm_card_visa", save_card=True)
    three_ds = _donation("pm_card_authenticationRequired")
    checks = [_run("charge pm_card_visa [charge key]", lambda: _charge_succeeds(charge, charged))]
    checks.append(_run("decline pm_card_chargeDeclined [charge key]", lambda: _charge_declines(charge)))
    checks.append(
        _run("3-D Secure pm_card_authenticationRequired [charge key]", lambda: _charge_needs_action(charge, three_ds))
    )
    checks.append(_run("card fingerprint [charge key]", lambda: _fingerprint(charge, charged)))
    checks.append(_run("find the charge attempt (list) [charge key]", lambda: _find_attempt(charge, charged)))
    checks.append(_run("save the card (Customer + attach) [tokenize key]", lambda: _save_card(tokenize, charged)))
    checks += renewal_checks(clients["charge"], payments["renew"], charged)
    checks.append(_run("search by donation_id [reconciler key]", lambda: _search(reconciler, charged)))
    checks.append(
        _run("cancel the abandoned 3-D Secure payment [reconciler key]", lambda: _cancel(reconciler, three_ds))
    )
    return checks


def renewal_checks(charge: stripe.StripeClient, renew: StripePayments, saved: Donation) -> list[Check]:
    """A monthly renewal: the card the tokenize step saved, charged with the donor away (off_session=true,
    confirm=true; docs.stripe.com/payments/cards/charging-saved-cards); a new card saved through a
    SetupIntent confirmed with Stripe's test card pm_card_visa (docs.stripe.com/payments/save-and-reuse;
    docs.stripe.com/testing: 4242 needs no authentication), as the manage page does with Stripe.js; and
    the next renewal charged on that card off-session."""
    setup: dict[str, str] = {}
    return [
        _run("renewal: off-session charge of the saved card [renew key]", lambda: _renew(renew, saved)),
        _run("new card: SetupIntent confirmed with pm_card_visa [charge key]", lambda: _set_up(charge, saved, setup)),
        _run("renewal on the SetupIntent's card, off-session [renew key]", lambda: _renew_set_up(renew, setup)),
    ]


def _renew(payments: StripePayments, saved: Donation) -> str:
    _expect(saved.customer_id is not None and saved.payment_method_id is not None, "the card was not saved")
    renewal = _donation(str(saved.payment_method_id))
    return _charged_off_session(payments, renewal, str(saved.customer_id))


def _charged_off_session(payments: StripePayments, renewal: Donation, customer_id: str) -> str:
    pledge = "pl_smoke" + uuid.uuid4().hex[:16]
    renewal.metadata = {**renewal.metadata, "pledge_id": pledge, "renewal_period": utc_now()[:7]}
    outcome = payments.charge_saved_card(renewal, customer_id, renewal_key(pledge, utc_now()[:7]))
    _expect(outcome.state is ChargeState.SUCCEEDED, f"state {outcome.state}")
    return f"{outcome.payment_intent_id} succeeded off-session"


def _set_up(client: stripe.StripeClient, saved: Donation, setup: dict[str, str]) -> str:
    _expect(saved.customer_id is not None, "the card was not saved")
    payments = StripePayments(client)
    pledge = "pl_smoke" + uuid.uuid4().hex[:16]
    started = payments.start_card_setup(str(saved.customer_id), pledge, f"pledge-{pledge}-card-smoke-1")
    _expect(started.status == "requires_payment_method", f"status {started.status}")
    # In the donor's page Stripe.js confirms it (confirmCardSetup); here the charge key, with Stripe's test card.
    client.v1.setup_intents.confirm(started.id, params={"payment_method": "pm_card_visa"})
    confirmed = payments.card_setup(started.id)
    _expect(confirmed is not None and confirmed.status == "succeeded", f"status {confirmed and confirmed.status}")
    assert confirmed is not None
    _expect(confirmed.payment_method_id is not None, "no PaymentMethod on the SetupIntent")
    setup.update(customer=str(confirmed.customer_id), payment_method=str(confirmed.payment_method_id))
    return f"{started.id} succeeded: {confirmed.card_brand} ending {confirmed.card_last4}"


def _renew_set_up(payments: StripePayments, setup: dict[str, str]) -> str:
    _expect(bool(setup), "no card was set up")
    return _charged_off_session(payments, _donation(setup["payment_method"]), setup["customer"])


# A harmless read per resource, to show a restricted key is refused what its function never does.
_PROBES: dict[str, Callable[[stripe.StripeClient], object]] = {
    "PaymentIntents": lambda client: client.v1.payment_intents.list(params={"limit": 1}),
    "Customers": lambda client: client.v1.customers.list(params={"limit": 1}),
}


def least_privilege_checks(clients: dict[str, stripe.StripeClient]) -> list[Check]:
    """Each restricted key is refused (403) the resources donations.stripe_keys does not give its function."""
    return [
        _run(f"{function} key refused {resource}", functools.partial(_refused, probe, client))
        for function, client in clients.items()
        for resource, probe in _PROBES.items()
        if resource not in STRIPE_KEY_PERMISSIONS[function]
    ]


def _refused(probe: Callable[[stripe.StripeClient], object], client: stripe.StripeClient) -> str:
    try:
        probe(client)
    except stripe.PermissionError:
        return "refused (403)"
    raise AssertionError("allowed: the key has a permission its function does not need")


def _key_variables() -> list[str]:
    return [f"STRIPE_{function.upper()}_KEY" for function in STRIPE_KEY_PERMISSIONS]


def sendgrid_check(settings: SmokeSettings, api_key: str) -> str:
    """The product's receipt, sent in sandbox mode: SendGrid validates it and delivers nothing."""
    client = build_sendgrid_client(settings, api_key)
    mail = receipt_mail(_donation("pm_card_visa").model_copy(update={"status": DonationStatus.SUCCEEDED}), settings)
    body = mail.get()
    body["mail_settings"] = {"sandbox_mode": {"enable": True}}
    response = client.client.mail.send.post(request_body=body, timeout=settings.provider_timeout_seconds)
    if response.status_code != 200:
        raise AssertionError(f"SendGrid answered {response.status_code}, expected 200 in sandbox mode")
    return "validated by SendGrid, not delivered (sandbox mode)"


# -- the checks ------------------------------------------------------------------------------------


def _charge_succeeds(payments: StripePayments, donation: Donation) -> str:
    outcome = payments.charge(donation)
    _expect(outcome.state is ChargeState.SUCCEEDED, f"state {outcome.state}")
    donation.payment_intent_id, donation.payment_method_id = outcome.payment_intent_id, outcome.payment_method_id
    return outcome.payment_intent_id


def _form_flow(browser: stripe.StripeClient, charge: stripe.StripeClient) -> str:
    """The server side of the donation form (docs/form.md): the Payment Element creates a card
    PaymentMethod in the browser (stripe.createPaymentMethod), our charge confirms it. Here it is made from
    Stripe's test token tok_visa (docs.stripe.com/testing, "Tokens"): a server never sends card numbers."""
    method = browser.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"token": "tok_visa"},
            "billing_details": {"name": "Smoke Test", "email": SMOKE_EMAIL},
        }
    )
    _expect(method.type == "card", f"a {method.type} PaymentMethod")
    outcome = StripePayments(charge).charge(_donation(method.id))
    _expect(outcome.state is ChargeState.SUCCEEDED, f"state {outcome.state}")
    return f"{method.id} charged: {outcome.payment_intent_id}"


def _charge_declines(payments: StripePayments) -> str:
    try:
        payments.charge(_donation("pm_card_chargeDeclined"))
    except CardDeclined as declined:
        return f"declined: {declined.decline_code}"
    raise AssertionError("the charge was not declined")


def _charge_needs_action(payments: StripePayments, donation: Donation) -> str:
    outcome = payments.charge(donation)
    _expect(outcome.state is ChargeState.REQUIRES_ACTION and bool(outcome.client_secret), f"state {outcome.state}")
    donation.payment_intent_id = outcome.payment_intent_id
    return outcome.payment_intent_id


def _save_card(payments: StripePayments, donation: Donation) -> str:
    _expect(donation.payment_method_id is not None, "the charge did not succeed")
    card = payments.save_card(donation)
    donation.customer_id, donation.payment_method_id = card.customer_id, card.payment_method_id  # for the renewal
    return f"{card.customer_id}, {card.brand} ending {card.last4}"


def _fingerprint(payments: StripePayments, donation: Donation) -> str:
    fingerprint = payments.card_fingerprint(str(donation.payment_method_id))
    _expect(fingerprint is not None, "no fingerprint (the key cannot read the PaymentMethod?)")
    return "read"


def _find_attempt(payments: StripePayments, donation: Donation) -> str:
    found = payments.find_attempt(donation)
    _expect(found is not None and found.id == donation.payment_intent_id, f"found {found}")
    return f"{donation.payment_intent_id} in the PaymentIntent list"


def _search(payments: StripePayments, donation: Donation) -> str:
    deadline = time.monotonic() + SEARCH_WAIT_SECONDS
    while True:
        found = payments.find_for_donation(donation.donation_id)
        if any(intent.id == donation.payment_intent_id for intent in found):
            return "found"
        if time.monotonic() > deadline:
            raise AssertionError(f"not in Stripe's search after {SEARCH_WAIT_SECONDS} s (search lags)")
        time.sleep(3)  # Stripe's search index is eventually consistent: ask again, bounded


def _cancel(payments: StripePayments, donation: Donation) -> str:
    _expect(donation.payment_intent_id is not None, "the 3-D Secure charge did not start")
    snapshot = payments.cancel(donation.donation_id, str(donation.payment_intent_id))
    _expect(snapshot.status == "canceled", f"status {snapshot.status}")
    return "canceled"


# -- plumbing --------------------------------------------------------------------------------------


def _donation(payment_method: str, *, save_card: bool = False) -> Donation:
    stamp = utc_now()
    return Donation(
        donation_id="don_smoke" + uuid.uuid4().hex[:21],
        status=DonationStatus.PENDING,
        amount=500,
        currency="usd",
        email=SMOKE_EMAIL,
        email_masked=mask_email(SMOKE_EMAIL),
        name="Smoke Test",
        payment_method=payment_method,
        save_card=save_card,
        metadata={"smoke_test": "true"},
        request_hash="smoke",
        created_at=stamp,
        updated_at=stamp,
        charge_attempt_started_at=stamp,
    )


def _run(name: str, check: Callable[[], str]) -> Check:
    try:
        return Check(name, True, check())
    except Exception as error:  # a smoke test reports every failure and goes on
        return Check(name, False, f"{type(error).__name__}: {error}")


def _expect(condition: bool, detail: Any) -> None:
    if not condition:
        raise AssertionError(str(detail))


def _print_table(checks: list[Check], settings: SmokeSettings, *, stripe: bool, sendgrid: bool) -> None:
    where = [
        f"Stripe {settings.stripe_api_base or 'api.stripe.com'} (API version {STRIPE_API_VERSION})" if stripe else "",
        f"SendGrid {settings.sendgrid_api_host or 'api.sendgrid.com'}" if sendgrid else "",
    ]
    print("Smoke test against " + " and ".join(part for part in where if part))
    width = max(len(check.name) for check in checks)
    for check in checks:
        print(f"  {'PASS' if check.ok else 'FAIL'}  {check.name:<{width}}  {check.detail}")
    failed = sum(not check.ok for check in checks)
    print(f"{len(checks) - failed} passed, {failed} failed")


if __name__ == "__main__":
    sys.exit(main())
