"""SendGrid: the receipt email and the year-end statement, each built from a dynamic template.

The SDK is imported where it is used: donations.steps imports this module in the tokenize function
too, which never sends mail. The send-receipt function loads the SDK during INIT (its handler imports it).
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import single_metric

from donations import deadline
from donations.errors import PermanentStepFailure, RetryableStepFailure, classify, sendgrid_first_error
from donations.models import Donation
from donations.observability import MetricUnit, logger
from donations.pledges import pledge_of
from donations.receipt import receipt_data
from donations.settings import MailSettings
from donations.statements import Statement, statement_data

if TYPE_CHECKING:
    from python_http_client.exceptions import HTTPError
    from sendgrid import SendGridAPIClient
    from sendgrid.helpers.mail import Mail


def build_sendgrid_client(settings: MailSettings, api_key: str) -> SendGridAPIClient:
    from sendgrid import SendGridAPIClient

    if settings.sendgrid_api_host:
        return SendGridAPIClient(api_key=api_key, host=settings.sendgrid_api_host)
    return SendGridAPIClient(api_key=api_key)


def receipt_mail(donation: Donation, settings: MailSettings, *, amount_refunded: int = 0, manage_url: str = "") -> Mail:
    """The receipt; with ``amount_refunded``, the corrected receipt after that refunded sum (same template)."""
    from sendgrid.helpers.mail import CustomArg, Mail, ReplyTo

    mail = Mail(from_email=(settings.receipt_from_email, settings.org_name), to_emails=donation.email)
    mail.reply_to = ReplyTo(settings.support_email, settings.org_name)  # a donor's reply reaches support
    mail.template_id = settings.receipt_template_id
    mail.dynamic_template_data = receipt_data(
        donation, settings, amount_refunded=amount_refunded, manage_url=manage_url
    )
    mail.custom_arg = CustomArg(key="donation_id", value=donation.donation_id)
    return mail


def statement_mail(statement: Statement, settings: MailSettings) -> Mail:
    from sendgrid.helpers.mail import CustomArg, Mail, ReplyTo

    mail = Mail(from_email=(settings.receipt_from_email, settings.org_name), to_emails=statement.email)
    mail.reply_to = ReplyTo(settings.support_email, settings.org_name)
    mail.template_id = settings.statement_template_id
    mail.dynamic_template_data = statement_data(statement, settings)
    # Which statement this is, for SendGrid's activity feed and the local outbox: never the address.
    mail.custom_arg = [
        CustomArg(key="statement_year", value=str(statement.year)),
        CustomArg(key="donor_key", value=statement.donor_key),
    ]
    return mail


class ReceiptMailer:
    """``manage_link``: a pledge's signed manage link (donations.pledge_links.PledgeLinks.manage_url), for the
    receipts of monthly gifts; without it (a function that signs no links) they carry none."""

    def __init__(
        self, client: SendGridAPIClient, settings: MailSettings, manage_link: Callable[[str], str] | None = None
    ) -> None:
        self._client = client
        self._settings = settings
        self._manage_link = manage_link

    def send(self, donation: Donation) -> str:
        """Send the receipt and return SendGrid's X-Message-Id.

        Raises RetryableStepFailure (timeouts, 429, 5xx) or PermanentStepFailure (what an operator must fix:
        a refused key, an unverified sender, a request SendGrid refuses). See errors.classify.
        """
        return self._post(receipt_mail(donation, self._settings, manage_url=self._manage_url(donation)), "send_receipt")

    def send_pledge_email(self, email: str, subject: str, text: str, pledge_id: str) -> str:
        """Email a monthly donor about their pledge (donations.pledge_manage: a manage link, a renewal to
        authenticate); SendGrid's X-Message-Id. Plain text rather than a dynamic template: a link and a
        few sentences, nothing to lay out."""
        from sendgrid.helpers.mail import CustomArg, Mail, ReplyTo

        org = self._settings.org_name
        mail = Mail(
            from_email=(self._settings.receipt_from_email, org),
            to_emails=email,
            subject=subject,
            plain_text_content=text,
        )
        mail.reply_to = ReplyTo(self._settings.support_email, org)
        mail.custom_arg = CustomArg(key="pledge_id", value=pledge_id)
        return self._post(mail, "send_receipt")

    @property
    def org_name(self) -> str:
        return self._settings.org_name

    def send_refund_notice(self, donation: Donation) -> str:
        """Send the corrected receipt for the refunded sum on the record; as ``send`` otherwise."""
        mail = receipt_mail(
            donation, self._settings, amount_refunded=donation.amount_refunded, manage_url=self._manage_url(donation)
        )
        return self._post(mail, "send_receipt")

    def _manage_url(self, donation: Donation) -> str:
        """A monthly gift's pledge manage link, signed now (valid 14 days from the email), else empty."""
        pledge_id = pledge_of(donation)
        return self._manage_link(pledge_id) if pledge_id and self._manage_link is not None else ""

    def send_statement(self, statement: Statement) -> str:
        """Send a donor's year-end statement (donations.statements); the same answers and failures."""
        if not self._settings.statement_template_id:
            raise PermanentStepFailure("send_statement:no_statement_template_id")
        return self._post(statement_mail(statement, self._settings), "send_statement")

    def _post(self, mail: Mail, step: str) -> str:
        from python_http_client import exceptions as http_errors

        try:
            timeout = deadline.attempt_timeout(self._settings.provider_timeout_seconds)
        except deadline.OutOfTime as error:
            raise RetryableStepFailure(f"{step}:out_of_time") from error
        try:
            response = self._client.client.mail.send.post(request_body=mail.get(), timeout=timeout)
        except http_errors.HTTPError as error:
            verdict = classify(error)
            if verdict.credentials_refused:
                _alert_credentials_refused(verdict.reason)
            failure = RetryableStepFailure if verdict.retryable else PermanentStepFailure
            raise failure(f"{step}:{verdict.reason}{_first_error_field(error)}") from error
        except OSError as error:  # urllib's timeouts and connection resets
            raise RetryableStepFailure(f"{step}:network:{type(error).__name__}") from error
        message_id = response.headers.get("X-Message-Id")
        if not message_id:
            raise RetryableStepFailure(f"{step}:no_message_id")
        return str(message_id)


def _first_error_field(error: HTTPError) -> str:
    """A 400 names the field at fault: keep its name (never the value, it may be the email) as ":field"."""
    field = sendgrid_first_error(error).field if error.status_code == HTTPStatus.BAD_REQUEST else None
    return f":{field}" if field else ""


def _alert_credentials_refused(reason: str) -> None:
    """Count the refusal at once (the ProviderAuthFailures alarm): every receipt is parked until an operator
    rotates the key, then redrives them. Its own EMF document, so that the provider dimension does not
    change the dimensions of the invocation's other metrics."""
    with single_metric(name="ProviderAuthFailures", unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name="provider", value="sendgrid")
    logger.error("SendGrid refused our API key: rotate the secret, then redrive the DLQ", extra={"reason": reason})
