"""PaymentMethods: create (what Stripe.js's Payment Element sends), test-card ids, retrieve, attach,
and Stripe's reuse rules.

Create (docs.stripe.com/api/payment_methods/create) takes ``type=card`` with either the card's
details, as Stripe.js posts them with a publishable key (``card[number]``, ``card[exp_month]``,
``card[exp_year]``, ``card[cvc]``), or a test token (``card[token]=tok_visa``, docs.stripe.com/testing
"Tokens"). In test mode only Stripe's test card numbers are accepted (docs.stripe.com/testing
"Cards"; a real number is declined with ``test_mode_live_card``, docs.stripe.com/declines/codes),
and, emulator-only, the numbers it issued (``cards.issued_card``); a number failing the Luhn check is
``incorrect_number`` (docs.stripe.com/error-codes).

docs.stripe.com/payments/save-during-payment and docs.stripe.com/api/payment_methods/attach: a
PaymentMethod used in a payment without a Customer and without ``setup_future_usage`` is spent: it
can be neither attached nor used again. With ``customer`` + ``setup_future_usage`` Stripe attaches
it to that Customer once the payment succeeds. An attached method is usable only with its Customer.
"""

from __future__ import annotations

import re
import time

import stripe

from simulator.emulators.stripe import errors, params
from simulator.emulators.stripe.cards import MAGIC_CARDS, TEST_CARD_NUMBERS, TEST_TOKENS, CardProfile, luhn_valid
from simulator.emulators.stripe.customers import customer_ref
from simulator.emulators.stripe.events import emit
from simulator.emulators.stripe.objects import Json, copy_json, new_id, shaped
from simulator.emulators.stripe.state import Ctx, PmUsage, StripeState

REUSED_PM_MESSAGE = (
    "The provided PaymentMethod was previously used with a PaymentIntent without Customer attachment, "
    "shared with a connected account without Customer attachment, or was detached from a Customer. "
    "It may not be used again. To use a PaymentMethod multiple times, you must attach it to a Customer first."
)
UNATTACHABLE_PM_MESSAGE = (
    "This PaymentMethod was previously used without being attached to a Customer or was detached "
    "from a Customer, and may not be used again."
)


def check_usable(state: StripeState, pm_ref: str, customer: str | None, pi_id: str | None) -> None:
    """May this PaymentMethod pay for ``pi_id`` (None: a new intent) of ``customer``?"""
    if pm_ref in MAGIC_CARDS:
        return
    pm = state.payment_methods.get(pm_ref)
    if pm is None:
        raise errors.no_such("PaymentMethod", pm_ref, "payment_method", status=400)
    owner = pm["customer"]
    if owner is not None and customer != owner:
        raise errors.invalid(
            f"The provided PaymentMethod is attached to Customer '{owner}'. To use it, pass that "
            "Customer's ID as `customer`.",
            param="payment_method",
        )
    if owner is None and state.pm_usage[pm_ref].used_by - {pi_id}:
        raise errors.invalid(REUSED_PM_MESSAGE, param="payment_method")


def materialize(state: StripeState, ctx: Ctx, pm_ref: str) -> str:
    """Each use of a test id (``pm_card_visa``) makes a fresh concrete PaymentMethod, as Stripe does."""
    card = MAGIC_CARDS.get(pm_ref)
    if card is None:
        return pm_ref
    return str(_new_card_method(state, ctx, card, (12, _year(ctx.now) + 1), {}, {})["id"])


def _new_card_method(
    state: StripeState, ctx: Ctx, card: CardProfile, expiry: tuple[int, int], billing: Json, metadata: Json
) -> Json:
    pm = shaped(
        stripe.PaymentMethod,
        {
            "id": new_id("pm"),
            "object": "payment_method",
            "allow_redisplay": "unspecified",
            "billing_details": shaped(stripe.PaymentMethod.BillingDetails, billing),
            "card": _card(card, expiry),
            "created": ctx.now,
            "livemode": False,
            "metadata": metadata,
            "type": "card",
        },
    )
    state.payment_methods[pm["id"]] = pm
    state.pm_usage[pm["id"]] = PmUsage(card)
    return pm


def create(state: StripeState, ctx: Ctx, p: Json, _: str | None) -> Json:
    """A card PaymentMethod from the card's details (Stripe.js) or a test token; nothing else is modelled."""
    if params.text(p, "type") != "card":
        raise errors.invalid(
            "The Stripe emulator creates card PaymentMethods only (type=card).", param="type", code="parameter_invalid"
        )
    details: Json = p.get("card") or {}
    billing = {key: value for key, value in (p.get("billing_details") or {}).items() if key in {"name", "email"}}
    metadata = params.metadata(p)
    token = params.text(details, "token")
    if token is not None:
        card, expiry = _tokenized_card(details, token), (12, _year(ctx.now) + 1)
    else:
        number = _card_number(details)
        expiry = _expiry(details, time.gmtime(ctx.now))
        _check_cvc(details)
        card = _test_card(state, number)
    return copy_json(_new_card_method(state, ctx, card, expiry, billing, metadata))


def _tokenized_card(details: Json, token: str) -> CardProfile:
    """The card behind a test token (tok_visa, ...), given on its own."""
    if set(details) != {"token"}:
        raise errors.exclusive("card[token]", "card[number]")
    card = TEST_TOKENS.get(token)
    if card is None:
        raise errors.no_such("token", token, "card[token]", status=400)
    return card


def _card_number(details: Json) -> str:
    """The card number as Stripe.js sends it typed (spaces, dashes), checked by its Luhn digit."""
    number = re.sub(r"[\s-]", "", params.text(details, "number") or "")
    if not number:
        raise errors.missing("card[number]")
    if not luhn_valid(number):
        raise _card_error("incorrect_number", "Your card number is incorrect.", "number")
    return number


def _expiry(details: Json, now: time.struct_time) -> tuple[int, int]:
    """(month, four-digit year), not past and at most 50 years ahead."""
    expiry = (params.integer(details, "exp_month") or 0, params.integer(details, "exp_year") or 0)
    if not 1 <= expiry[0] <= 12:
        raise _card_error("invalid_expiry_month", "Your card's expiration month is invalid.", "exp_month")
    if expiry[1] < 100:
        expiry = (expiry[0], 2000 + expiry[1])  # Stripe.js sends two-digit years as typed
    if expiry[1] < now.tm_year or expiry[1] > now.tm_year + 50:
        raise _card_error("invalid_expiry_year", "Your card's expiration year is invalid.", "exp_year")
    if expiry == (expiry[0], now.tm_year) and expiry[0] < now.tm_mon:
        raise _card_error("invalid_expiry_month", "Your card's expiration month is invalid.", "exp_month")
    return expiry


def _check_cvc(details: Json) -> None:
    cvc = params.text(details, "cvc")
    if cvc is not None and not re.fullmatch(r"\d{3,4}", cvc):
        raise _card_error("invalid_cvc", "Your card's security code is invalid.", "cvc")


def _test_card(state: StripeState, number: str) -> CardProfile:
    """Only Stripe's published test card numbers (and the emulator's issued ones, cards.issued_card): a real
    number gets the test-mode decline."""
    card = TEST_CARD_NUMBERS.get(number) or state.issued_cards.get(number)
    if card is None:
        raise errors.StripeApiError(
            402,
            "card_error",
            "Your card was declined. Your request was in test mode, but used a non test (live) card. For a list "
            "of valid test cards, visit: https://stripe.com/docs/testing.",
            code="card_declined",
            decline_code="test_mode_live_card",
        )
    return card


def _card_error(code: str, message: str, field: str) -> errors.StripeApiError:
    return errors.StripeApiError(402, "card_error", message, code=code, param=f"card[{field}]")


def _card(card: CardProfile, expiry: tuple[int, int]) -> Json:
    return shaped(
        stripe.PaymentMethod.Card,
        {
            "brand": card.brand,
            "checks": shaped(stripe.PaymentMethod.Card.Checks, {"cvc_check": "pass"}),
            "country": card.country,
            "display_brand": card.brand,
            "exp_month": expiry[0],
            "exp_year": expiry[1],
            "fingerprint": card.fingerprint,
            "funding": card.funding,
            "last4": card.last4,
            "networks": shaped(stripe.PaymentMethod.Card.Networks, {"available": [card.brand]}),
        },
    )


def _year(unix: int) -> int:
    return time.gmtime(unix).tm_year


def retrieve(state: StripeState, ctx: Ctx, p: Json, pm_ref: str | None) -> Json:
    assert pm_ref is not None
    expand = params.expand(p, {"customer"})
    if pm_ref not in MAGIC_CARDS and pm_ref not in state.payment_methods:
        raise errors.no_such("PaymentMethod", pm_ref, "payment_method")
    return render(state, state.payment_methods[materialize(state, ctx, pm_ref)], expand)


def attach_endpoint(state: StripeState, ctx: Ctx, p: Json, pm_ref: str | None) -> Json:
    assert pm_ref is not None
    expand = params.expand(p, {"customer"})
    customer_id = params.text(p, "customer")
    if customer_id is None:  # the SDK types allow customer_account instead; this account has no Accounts
        raise errors.missing("customer")
    customer = customer_ref(state, customer_id)
    assert customer is not None
    if pm_ref not in MAGIC_CARDS and pm_ref not in state.payment_methods:
        raise errors.no_such("PaymentMethod", pm_ref, "payment_method")
    pm = state.payment_methods.get(pm_ref)
    if pm is not None and pm["customer"] not in (None, customer):
        raise errors.invalid("The payment method you provided has already been attached to a customer.")
    if pm is not None and pm["customer"] is None and state.pm_usage[pm_ref].consumed:
        raise errors.invalid(UNATTACHABLE_PM_MESSAGE)
    pm = pm or state.payment_methods[materialize(state, ctx, pm_ref)]
    attach(state, ctx, pm, customer, source="api")
    return render(state, pm, expand)


def attach(state: StripeState, ctx: Ctx, pm: Json, customer: str, *, source: str) -> None:
    """Attach (again attaching to the same Customer is a no-op that still answers with the method)."""
    already = pm["customer"] == customer
    pm["customer"] = customer
    state.attachments.append(
        {
            "payment_method": pm["id"],
            "customer": customer,
            "source": source,
            "already_attached": already,
            "created": ctx.now,
        }
    )
    if not already:
        emit(state, ctx, "payment_method.attached", pm)


def update_automatically(
    state: StripeState, ctx: Ctx, pm_id: str, expiry: tuple[int, int], number: str | None = None
) -> Json:
    """The card network updates a saved card in place (Stripe's card account updater: "Occurs whenever a
    payment method's details are automatically updated by the network", ``payment_method.automatically_updated``
    in the SDK's stripe.Event types): the PaymentMethod keeps its id and Customer, its ``card`` has the new expiry
    (and, for a reissued card, the new ``number``'s brand, last 4 and fingerprint). A card declined only for its
    expiry (``expired_card``) charges once it has a new one; a new number behaves as that test card. Emits the
    event (caused by Stripe, ``request`` null) and returns the PaymentMethod. KeyError: no such PaymentMethod;
    ValueError: not saved to a Customer (only saved cards are updated), or a bad expiry or number."""
    pm = state.payment_methods.get(pm_id)
    if pm is None:
        raise KeyError(f"No such payment_method: '{pm_id}'")
    if pm["customer"] is None:
        raise ValueError(f"{pm_id} is not saved to a Customer: the network updates saved cards only")
    now = time.gmtime(ctx.now)
    if not 1 <= expiry[0] <= 12 or (expiry[1], expiry[0]) < (now.tm_year, now.tm_mon) or expiry[1] > now.tm_year + 50:
        raise ValueError("the new expiry must be a month (1 to 12) and year, not past")
    usage = state.pm_usage[pm_id]
    card = usage.card
    if number is not None:
        found = TEST_CARD_NUMBERS.get(number) or state.issued_cards.get(number)
        if found is None:
            raise ValueError("the new number must be a test card number (or one the emulator issued)")
        card = found
    elif card.decline_code == "expired_card":
        card = CardProfile(card.number, card.brand, country=card.country, funding=card.funding)
    usage.card = card
    pm["card"] = _card(card, expiry)
    emit(state, ctx, "payment_method.automatically_updated", pm, automatic=True)
    return copy_json(pm)


def render(state: StripeState, pm: Json, expand: list[str]) -> Json:
    out = copy_json(pm)
    if "customer" in expand and out["customer"]:
        out["customer"] = copy_json(state.customers[out["customer"]])
    return out
