"""Amounts and dates as a donor reads them, formatted by Babel (CLDR) for the receipt's locale.

Minor units come from one place, :mod:`donations.currencies` (Stripe's, not ISO 4217's): the amount is
converted to major units once, here, and Babel shows it with the locale's symbol, separators and the
currency's usual number of decimals (CLDR's: none for JPY or ISK, two for USD). Where Stripe charged a
fraction those usual decimals would hide (CLDR shows HUF without decimals, Stripe charges fillér),
Stripe's decimals are shown instead: a receipt never rounds the amount.

Babel is imported on first use: donations.mail imports this module in the tokenize function too,
which never formats money. The send-receipt function loads it during INIT (:func:`load_locale`).
"""

from __future__ import annotations

import copy
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from donations import currencies

if TYPE_CHECKING:
    from babel import Locale
    from babel.numbers import NumberPattern


def load_locale(locale: str, time_zone: str) -> None:
    """Load the locale's data and the time zone now (INIT), failing on a name Babel or zoneinfo does not know."""
    format_money(100, "usd", locale)
    format_day("2026-01-01T00:00:00Z", locale, time_zone)


def format_money(amount: int, currency: str, locale: str) -> str:
    """``2500, "usd", "en_US"`` → ``"$25.00"``; ``5000, "jpy"`` → ``"¥5,000"``; ``100000, "isk"`` → ``"ISK1,000"``."""
    from babel.numbers import format_currency, get_currency_precision

    unit = currencies.currency(currency)
    major = Decimal(amount).scaleb(-unit.decimals)
    code = currency.upper()
    usual = get_currency_precision(code)
    digits = usual if major == round(major, usual) else unit.decimals
    return format_currency(major, code, format=_pattern(locale, digits), locale=locale, currency_digits=False)


def with_code(amount: int, currency: str) -> str:
    """``2500, "usd"`` → ``"25.00 USD"``: for operators, who read amounts in several currencies side by side."""
    return f"{currencies.currency(currency).major_units(amount)} {currency.upper()}"


def format_day(timestamp: str, locale: str, time_zone: str) -> str:
    """The calendar day of an ISO 8601 UTC timestamp in ``time_zone``, in the locale's long form
    (``"2026-11-25T04:00:00Z"``, ``"en_US"``, ``"America/New_York"`` → ``"November 24, 2026"``)."""
    from babel.dates import format_date

    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    day: date = moment.astimezone(ZoneInfo(time_zone)).date()
    return format_date(day, format="long", locale=locale)


def format_calendar_day(day: str, locale: str) -> str:
    """A calendar day (``YYYY-MM-DD``, no time of day: a pledge's charge day) in the locale's long form."""
    from babel.dates import format_date

    return format_date(date.fromisoformat(day), format="long", locale=locale)


@cache
def _pattern(locale: str, digits: int) -> NumberPattern:
    """The locale's standard currency pattern, showing exactly ``digits`` decimals."""
    pattern: NumberPattern = copy.copy(_locale(locale).currency_formats["standard"])
    pattern.frac_prec = (digits, digits)
    return pattern


@cache
def _locale(name: str) -> Locale:
    from babel import Locale

    return Locale.parse(name)
