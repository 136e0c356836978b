"""Donor lookup: from an email address, or a card's last 4 digits and a day, to the donations; and from a
donation to what the donor was told, what was charged, saved and sent, and when.

Addresses are shown masked (``a***@e***.org``): enough to confirm with a caller, not to copy out.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from donations.models import Donation, DonationStatus, StepStatus
from donations.money import with_code
from donations.pledges import pledge_of
from donations_ops import operator_store
from donations_ops.aws import Clients
from donations_ops.pledges_cli import PLEDGES_TABLE, pledge_store, pledge_view
from donations_ops.queues import redact
from donations_ops.stack_resources import OpsError, Stack

# What the API answered the donor for each outcome (README, "The API").
_TOLD = {
    DonationStatus.SUCCEEDED: "201: thank you, your donation succeeded",
    DonationStatus.REQUIRES_ACTION: "202: confirm the payment with your bank (3-D Secure); not finished",
    DonationStatus.DECLINED: "402: your card was declined",
    DonationStatus.FAILED: "the payment failed (3-D Secure failed, or it never reached Stripe)",
    DonationStatus.CANCELED: "the payment was canceled (3-D Secure never finished)",
    DonationStatus.PENDING: "no final answer yet (503 'try again', or the request is still charging)",
}


def find(clients: Clients, stack: Stack, *, email: str | None, last4: str | None, day: date | None) -> list[Donation]:
    table = operator_store.donations_table(clients, stack)
    if email:
        return operator_store.by_email(table, email, operator_store.identifiers(clients, stack))
    if last4 and day:
        if not (len(last4) == 4 and last4.isdigit()):
            raise OpsError("--last4 takes the card's last 4 digits")
        return operator_store.by_card(table, last4, day)
    raise OpsError("give --email, or --last4 with --date")


NOT_DUE = "not due"
"""The receipt of a donation that was not charged (declined, canceled, still pending): none is sent."""


def receipt_state(donation: Donation) -> str:
    """The receipt step's status, or "not due" when the donation was not charged (its step never starts)."""
    return donation.receipt_status.value if donation.status is DonationStatus.SUCCEEDED else NOT_DUE


def summary_row(donation: Donation) -> dict[str, Any]:
    """One line per donation in a lookup."""
    return {
        "donation_id": donation.donation_id,
        "created_at": donation.created_at,
        "status": donation.status.value,
        "amount": with_code(donation.amount, donation.currency),
        "donor": donation.email_masked,
        "card": f"{donation.card_brand or 'card'} ••{donation.card_last4}" if donation.card_last4 else None,
        "receipt": receipt_state(donation),
        "receipt_sent_at": donation.receipt_sent_at,
    }


def story(clients: Clients, stack: Stack, donation_id: str) -> dict[str, Any]:
    """What happened to one donation, in the order it happened."""
    donation = operator_store.require(operator_store.donations_table(clients, stack), donation_id)
    told = _TOLD[donation.status]
    if donation.status is DonationStatus.DECLINED and donation.decline_code:
        told += f" ({donation.decline_code})"
    return {
        "donation_id": donation.donation_id,
        "created_at": donation.created_at,
        "donor": {"name": donation.name, "email": donation.email_masked},
        "told": told,
        "page_shows": donation.public_view().model_dump(mode="json"),
        "charged": _charged(donation),
        "card": _card(donation),
        "receipt": _receipt(donation),
        "trouble": _trouble(donation),
        "pledge": _pledge(clients, stack, donation),
        "operator_log": [{k: redact(v) or "" for k, v in entry.items()} for entry in donation.operator_log],
    }


def _charged(donation: Donation) -> dict[str, Any]:
    charged = donation.status is DonationStatus.SUCCEEDED
    return {
        "amount": with_code(donation.amount, donation.currency),
        "charged": charged,
        "at": donation.charged_at,
        "payment_intent": donation.payment_intent_id,
        "refunded": with_code(donation.amount_refunded, donation.currency) if donation.amount_refunded else None,
        "refunded_at": donation.refunded_at,
        "refund_notice_sent_at": donation.refund_notice_sent_at,
        "refund_failed": (
            f"{with_code(donation.amount_refund_failed, donation.currency)} ({donation.refund_failure_reason}, "
            f"{donation.refund_failed_at}): a gift again; return it to the donor another way"
            if donation.amount_refund_failed
            else None
        ),
        "net": with_code(donation.net_amount, donation.currency) if charged else None,
        "dispute": donation.dispute_reason and f"{donation.dispute_reason} ({donation.dispute_status})",
        "evidence_due_by": donation.dispute_evidence_due_by if donation.dispute_closed_at is None else None,
        "dispute_fee": (
            with_code(donation.dispute_fee, donation.dispute_fee_currency or donation.currency)
            if donation.dispute_fee
            else None
        ),
    }


def _card(donation: Donation) -> dict[str, Any]:
    return {
        "asked_to_save": donation.save_card,
        "status": donation.card_status.value,
        "card": f"{donation.card_brand or 'card'} ••{donation.card_last4}" if donation.card_last4 else None,
        "customer": donation.customer_id,
        "customer_deleted_at": donation.customer_deleted_at,  # an erased donor's (donations.customer_erasure)
    }


def _receipt(donation: Donation) -> dict[str, Any]:
    sent = donation.receipt_status is StepStatus.DONE
    return {
        "status": receipt_state(donation),
        "sent_at": donation.receipt_sent_at,
        "to": donation.email_masked,
        "provider_message_id": donation.receipt_message_id if sent else None,
    }


def _pledge(clients: Clients, stack: Stack, donation: Donation) -> dict[str, Any] | None:
    """The monthly pledge the donation belongs to: one of its renewals (metadata ``pledge_id``), or the first
    gift of a monthly pledge (its id derives from the donation's); None for a one-time gift."""
    pledge_id = pledge_of(donation)
    if pledge_id is None or PLEDGES_TABLE not in stack.tables:
        return None
    pledge = pledge_store(clients, stack).get(pledge_id)
    if pledge is None:
        return {"pledge_id": pledge_id, "state": "not made (yet): its card is not saved"}
    view = pledge_view(pledge)
    card = f"{pledge.card_brand or 'card'} ••{pledge.card_last4}" if pledge.card_last4 else None
    return {**view, "amount": with_code(pledge.amount, pledge.currency), "card": card}


def _trouble(donation: Donation) -> dict[str, Any] | None:
    step = donation.attention_step or donation.failed_step
    if step is None:
        return None
    return {
        "step": step.value,
        "state": donation.attention.value if donation.attention else "failed",
        "reason": redact(donation.last_error or donation.failure_reason),
        "kind": donation.failure_kind.value if donation.failure_kind else None,
        "since": donation.attention_since,
        "attempts": donation.attempts,
        "redrives": donation.redrives,
    }
