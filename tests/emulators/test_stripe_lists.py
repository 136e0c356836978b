"""List endpoints (GET /v1/payment_intents, GET /v1/customers): consistent reads, newest first,
cursor pagination as docs.stripe.com/api/pagination describes it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import stripe

from simulator.emulators.stripe import StripeEmulator

pytestmark = pytest.mark.integration

StripeFactory = Callable[..., stripe.StripeClient]


def pay(client: stripe.StripeClient, customer: str | None = None, donation_id: str = "d") -> stripe.PaymentIntent:
    params = {
        "amount": 1000,
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "allowed_payment_method_types": ["card"],
        "confirm": True,
        "metadata": {"donation_id": donation_id},
    }
    if customer is not None:
        params["customer"] = customer
    return client.v1.payment_intents.create(params=params)  # type: ignore[arg-type]


@pytest.fixture
def five(stripe_emu: StripeEmulator, stripe_client: StripeFactory) -> list[stripe.PaymentIntent]:
    """Five intents a minute apart, oldest first; the 2nd and 4th belong to one customer."""
    client = stripe_client()
    donor = client.v1.customers.create(params={"email": "donor@example.org"})
    intents = []
    for i in range(5):
        intents.append(pay(client, donor.id if i in (1, 3) else None, f"d{i}"))
        stripe_emu.advance_clock(60)
    return intents


def ids(page: stripe.ListObject[stripe.PaymentIntent]) -> list[str]:
    return [pi.id for pi in page.data]


def test_pages_newest_first_with_cursors(five: list[stripe.PaymentIntent], stripe_client: StripeFactory) -> None:
    client = stripe_client()
    newest = [pi.id for pi in reversed(five)]

    first = client.v1.payment_intents.list(params={"limit": 2})
    second = client.v1.payment_intents.list(params={"limit": 2, "starting_after": first.data[-1].id})
    last = client.v1.payment_intents.list(params={"limit": 2, "starting_after": second.data[-1].id})
    back = client.v1.payment_intents.list(params={"limit": 2, "ending_before": last.data[0].id})

    assert (first.object, first.url) == ("list", "/v1/payment_intents")
    assert (ids(first), first.has_more) == (newest[:2], True)
    assert (ids(second), second.has_more) == (newest[2:4], True)
    assert (ids(last), last.has_more) == (newest[4:], False)
    assert ids(back) == newest[2:4]
    assert [pi.id for pi in client.v1.payment_intents.list().auto_paging_iter()] == newest


def test_filters_by_customer_and_created(five: list[stripe.PaymentIntent], stripe_client: StripeFactory) -> None:
    client = stripe_client()
    donor = str(five[1].customer)

    by_customer = client.v1.payment_intents.list(params={"customer": donor})
    since = client.v1.payment_intents.list(params={"created": {"gte": five[3].created}})
    window = client.v1.payment_intents.list(params={"created": {"gt": five[0].created, "lt": five[4].created}})
    exact = client.v1.payment_intents.list(params={"created": five[2].created})

    assert ids(by_customer) == [five[3].id, five[1].id]
    assert ids(since) == [five[4].id, five[3].id]
    assert ids(window) == [five[3].id, five[2].id, five[1].id]
    assert ids(exact) == [five[2].id]


def test_list_reads_are_consistent_while_search_lags() -> None:
    with StripeEmulator(search_lag_ms=60_000) as emu:
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": emu.url})
        pi = pay(client, donation_id="fresh")

        found = client.v1.payment_intents.search(params={"query": "metadata['donation_id']:'fresh'"})
        listed = client.v1.payment_intents.list()
        emu.advance_clock(60)
        later = client.v1.payment_intents.search(params={"query": "metadata['donation_id']:'fresh'"})

        assert found.data == [] and ids(listed) == [pi.id]
        assert [p.id for p in later.data] == [pi.id]


def test_list_expands_items(five: list[stripe.PaymentIntent], stripe_client: StripeFactory) -> None:
    params = {"customer": str(five[1].customer), "expand": ["data.customer"]}
    page = stripe_client().v1.payment_intents.list(params=params)  # type: ignore[arg-type]
    assert all(isinstance(pi.customer, stripe.Customer) for pi in page.data)


def test_list_refusals(five: list[stripe.PaymentIntent], stripe_client: StripeFactory) -> None:
    client = stripe_client()
    cases = [
        ({"starting_after": five[0].id, "ending_before": five[1].id}, "parameters_exclusive", "starting_after"),
        ({"starting_after": "pi_missing"}, "resource_missing", "starting_after"),
        ({"status": "succeeded"}, "parameter_unknown", "status"),  # not a filter in PaymentIntentListParams
        ({"limit": 101}, None, "limit"),
    ]
    for params, code, param in cases:
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.payment_intents.list(params=params)  # type: ignore[arg-type]
        assert (caught.value.http_status, caught.value.code, caught.value.param) == (400, code, param)


def test_customers_list_by_email_and_pages(stripe_emu: StripeEmulator, stripe_client: StripeFactory) -> None:
    client = stripe_client()
    made = []
    for email in ["a@example.org", "b@example.org", "a@example.org", "A@example.org"]:
        made.append(client.v1.customers.create(params={"email": email}))
        stripe_emu.advance_clock(1)

    same = client.v1.customers.list(params={"email": "a@example.org"})
    first = client.v1.customers.list(params={"limit": 3})
    rest = client.v1.customers.list(params={"limit": 3, "starting_after": first.data[-1].id})

    assert [c.id for c in same.data] == [made[2].id, made[0].id]  # case-sensitive, newest first
    assert (same.url, same.has_more) == ("/v1/customers", False)
    assert ([c.id for c in first.data], first.has_more) == ([made[3].id, made[2].id, made[1].id], True)
    assert ([c.id for c in rest.data], rest.has_more) == ([made[0].id], False)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.list(params={"name": "A"})  # type: ignore[typeddict-unknown-key]
    assert caught.value.code == "parameter_unknown"


def test_a_simulated_history_lists_like_objects_within_created_bounds_and_cursors(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
):
    # Given a PaymentIntent and a history of 86,400 a day (one a second) before it
    client = stripe_client()
    made = pay(client)
    now = stripe_emu.clock.timestamp()
    assert stripe_emu.simulate_history(made.id, per_day=86_400, since=now - 3600, until=now) == 3601

    # When a bounded stretch is listed, page by page
    window = {"gte": now - 250, "lte": now - 101}
    first = client.v1.payment_intents.list(params={"created": window, "limit": 100})
    second = client.v1.payment_intents.list(
        params={"created": window, "limit": 100, "starting_after": first.data[-1].id}
    )

    # Then exactly those 150 come, newest first, shaped like PaymentIntents without metadata
    listed = [*first.data, *second.data]
    assert (first.has_more, second.has_more, len(listed)) == (True, False, 150)
    assert [pi.created for pi in listed] == list(range(now - 101, now - 251, -1))
    assert {pi.object for pi in listed} == {"payment_intent"} and all(pi.metadata.to_dict() == {} for pi in listed)
