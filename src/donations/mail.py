"""SendGrid: the receipt email, built from a dynamic template.

The SDK is imported where it is used: donations.steps imports this module in the tokenize function
too, which never sends mail. The send-receipt function loads the SDK during INIT (its handler imports it).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from donations import currencies, deadline
from donations.errors import PermanentStepFailure, RetryableStepFailure, classify
from donations.models import Donation
from donations.settings import Settings

if TYPE_CHECKING:
    from python_http_client.exceptions import HTTPError
    from sendgrid import SendGridAPIClient
    from sendgrid.helpers.mail import Mail


def build_sendgrid_client(settings: Settings, api_key: str) -> SendGridAPIClient:
    from sendgrid import SendGridAPIClient

    if settings.sendgrid_api_host:
        return SendGridAPIClient(api_key=api_key, host=settings.sendgrid_api_host)
    return SendGridAPIClient(api_key=api_key)


def format_amount(amount: int, currency: str) -> str:
    """``2500, "usd"`` → ``"25.00 USD"``; minor units as Stripe counts them (donations.currencies)."""
    unit = currencies.currency(currency)
    # Where only whole units can be charged (isk), show whole units.
    shown = 0 if unit.step == 10**unit.decimals else unit.decimals
    major = Decimal(amount).scaleb(-unit.decimals)
    return f"{major:,.{shown}f} {currency.upper()}"


def receipt_mail(donation: Donation, settings: Settings) -> Mail:
    from sendgrid.helpers.mail import CustomArg, Mail

    mail = Mail(from_email=(settings.receipt_from_email, settings.org_name), to_emails=donation.email)
    mail.template_id = settings.receipt_template_id
    mail.dynamic_template_data = {
        "donor_name": donation.name,
        "amount": donation.amount,
        "amount_display": format_amount(donation.amount, donation.currency),
        "currency": donation.currency.upper(),
        "date": datetime.fromisoformat(donation.created_at.replace("Z", "+00:00")).date().isoformat(),
        "donation_id": donation.donation_id,
        "org_name": settings.org_name,
        "org_address": settings.org_address,
    }
    mail.custom_arg = CustomArg(key="donation_id", value=donation.donation_id)
    return mail


class ReceiptMailer:
    def __init__(self, client: SendGridAPIClient, settings: Settings) -> None:
        self._client = client
        self._settings = settings

    def send(self, donation: Donation) -> str:
        """Send the receipt and return SendGrid's X-Message-Id.

        Raises RetryableStepFailure (timeouts, 429, 5xx) or PermanentStepFailure (400: bad address or template).
        """
        from python_http_client import exceptions as http_errors

        mail = receipt_mail(donation, self._settings)
        try:
            timeout = deadline.attempt_timeout(self._settings.provider_timeout_seconds)
        except deadline.OutOfTime as error:
            raise RetryableStepFailure("send_receipt:out_of_time") from error
        try:
            response = self._client.client.mail.send.post(request_body=mail.get(), timeout=timeout)
        except http_errors.HTTPError as error:
            verdict = classify(error)
            failure = RetryableStepFailure if verdict.retryable else PermanentStepFailure
            raise failure(f"send_receipt:{verdict.reason}:{_first_error_field(error)}") from error
        except OSError as error:  # urllib's timeouts and connection resets
            raise RetryableStepFailure(f"send_receipt:network:{type(error).__name__}") from error
        message_id = response.headers.get("X-Message-Id")
        if not message_id:
            raise RetryableStepFailure("send_receipt:no_message_id")
        return str(message_id)


def _first_error_field(error: HTTPError) -> str:
    """SendGrid's error body names the field at fault; keep the name (never the value, it may be the email)."""
    try:
        errors = error.to_dict.get("errors") or []
    except (ValueError, AttributeError):
        return "unknown"
    field = errors[0].get("field") if errors else None
    return str(field or "none")
