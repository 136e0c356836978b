"""How Stripe's API counts money, per currency: minor units, minimum charges and amount rules.

One table, the only source of these facts in the product: the charge validates against it (a donor
gets a clear 400 before anything reaches Stripe) and the receipt formats amounts from it.

Source: Stripe, "Supported currencies" (https://docs.stripe.com/currencies), sections
"Zero-decimal currencies", "Three-decimal currencies", "Special cases" and "Minimum and maximum
charge amounts", and Stripe support's note on ISK ("an ISK amount of 100 will continue to represent
1 króna"). Stripe's minor units are not always ISO 4217's: ISK is zero-decimal in ISO 4217 but
two-decimal in Stripe's API, with whole krónur only.
"""

from __future__ import annotations

from dataclasses import dataclass

# The amount value supports up to eight digits (stripe/params/_payment_intent_create_params.py, `amount`).
STRIPE_MAX_AMOUNT = 99_999_999

_ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)
# Three-decimal currencies: the last digit must be 0 (amounts are multiples of 10).
_THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
# Two-decimal in the API, but only whole units may be charged (the decimal part is always 00).
_WHOLE_UNITS_ONLY = frozenset({"isk"})

# Stripe's minimum charge per presentment currency, in the API's minor units ("Minimum and maximum
# charge amounts"). Other currencies: the equivalent of USD 0.50, which only Stripe can tell
# (it answers amount_too_small, which the charge turns into a 400).
_MINIMUM_CHARGE = {
    "usd": 50,
    "aed": 200,
    "aud": 50,
    "bgn": 100,
    "brl": 50,
    "cad": 50,
    "chf": 50,
    "czk": 1500,
    "dkk": 250,
    "eur": 50,
    "gbp": 30,
    "hkd": 400,
    "huf": 17500,
    "inr": 50,
    "jpy": 50,
    "mxn": 1000,
    "myr": 200,
    "nok": 300,
    "nzd": 50,
    "pln": 200,
    "ron": 200,
    "sek": 300,
    "sgd": 50,
    "thb": 1000,
}


@dataclass(frozen=True)
class Currency:
    code: str
    decimals: int
    """Digits after the decimal point in Stripe's API amounts (2 for usd and for isk, 0 for jpy)."""
    minimum: int | None
    """Stripe's smallest charge in minor units, where Stripe publishes one."""
    step: int = 1
    """Amounts must be a multiple of this (10 for three-decimal currencies, 100 for isk)."""

    def major_units(self, amount: int) -> str:
        """The amount as a plain decimal string in major units (``2500`` usd → ``"25.00"``)."""
        if self.decimals == 0:
            return str(amount)
        whole, fraction = divmod(abs(amount), 10**self.decimals)
        return f"{'-' if amount < 0 else ''}{whole}.{fraction:0{self.decimals}d}"


def currency(code: str) -> Currency:
    code = code.lower()
    if code in _ZERO_DECIMAL:
        decimals, step = 0, 1
    elif code in _THREE_DECIMAL:
        decimals, step = 3, 10
    elif code in _WHOLE_UNITS_ONLY:
        decimals, step = 2, 100
    else:
        decimals, step = 2, 1
    return Currency(code, decimals, _MINIMUM_CHARGE.get(code), step)


def amount_problem(amount: int, code: str, *, floor: int, ceiling: int) -> str | None:
    """Why Stripe (or our own limits, ``floor`` and ``ceiling`` in minor units) would refuse this amount.

    None when it is acceptable. The message speaks to a donor, in the currency's major units.
    """
    unit = currency(code)
    smallest = max(floor, unit.minimum or 0)
    largest = min(ceiling, STRIPE_MAX_AMOUNT)
    if not smallest <= amount <= largest:
        low, high = unit.major_units(smallest), unit.major_units(largest)
        return f"The amount must be between {low} and {high} {code.upper()}."
    if amount % unit.step:
        return f"{code.upper()} amounts must be whole multiples of {unit.major_units(unit.step)} {code.upper()}."
    return None
