"""What the receipt says: the dynamic template data sent with it, one value per variable the template reads.

The template (src/donations_ops/receipt_template/, installed with ``donations-ops receipts
install-template``) reads exactly these keys, and a test holds the two together
(tests/integration/test_receipt_template.py). Every key is always sent, as a string; an empty one is
left out of the receipt by the template's ``{{#if}}``. README "Receipts" lists them.

The content follows the IRS's "Charitable Contributions - Written Acknowledgments" page (irs.gov; IRS
Publication 1771): the organisation's name, the amount, the date (which a donor's record of a cash gift
must show, Publication 526), and whether goods or services were given in exchange. Other countries'
rules differ: the statement, tax id and address are the charity's to set.
"""

from __future__ import annotations

from donations import money
from donations.models import Donation
from donations.settings import MailSettings


def receipt_data(
    donation: Donation, settings: MailSettings, *, amount_refunded: int = 0, manage_url: str = ""
) -> dict[str, str]:
    """The receipt's data; with ``amount_refunded``, the corrected receipt after a refund of that sum. A monthly
    gift's receipt carries ``manage_url``, its pledge's signed manage link (donations.pledge_links)."""
    locale = settings.receipt_locale
    return {
        "donor_name": donation.name,
        "amount_display": money.format_money(donation.amount, donation.currency, locale),
        "date": money.format_day(donation.created_at, locale, settings.receipt_time_zone),
        "receipt_number": donation.donation_id,
        "org_name": settings.org_name,
        "org_address": settings.org_address,
        "org_tax_id": settings.org_tax_id,
        "goods_or_services_statement": settings.goods_or_services_statement,
        "support_email": settings.support_email,
        # The card charged: the charge records its last 4 digits from Stripe's answer (expand latest_charge),
        # so the receipt names it whether or not the card is saved, and before the tokenize step ran.
        "card_last4": donation.card_last4 or "",
        "manage_url": manage_url,
        **_refund_data(donation, amount_refunded, locale),
    }


def _refund_data(donation: Donation, amount_refunded: int, locale: str) -> dict[str, str]:
    """A corrected receipt states what was refunded and what remains a gift; when nothing remains it is a
    refund notice, and no longer a receipt for a gift (the template says so)."""
    refunded = min(amount_refunded, donation.amount)
    remaining = donation.amount - refunded
    shown = refunded > 0
    return {
        "refund_notice": "yes" if shown else "",
        "amount_refunded_display": money.format_money(refunded, donation.currency, locale) if shown else "",
        "amount_remaining_display": money.format_money(remaining, donation.currency, locale) if shown else "",
        "fully_refunded": "yes" if shown and remaining == 0 else "",
    }
