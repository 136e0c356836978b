"""Currency facts the PaymentIntent endpoints enforce, from docs.stripe.com/currencies.

- Presentment currencies: the lowercase ISO codes a card payment can use (a subset of Stripe's list:
  the ones a donation site plausibly offers).
- Zero-decimal currencies (#zero-decimal): ``amount`` counts whole units (100 JPY is ``100``).
  HUF and ISK are *not* zero-decimal in the API (#special-cases: charge HUF in two decimals; ISK
  amounts keep two decimals for backwards compatibility).
- Minimum charge amounts (#minimum-and-maximum-charge-amounts), in the smallest unit; below them
  Stripe answers ``amount_too_small``. The amount has at most eight digits.
"""

from __future__ import annotations

SUPPORTED_CURRENCIES = frozenset(
    {
        "usd", "eur", "gbp", "cad", "aud", "nzd", "chf", "sek", "nok", "dkk", "pln", "czk",
        "huf", "jpy", "sgd", "hkd", "mxn", "brl", "inr", "ils", "zar", "aed", "ron", "bgn", "isk",
    }
)  # fmt: skip
ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "vnd", "vuv", "xaf", "xof", "xpf"}
)
MINIMUM_AMOUNT = {
    "usd": 50, "aed": 200, "aud": 50, "bgn": 100, "brl": 50, "cad": 50, "chf": 50, "czk": 1500,
    "dkk": 250, "eur": 50, "gbp": 30, "hkd": 400, "huf": 17500, "inr": 50, "jpy": 50, "mxn": 1000,
    "nok": 300, "nzd": 50, "pln": 200, "ron": 200, "sek": 300, "sgd": 50,
}  # fmt: skip
MAXIMUM_AMOUNT = 99_999_999


def shown_amount(amount: int, currency: str) -> str:
    """An amount in major units, as Stripe's messages show it ("0.50 usd", "50 jpy")."""
    return str(amount) if currency in ZERO_DECIMAL else f"{amount / 100:.2f}"
