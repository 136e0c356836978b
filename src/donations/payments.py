"""Stripe: charge a donation once, and save its card for later. Idempotency keys derive from the donation id."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import stripe

from donations import snapstart
from donations.errors import (
    DONOR_DECLINE_MESSAGES,
    CardDeclined,
    ChargeIndeterminate,
    InvalidDonation,
    PermanentStepFailure,
    RetryableStepFailure,
    ServiceUnavailable,
    StoredServerError,
    classify,
    donor_decline_message,
)
from donations.models import Donation
from donations.ports import CardSetup, ChargeOutcome, ChargeState, IntentSnapshot, SavedCard
from donations.settings import StripeClientSettings
from donations.stripe_http import BudgetedRequestsClient

# Stripe advises not to tell a donor that their card was reported lost or stolen.
_UNDISCLOSED_DECLINE_CODES = frozenset({"lost_card", "stolen_card", "pickup_card", "fraudulent", "merchant_blacklist"})
# Stripe's error codes for an amount out of its range (docs.stripe.com/error-codes).
_AMOUNT_REFUSALS = frozenset({"amount_too_small", "amount_too_large"})


# The Stripe API version every request names, pinned here and only here. It is the version the
# installed SDK was generated for (stripe/_api_version.py): its request parameters and objects are
# typed for it. Upgrading the SDK moves that version; a unit test then fails until this line, the
# README and a full test run (make test, and make smoke against Stripe in test mode) agree again.
STRIPE_API_VERSION = "2026-10-28.endive"


def build_stripe_client(settings: StripeClientSettings, api_key: str) -> stripe.StripeClient:
    """A client with explicit retries (the SDK's default is a single attempt), each attempt and the
    number of retries bounded by the invocation's time budget (donations.deadline)."""
    base_addresses: dict[str, str] = {"api": settings.stripe_api_base} if settings.stripe_api_base else {}
    return stripe.StripeClient(
        api_key,
        stripe_version=STRIPE_API_VERSION,
        base_addresses=base_addresses,  # type: ignore[arg-type]
        max_network_retries=settings.stripe_max_network_retries,
        # Its connections are closed around SnapStart's snapshot and restores (donations.snapstart).
        http_client=snapstart.holds_connections(BudgetedRequestsClient(settings.provider_timeout_seconds)),
    )


# The warm-up's list asks for PaymentIntents created after this many seconds from now: none exist.
_EMPTY_PAGE_AHEAD_SECONDS = 3600
# How far outside an attempt's recorded start and end (our clock) its PaymentIntent's ``created``
# (Stripe's clock, whole seconds) may fall. Both clocks are kept by NTP (Lambda: "The execution
# environment uses NTP to synchronize the system clock", docs.aws.amazon.com/lambda/latest/dg/
# configuration-envvars.html, TZ): their drift is milliseconds, so 10 s is room to spare, and keeps
# an attempt's stretch to about 20 s, one list page at 300,000 PaymentIntents a day.
_CREATED_SKEW_SECONDS = 10
# A list page holds at most 100 objects; an account creating more than this many PaymentIntents in an
# attempt's stretch (about 4 million a day) is asked again later rather than read without end.
_MAX_LIST_PAGES = 10


def attempt_key(donation_id: str, purpose: str, attempt: int) -> str:
    """The Stripe idempotency key of one attempt at one call (attempt 0 keeps the original key)."""
    return f"donation-{donation_id}-{purpose}" + (f"-{attempt}" if attempt else "")


def is_stored_server_error(error: stripe.StripeError) -> bool:
    """Stripe saved this server error under the request's idempotency key, and replays it for 24 h.

    Stripe saves a request's result, 500s included, once the endpoint began executing
    (docs.stripe.com/api/idempotent_requests), and marks such answers ``Stripe-Should-Retry: false``
    (stripe/_http_client.py, HTTPClient._should_retry), which is why the SDK does not retry them.
    """
    headers = error.headers or {}
    return (error.http_status or 0) >= 500 and headers.get("Stripe-Should-Retry") == "false"


class StripePayments:
    def __init__(self, client: stripe.StripeClient) -> None:
        self._client = client

    def charge(self, donation: Donation) -> ChargeOutcome:
        """Create and confirm one PaymentIntent; the same donation always replays the same intent.

        Raises CardDeclined (402), InvalidDonation (400) or ServiceUnavailable (503).
        """
        params: dict[str, Any] = {
            "amount": donation.amount,
            "currency": donation.currency,
            "payment_method": donation.payment_method,
            # Cards only. For the pinned API version, PaymentIntentCreateParams has
            # allowed_payment_method_types and no payment_method_types (stripe/params).
            "allowed_payment_method_types": ["card"],
            "confirm": True,
            "metadata": {
                **donation.metadata,
                "donation_id": donation.donation_id,
                "charge_attempt": str(donation.charge_attempt),
            },
            "description": f"Donation {donation.donation_id}",
            # The charge in the same answer (no extra round trip: "expand" works on create requests,
            # docs.stripe.com/api/expanding_objects): its card's brand and last 4 let operators find a
            # donor who calls with their card (donations_ops.lookup).
            "expand": ["latest_charge"],
        }
        if donation.save_card:
            # Without this Stripe refuses to attach the PaymentMethod to a Customer afterwards.
            params["setup_future_usage"] = "off_session"
        try:
            intent = self._client.v1.payment_intents.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": attempt_key(donation.donation_id, "charge", donation.charge_attempt)},
            )
        except stripe.CardError as error:
            raise _declined(error) from error
        except stripe.IdempotencyError as error:
            # The donor's details were already held to the record's (DonationStore.create_pending), so the
            # key was first used by a release that sent other parameters (a deploy while this donation was
            # in flight). Stripe will never answer that key again: the attempt is spent, and
            # donations.charge finds what it did before it takes a new key.
            raise ChargeIndeterminate("The payment service failed; please try again shortly.") from error
        except stripe.InvalidRequestError as error:
            if error.code in _AMOUNT_REFUSALS:
                # Stripe's own limit for this currency (docs.stripe.com/currencies#minimum-and-maximum-charge-amounts),
                # where our table has none: the donor can change the amount.
                raise InvalidDonation(
                    "The amount is outside what can be charged in this currency; please change it.",
                    field="amount",
                    code=error.code,
                ) from error
            if error.param == "payment_method":
                raise InvalidDonation(
                    "The payment method is not valid; please enter your card again.",
                    field="payment_method",
                    code="invalid_payment_method",
                ) from error
            raise ServiceUnavailable("The payment could not be processed right now.") from error
        except stripe.StripeError as error:
            if is_stored_server_error(error):
                raise ChargeIndeterminate("The payment service failed; please try again shortly.") from error
            raise ServiceUnavailable("The payment service is unavailable; please try again shortly.") from error
        return _outcome(intent)

    def open_connection(self, now: float | None = None) -> None:
        """Open the HTTPS connection the next charge reuses (the warm-up, donations.warmup).

        The cheapest request that opens it: a read, so it never competes with charges (Stripe limits
        reads and writes apart, docs.stripe.com/rate-limits), on the one endpoint the charge path
        already reads (find_attempt's PaymentIntent list: a restricted key needs no new permission),
        asking for an empty page (created after an hour from now, one object at most), so no donor's
        data crosses the wire.
        """
        after = int(now if now is not None else time.time()) + _EMPTY_PAGE_AHEAD_SECONDS
        self._client.v1.payment_intents.list(params={"created": {"gt": after}, "limit": 1})
        # The classes of the charge's answer (a PaymentIntent and its expanded Charge): the SDK imports
        # each on first use, and building them was most of the CPU the first charge spent beyond a warm one.
        _answer_classes = (stripe.PaymentIntent, stripe.Charge)

    def charge_saved_card(self, donation: Donation, customer_id: str, idempotency_key: str) -> ChargeOutcome:
        """Charge a saved card with the donor away (a monthly renewal), once per ``idempotency_key``.

        Stripe's "Charging Saved Cards", off-session (docs.stripe.com/payments/cards/charging-saved-cards;
        stripe.com/docs/payments/payment-intents/off-session): ``customer`` and ``payment_method``,
        ``off_session`` and ``confirm``. Test cards: docs.stripe.com/testing, "Authentication and setup".
        A card the bank wants authenticated fails with the card error ``authentication_required``
        (CardDeclined with that decline code), never ``requires_action``.
        Raises CardDeclined, or RetryableStepFailure when Stripe could not answer (the message comes back).
        """
        params = stripe.params.PaymentIntentCreateParams(
            amount=donation.amount,
            currency=donation.currency,
            customer=customer_id,
            payment_method=donation.payment_method,
            allowed_payment_method_types=["card"],
            off_session=True,
            confirm=True,
            metadata={
                **donation.metadata,
                "donation_id": donation.donation_id,
                "charge_attempt": str(donation.charge_attempt),
            },
            description=f"Donation {donation.donation_id}",
            expand=["latest_charge"],
        )
        try:
            intent = self._client.v1.payment_intents.create(params=params, options={"idempotency_key": idempotency_key})
        except stripe.CardError as error:
            raise _declined(error) from error
        except stripe.StripeError as error:
            verdict = classify(error)
            failure = RetryableStepFailure if verdict.retryable else PermanentStepFailure
            raise failure(f"renew:{verdict.reason}") from error
        return _outcome(intent)

    def confirm_on_session(self, payment_intent_id: str, payment_method_id: str) -> IntentSnapshot:
        """Confirm a renewal's PaymentIntent again with the donor present (the page an emailed link opens),
        after its off-session attempt failed with ``authentication_required``: Stripe then asks for 3-D
        Secure (``requires_action``), which Stripe.js finishes in the page with the intent's client_secret
        (docs.stripe.com/payments/cards/charging-saved-cards, "bring the customer back on-session").
        No ``off_session``: the donor is here. Raises CardDeclined, or ServiceUnavailable."""
        params = stripe.params.PaymentIntentConfirmParams(payment_method=payment_method_id)
        try:
            intent = self._client.v1.payment_intents.confirm(payment_intent_id, params=params)
        except stripe.CardError as error:
            raise _declined(error) from error
        except stripe.StripeError as error:
            raise ServiceUnavailable("The payment service is unavailable; please try again shortly.") from error
        return _snapshot(intent)

    def start_card_setup(self, customer_id: str, pledge_id: str, idempotency_key: str) -> CardSetup:
        """A SetupIntent to save a new card on the pledge's Customer, for payments made with the donor away
        (docs.stripe.com/payments/save-and-reuse: ``customer``, ``usage=off_session``; cards only through
        ``allowed_payment_method_types``, as the pinned version has no writable ``payment_method_types``,
        stripe.params.SetupIntentCreateParams). The donor's page confirms it with Stripe.js. Raises
        ServiceUnavailable."""
        params = stripe.params.SetupIntentCreateParams(
            customer=customer_id,
            usage="off_session",
            allowed_payment_method_types=["card"],
            metadata={"pledge_id": pledge_id},
            description=f"New card for monthly gift {pledge_id}",
        )
        try:
            intent = self._client.v1.setup_intents.create(params=params, options={"idempotency_key": idempotency_key})
        except stripe.StripeError as error:
            raise ServiceUnavailable("The payment service is unavailable; please try again shortly.") from error
        return _card_setup(intent)

    def card_setup(self, setup_intent_id: str) -> CardSetup | None:
        """The SetupIntent with its card (brand, last 4), or None if Stripe knows no such SetupIntent."""
        params = stripe.params.SetupIntentRetrieveParams(expand=["payment_method"])
        try:
            intent = self._client.v1.setup_intents.retrieve(setup_intent_id, params=params)
        except stripe.InvalidRequestError as error:
            if error.http_status == 404:
                return None
            raise ServiceUnavailable("The payment service is unavailable; please try again shortly.") from error
        except stripe.StripeError as error:
            raise ServiceUnavailable("The payment service is unavailable; please try again shortly.") from error
        return _card_setup(intent)

    def find_attempt(self, donation: Donation) -> IntentSnapshot | None:
        """The PaymentIntent this donation's current charge attempt created, if it created one.

        Reads Stripe's PaymentIntent list (consistent, unlike search) over the attempt's own stretch of
        time only: created from its start to when it was found spent (the request that got Stripe's
        stored error had then had its answer, so anything it created is older), each bound widened by
        _CREATED_SKEW_SECONDS. Its cost is the PaymentIntents created in those seconds: the same an
        hour or a day after the attempt, on a quiet account or a busy one (list bounds ``created[gte]``
        and ``created[lte]``, stripe.params.PaymentIntentListParamsCreated). It matches the metadata
        every charge carries. Raises ServiceUnavailable when even that stretch holds more
        PaymentIntents than it is reasonable to read now.
        """
        started = _unix(donation.charge_attempt_started_at or donation.created_at) - _CREATED_SKEW_SECONDS
        created: dict[str, int] = {"gte": started}
        if donation.charge_attempt_spent_at:  # records from before it was kept: open-ended, as they were
            created["lte"] = _unix(donation.charge_attempt_spent_at) + _CREATED_SKEW_SECONDS
        params: dict[str, Any] = {"created": created, "limit": 100}
        wanted = {"donation_id": donation.donation_id, "charge_attempt": str(donation.charge_attempt)}
        for _ in range(_MAX_LIST_PAGES):
            try:
                page = self._client.v1.payment_intents.list(params=params)  # type: ignore[arg-type]
            except stripe.StripeError as error:
                raise ServiceUnavailable("The payment service is unavailable; please try again shortly.") from error
            for intent in page.data:
                metadata = _metadata(intent)
                if all(metadata.get(key) == value for key, value in wanted.items()):
                    return _snapshot(intent)
            if not page.has_more or not page.data:
                return None
            params["starting_after"] = page.data[-1].id
        raise ServiceUnavailable("The payment service is busy; please try again shortly.")

    def card_fingerprint(self, payment_method_id: str) -> str | None:
        """The fingerprint of the card behind a PaymentMethod (one read; donations.screening asks only
        for a client that had a decline). None when Stripe cannot say (unknown method, Stripe down)."""
        try:
            return _fingerprint(self._client.v1.payment_methods.retrieve(payment_method_id))
        except stripe.StripeError:
            return None

    def retrieve(self, payment_intent_id: str) -> stripe.PaymentIntent:
        return self._client.v1.payment_intents.retrieve(payment_intent_id)

    def lookup(self, payment_intent_id: str) -> IntentSnapshot:
        return _snapshot(self.retrieve(payment_intent_id))

    def find_for_donation(self, donation_id: str) -> list[IntentSnapshot]:
        """PaymentIntents whose metadata names this donation (the charge always sets it).

        Stripe's search index lags (under a minute normally, up to an hour in incidents): an empty
        answer means "not charged yet, as far as Stripe can tell", never proof on its own.
        """
        found = self._client.v1.payment_intents.search(
            params={"query": f"metadata['donation_id']:'{donation_id}'", "limit": 10}
        )
        return [_snapshot(intent) for intent in found.data]

    def succeeded_between(self, start: int, end: int, *, max_pages: int) -> tuple[list[IntentSnapshot], bool]:
        """The PaymentIntents that succeeded and were created from ``start`` to before ``end`` (unix
        seconds), read with Stripe's search (fields ``status`` and ``created``, docs.stripe.com/search#
        query-fields-for-payment-intents), at most ``max_pages`` pages of 100; and whether that was all.

        Search lags: "under normal operating conditions, data is searchable in under 1 minute",
        delayed "during an outage" (docs.stripe.com/search#data-freshness), "up to an hour"
        (docs.stripe.com/api/payment_intents/search). The caller asks about stretches old enough.
        """
        query = f"status:'succeeded' AND created>={start} AND created<{end}"
        params: dict[str, Any] = {"query": query, "limit": 100}
        found: list[IntentSnapshot] = []
        for _ in range(max_pages):
            page = self._client.v1.payment_intents.search(params=params)  # type: ignore[arg-type]
            found += [_snapshot(intent) for intent in page.data]
            if not page.has_more or not page.next_page:
                return found, True
            params["page"] = page.next_page
        return found, False

    def cancel(self, donation_id: str, payment_intent_id: str) -> IntentSnapshot:
        """Cancel an abandoned PaymentIntent so a late authentication cannot take the money.

        An intent that moved on meanwhile (succeeded, or already canceled) cannot be canceled:
        its current state is returned instead, for the caller to record.
        """
        try:
            intent = self._client.v1.payment_intents.cancel(
                payment_intent_id,
                params={"cancellation_reason": "abandoned"},
                # One key per PaymentIntent: a donation may have one per charge attempt.
                options={"idempotency_key": f"donation-{donation_id}-cancel-{payment_intent_id}"},
            )
        except stripe.InvalidRequestError as error:
            if error.code != "payment_intent_unexpected_state":
                raise
            return self.lookup(payment_intent_id)
        return _snapshot(intent)

    def save_card(self, donation: Donation) -> SavedCard:
        """Create the donor's Customer and attach the charge's PaymentMethod; safe to repeat.

        Keys derive from the donation and its ``card_attempt``. After a stored server error
        (StoredServerError: the caller moves to the next attempt) a later attempt first looks for
        what the earlier ones did, with consistent reads (the Customer list by email, the
        PaymentMethod itself), so a new key never makes a second Customer or attachment.
        """
        if not donation.payment_method_id:
            raise PermanentStepFailure("tokenize:no_payment_method")
        try:
            customer = self._customer_for(donation)
            method = self._attached(donation, donation.payment_method_id, customer.id)
        except stripe.StripeError as error:
            if is_stored_server_error(error):
                raise StoredServerError("tokenize:stripe:stored_server_error") from error
            verdict = classify(error)
            failure = RetryableStepFailure if verdict.retryable else PermanentStepFailure
            raise failure(f"tokenize:{verdict.reason}") from error
        card = method.card
        return SavedCard(
            customer_id=customer.id,
            payment_method_id=method.id,
            brand=card.brand if card else None,
            last4=card.last4 if card else None,
            exp_month=card.exp_month if card else None,
            exp_year=card.exp_year if card else None,
        )

    def delete_customer(self, customer_id: str) -> bool:
        """Delete the Customer (an erased donor's); False if Stripe has no such Customer any more.

        Stripe answers a Customer deleted already as one that does not exist: 404 ``resource_missing``
        (docs.stripe.com/api/customers/delete). DELETE takes no idempotency key to matter: repeating it
        is safe by that answer."""
        try:
            self._client.v1.customers.delete(customer_id)
        except stripe.StripeError as error:
            if isinstance(error, stripe.InvalidRequestError) and error.code == "resource_missing":
                return False
            verdict = classify(error)
            failure = RetryableStepFailure if verdict.retryable else PermanentStepFailure
            raise failure(f"delete_customer:{verdict.reason}") from error
        return True

    def _customer_for(self, donation: Donation) -> stripe.Customer:
        if donation.card_attempt:
            customers = self._client.v1.customers.list(params={"email": donation.email, "limit": 100})
            for customer in customers.data:
                if _metadata(customer).get("donation_id") == donation.donation_id:
                    return customer
        return self._client.v1.customers.create(
            params={"email": donation.email, "name": donation.name, "metadata": {"donation_id": donation.donation_id}},
            options={"idempotency_key": attempt_key(donation.donation_id, "customer", donation.card_attempt)},
        )

    def _attached(self, donation: Donation, payment_method_id: str, customer_id: str) -> stripe.PaymentMethod:
        if donation.card_attempt:
            method = self._client.v1.payment_methods.retrieve(payment_method_id)
            if _customer_id(method.customer) == customer_id:
                return method
        return self._client.v1.payment_methods.attach(
            payment_method_id,
            params={"customer": customer_id},
            options={"idempotency_key": attempt_key(donation.donation_id, "attach", donation.card_attempt)},
        )


def _metadata(found: stripe.PaymentIntent | stripe.Customer | stripe.SetupIntent) -> dict[str, str]:
    # A StripeObject is not a dict (no .get): read it as one.
    return dict(found.metadata.to_dict()) if found.metadata else {}


def _card_setup(intent: stripe.SetupIntent) -> CardSetup:
    method = intent.payment_method
    card = method.card if isinstance(method, stripe.PaymentMethod) else None
    return CardSetup(
        id=intent.id,
        status=intent.status,
        customer_id=_customer_id(intent.customer),
        client_secret=intent.client_secret,
        payment_method_id=method.id if isinstance(method, stripe.PaymentMethod) else method,
        card_brand=card.brand if card else None,
        card_last4=card.last4 if card else None,
        pledge_id=_metadata(intent).get("pledge_id"),
    )


def _customer_id(reference: str | stripe.Customer | None) -> str | None:
    return reference if isinstance(reference, str) or reference is None else reference.id


def _unix(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def _payment_method_id(intent: stripe.PaymentIntent) -> str | None:
    payment_method = intent.payment_method
    return payment_method if isinstance(payment_method, str) or payment_method is None else payment_method.id


def _snapshot(intent: stripe.PaymentIntent) -> IntentSnapshot:
    error = intent.last_payment_error
    decline_code = issuer_code = None
    if error is not None and error.type == "card_error":
        decline_code = donor_safe_decline_code(error.code, error.decline_code)
        issuer_code = error.decline_code or error.code
    return IntentSnapshot(
        id=intent.id,
        status=intent.status,
        payment_method_id=_payment_method_id(intent),
        decline_code=decline_code,
        issuer_decline_code=issuer_code,
        authentication_failed=error is not None and error.code == "payment_intent_authentication_failure",
        client_secret=intent.client_secret,
        donation_id=_metadata(intent).get("donation_id"),
        amount=intent.amount,
        currency=intent.currency,
    )


def donor_safe_decline_code(code: str | None, decline_code: str | None) -> str:
    safe = decline_code or code or "card_declined"
    return "generic_decline" if safe in _UNDISCLOSED_DECLINE_CODES else safe


def _outcome(intent: stripe.PaymentIntent) -> ChargeOutcome:
    method_id = _payment_method_id(intent)
    if intent.status == "succeeded":
        brand, last4 = _charged_card(intent)
        return ChargeOutcome(ChargeState.SUCCEEDED, intent.id, method_id, card_brand=brand, card_last4=last4)
    if intent.status == "requires_action":
        return ChargeOutcome(ChargeState.REQUIRES_ACTION, intent.id, method_id, intent.client_secret)
    # processing / requires_capture should not happen for confirm=True card payments with automatic capture.
    raise ServiceUnavailable(f"The payment is {intent.status}; please check back shortly.")


def _charged_card(intent: stripe.PaymentIntent) -> tuple[str | None, str | None]:
    """(brand, last 4) of the card the expanded latest_charge was paid with (Charge.payment_method_details.card)."""
    charge = intent.latest_charge
    details = charge.payment_method_details if isinstance(charge, stripe.Charge) else None
    card = details.card if details is not None else None
    return (card.brand, card.last4) if card is not None else (None, None)


def recorded_decline(decline_code: str | None) -> CardDeclined:
    """The decline a donor was told, rebuilt from the record's (donor-safe) code for a resubmission."""
    return CardDeclined(donor_decline_message(decline_code), code="card_declined", decline_code=decline_code)


def _declined(error: stripe.CardError) -> CardDeclined:
    details = error.error
    code = (details.code if details else None) or "card_declined"
    decline_code = donor_safe_decline_code(code, details.decline_code if details else None)
    message = donor_decline_message(decline_code if decline_code in DONOR_DECLINE_MESSAGES else code)
    declined = CardDeclined(message, code="card_declined", decline_code=decline_code)
    declined.issuer_decline_code = (details.decline_code if details else None) or code
    intent = details.payment_intent if details else None
    declined.payment_intent_id = intent.id if intent is not None else None
    declined.card_fingerprint = _fingerprint(details.payment_method if details else None)
    return declined


def _fingerprint(method: stripe.PaymentMethod | None) -> str | None:
    """The card's fingerprint: the same for every PaymentMethod made from one card number.

    A card_error carries the PaymentMethod it was about (stripe/_error_object.py, ErrorObject.payment_method:
    "The PaymentMethod object for errors returned on a request involving a PaymentMethod"), whose
    ``card.fingerprint`` (stripe/_payment_method.py, PaymentMethod.Card) needs no further lookup.
    """
    card = method.card if method is not None else None
    return card.fingerprint if card is not None else None
