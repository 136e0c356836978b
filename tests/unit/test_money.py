"""Receipt amounts and dates (donations.money): Babel's formats, Stripe's minor units, never rounded."""

import re
from decimal import Decimal

import pytest
from babel.core import UnknownLocaleError
from babel.numbers import list_currencies

from donations.currencies import currency
from donations.money import format_day, format_money, load_locale

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("amount", "code", "locale", "shown"),
    [
        (2500, "usd", "en_US", "$25.00"),
        (250000, "eur", "en_US", "€2,500.00"),
        (250000, "eur", "de_DE", "2.500,00\xa0€"),
        (5000, "jpy", "en_US", "¥5,000"),  # zero-decimal: 5000 is ¥5,000
        (100000, "isk", "en_US", "ISK1,000"),  # two decimals in Stripe's API, whole krónur: 100000 is 1,000 kr
        (100000, "isk", "is_IS", "1.000\xa0kr."),
        (1500, "bhd", "en_US", "BHD1.500"),  # three decimals
        (1999, "gbp", "en_GB", "£19.99"),
        (123400, "huf", "en_US", "HUF1,234"),  # CLDR shows forints without decimals...
        (123456, "huf", "en_US", "HUF1,234.56"),  # ...unless Stripe charged fillér: never rounded away
    ],
)
def test_amounts_show_the_locales_symbol_and_the_currencys_decimals(amount, code, locale, shown):
    assert format_money(amount, code, locale) == shown


@pytest.mark.parametrize("code", sorted(c.lower() for c in list_currencies()))
def test_every_currency_shows_exactly_the_amount_stripe_charged(code):
    # Whatever Babel's decimals for the currency, the number shown is the amount in Stripe's major units.
    amount = 12_345_670 if currency(code).step == 10 else 12_345_600 if currency(code).step == 100 else 12_345_678
    shown = format_money(amount, code, "en_US")
    number = re.search(r"[\d,]+(\.\d+)?", shown)
    assert number is not None, shown
    assert Decimal(number[0].replace(",", "")) == Decimal(amount).scaleb(-currency(code).decimals), shown


def test_the_date_is_the_calendar_day_in_the_charitys_time_zone():
    # 04:00 UTC on 1 January is still 31 December in New York: the donation counts for the earlier tax year.
    assert format_day("2027-01-01T04:00:00Z", "en_US", "UTC") == "January 1, 2027"
    assert format_day("2027-01-01T04:00:00Z", "en_US", "America/New_York") == "December 31, 2026"
    assert format_day("2027-01-01T04:00:00Z", "de_DE", "Europe/Berlin") == "1. Januar 2027"


def test_an_unknown_locale_or_time_zone_fails_when_loaded():
    load_locale("en_US", "America/New_York")
    with pytest.raises(UnknownLocaleError):
        load_locale("xx_XX", "UTC")
    with pytest.raises(LookupError):  # zoneinfo.ZoneInfoNotFoundError is a KeyError
        load_locale("en_US", "Mars/Olympus_Mons")
