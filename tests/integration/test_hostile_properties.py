"""Property-based: whatever the body, no 5xx; a card number hidden anywhere is refused and changes nothing."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.world import DONATION, World

pytestmark = pytest.mark.integration

CARD_NUMBERS = ["4242424242424242", "4242 4242 4242 4242", "5555-5555-5555-4444", "378282246310005"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@st.composite
def bodies_hiding_a_card_number(draw):
    """A donation body with a card number put in a random field, nested at a random depth."""
    body = json.loads(json.dumps(DONATION))
    number = draw(st.sampled_from(CARD_NUMBERS))
    prefix = draw(st.text(alphabet="abc :-", max_size=5))
    hidden: object = f"{prefix}{number}"
    for key in draw(st.lists(st.sampled_from(["note", "x", "ref"]), max_size=3)):
        hidden = {key: hidden}
    body[draw(st.sampled_from(["name", "email", "payment_method", "metadata", "extra", "currency"]))] = hidden
    return body


@pytest.fixture(scope="module")
def quiet_world(pipeline, stripe_emulator, sendgrid_emulator):
    world = World(pipeline, stripe_emulator, sendgrid_emulator)
    world.reset()
    return world


@given(body=bodies_hiding_a_card_number())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_card_number_anywhere_is_refused_and_changes_nothing(quiet_world, body):
    donations, intents = quiet_world.donation_count(), quiet_world.stripe.payment_intents_created

    answer = quiet_world.post(body, key="key-property-pan")

    assert answer.status == 400, answer.body
    assert answer.body["error"]["code"] == "card_data_refused"
    assert quiet_world.donation_count() == donations
    assert quiet_world.stripe.payment_intents_created == intents


@given(body=st.dictionaries(st.sampled_from([*DONATION, "other"]), json_values, max_size=8) | json_values)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_json_body_gets_an_answer_below_500(quiet_world, body):
    answer = quiet_world.post(body, key="key-property-any")

    assert answer.status < 500, answer.body
    assert set(answer.body) == (
        {"error"}
        if answer.status >= 400
        else {"donation_id", "status"} | ({"client_secret"} if answer.status == 202 else set())
    )
