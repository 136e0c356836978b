"""Card numbers the Stripe emulator issues beside Stripe's published test cards (emulator-only), so that a
simulation's donors each pay with a card of their own that still behaves as a published test card.

Stripe's rule they keep: a card's fingerprint "uniquely identifies this particular card number" (the SDK's
PaymentMethod.Card.fingerprint, stripe/_payment_method.py): one number, one fingerprint; two numbers, two.
The declines are those of the published test cards (docs.stripe.com/testing, "Declined payments").
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import stripe

from simulator.emulators.control import EmulatorControlError
from simulator.emulators.stripe import StripeControl, StripeEmulator
from simulator.emulators.stripe.cards import MAGIC_CARDS, issuable_number
from tests.support.payment_element import charge_card, post_card

pytestmark = pytest.mark.integration

StripeFactory = Callable[..., stripe.StripeClient]
INSUFFICIENT_FUNDS = "pm_card_chargeDeclinedInsufficientFunds"  # 4000 0000 0000 9995


def card_of(stripe_url: str, number: str) -> stripe.PaymentMethod:
    created = post_card(stripe_url, number)  # what Stripe.js posts with the publishable key
    assert created.status_code == 200, created.text
    return stripe.PaymentMethod.construct_from(created.json(), "sk_test_x")


def test_one_card_number_has_one_fingerprint_and_two_numbers_have_two(stripe_emu: StripeEmulator) -> None:
    # Given two PaymentMethods from one published number, and one from another
    first, again = card_of(stripe_emu.url, "4000000000009995"), card_of(stripe_emu.url, "4000000000009995")
    other = card_of(stripe_emu.url, "4000000000000002")

    # Then the same number has the same fingerprint, the other number another one
    assert first.id != again.id
    assert first.card is not None and again.card is not None and other.card is not None
    assert first.card.fingerprint == again.card.fingerprint != other.card.fingerprint


def test_issued_cards_decline_as_the_published_card_each_with_its_own_fingerprint(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    # Given two donors' card numbers issued as cards that decline for insufficient funds
    numbers = [issuable_number(INSUFFICIENT_FUNDS, 1), issuable_number(INSUFFICIENT_FUNDS, 2)]
    assert StripeControl(stripe_emu.url).issue_cards(dict.fromkeys(numbers, INSUFFICIENT_FUNDS)) == 2

    # When each donor's Stripe.js makes a PaymentMethod of their card and our server charges it
    cards = [card_of(stripe_emu.url, number) for number in numbers]
    declines = []
    for pm in cards:
        with pytest.raises(stripe.CardError) as declined:
            charge_card(stripe_client(), pm.id)
        declines.append((declined.value.code, declined.value.error.decline_code if declined.value.error else None))

    # Then both decline as 4000 0000 0000 9995 does, and they are two cards, not one
    assert declines == [("card_declined", "insufficient_funds")] * 2
    fingerprints = {pm.card.fingerprint for pm in cards if pm.card is not None}
    assert len(fingerprints) == 2 and MAGIC_CARDS[INSUFFICIENT_FUNDS].fingerprint not in fingerprints
    assert [pm.card.last4 for pm in cards if pm.card is not None] == [number[-4:] for number in numbers]
    # And the same number typed again is the same card
    again = card_of(stripe_emu.url, numbers[0])
    assert again.card is not None and again.card.fingerprint == cards[0].card.fingerprint  # type: ignore[union-attr]


def test_an_issued_card_like_a_good_card_is_charged(stripe_emu: StripeEmulator, stripe_client: StripeFactory) -> None:
    number = issuable_number("pm_card_amex", 7)
    StripeControl(stripe_emu.url).issue_cards({number: "pm_card_amex"})

    intent = charge_card(stripe_client(), card_of(stripe_emu.url, number).id)

    assert intent.status == "succeeded"


def test_what_cannot_be_issued_is_refused_and_nothing_is_issued(stripe_emu: StripeEmulator) -> None:
    control = StripeControl(stripe_emu.url)
    good = issuable_number("pm_card_visa", 1)
    refused = {
        "not a test card": {good: "pm_card_unknown"},
        "a published number": {"4000000000000002": "pm_card_visa"},
        "another issuer": {issuable_number("pm_card_mastercard", 1): "pm_card_visa"},
        "a failed Luhn check": {good[:-1] + str((int(good[-1]) + 1) % 10): "pm_card_visa"},
    }
    for why, cards in refused.items():
        with pytest.raises(EmulatorControlError) as answer:
            control.issue_cards({issuable_number("pm_card_visa", 2): "pm_card_visa", **cards})
        assert answer.value.status == 400, why

    # Nothing was issued: in test mode the numbers are still live cards, as at Stripe
    assert post_card(stripe_emu.url, issuable_number("pm_card_visa", 2)).json()["error"]["decline_code"] == (
        "test_mode_live_card"
    )
    # And a number once issued is one card
    control.issue_cards({good: "pm_card_visa"})
    with pytest.raises(EmulatorControlError):
        control.issue_cards({good: "pm_card_chargeDeclined"})


def test_a_reset_forgets_the_issued_cards(stripe_emu: StripeEmulator) -> None:
    number = issuable_number("pm_card_visa", 3)
    StripeControl(stripe_emu.url).issue_cards({number: "pm_card_visa"})

    stripe_emu.reset()

    assert post_card(stripe_emu.url, number).json()["error"]["decline_code"] == "test_mode_live_card"
