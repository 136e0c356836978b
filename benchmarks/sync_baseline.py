"""The synchronous baseline: the old flow, everything inside the donor's request.

Charge, then save the card (create the Customer, attach the PaymentMethod), then send the receipt,
and only then answer. It uses the same core adapters as the pipeline (``DonationStore``,
``StripePayments``, ``ReceiptMailer`` from ``donations.wiring.Wiring``), so the real boto3, Stripe
and SendGrid SDKs talk to the same moto server and emulators, and it is served behind the same kind
of HTTP front (``simulator.local.front.Front``, API Gateway proxy events).

It is deliberately lean: no Powertools idempotency record, no metrics, no follow-up messages. It
does less AWS work than the charge function, so the baseline/pipeline ratio it yields is a lower
bound of what the old flow cost the donor. Give it a table of its own (``Settings.donations_table``)
next to a running pipeline: the pipeline's webhook function and reconciler would otherwise find its
charged donations and send their receipts in the background.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from typing import Any

from pydantic import ValidationError

from donations.errors import DonationError, ServiceUnavailable, StepFailure
from donations.models import DonationRequest, DonationStatus
from donations.ports import ChargeState
from donations.settings import ChargeSettings, SendReceiptSettings, TokenizeSettings
from donations.wiring import Wiring
from simulator.local.events import LambdaContext, api_gateway_event
from simulator.local.front import Front


class SyncBaselineSettings(ChargeSettings, TokenizeSettings, SendReceiptSettings):  # type: ignore[misc]
    """The old flow did every step in one function, so it needs the three functions' variables."""

    @property
    def stripe_secret_name(self) -> str:
        # One function, one Stripe key for the charge and the card's save: the parameter the charge's
        # variable names must hold a key allowed both (benchmarks.donor_latency stores one).
        return self.stripe_charge_secret_name


class SyncBaselineHandler:
    """A Lambda-shaped handler (API Gateway REST proxy event in, proxy answer out)."""

    def __init__(self, settings: SyncBaselineSettings, wiring: Wiring | None = None) -> None:
        self.settings = settings
        self.wiring = wiring or Wiring(settings)
        self.request_model = DonationRequest.with_limits(settings.request_limits)

    def __call__(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        key = headers.get("idempotency-key")
        if not key:
            return _answer(HTTPStatus.BAD_REQUEST, {"error": {"code": "invalid_idempotency_key"}})
        try:
            request = self.request_model.model_validate_json(event.get("body") or "")
        except ValidationError:
            return _answer(HTTPStatus.BAD_REQUEST, {"error": {"code": "invalid_donation"}})
        try:
            return self._take(request, key, event["requestContext"]["requestId"])
        except DonationError as error:
            return _answer(error.status, error.body())
        except StepFailure as failure:  # the old flow failed the whole request when a later step failed
            return _answer(HTTPStatus.BAD_GATEWAY, {"error": {"code": "step_failed", "reason": failure.reason}})

    def _take(self, request: DonationRequest, key: str, correlation_id: str) -> dict[str, Any]:
        store, payments, mailer = self.wiring.store, self.wiring.payments, self.wiring.mailer
        donation = store.create_pending(
            self.wiring.identifiers.donation_id(f"sync-{key}"),
            request,
            correlation_id,
            lease_seconds=29,  # API Gateway waits 29 s at most
        )
        # 1. charge (the one round trip the pipeline keeps in the request)
        outcome = payments.charge(donation)
        if outcome.state is not ChargeState.SUCCEEDED:
            raise ServiceUnavailable(f"payment is {outcome.state.value}")
        donation = store.mark_charged(donation.donation_id, outcome.payment_intent_id, outcome.payment_method_id)
        # 2. save the card: Customer + attach
        if donation.save_card:
            store.record_card(donation.donation_id, payments.save_card(donation))
        # 3. send the receipt (claimed and marked like the consumer does)
        claim = store.claim_receipt(donation.donation_id, self.settings.receipt_claim_seconds)
        if claim.claimed and claim.donation is not None:
            message_id = mailer.send(claim.donation)
            store.mark_receipt_sent(donation.donation_id, message_id)
        return _answer(HTTPStatus.CREATED, {"donation_id": donation.donation_id, "status": DonationStatus.SUCCEEDED})


def _answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": int(status),
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body, default=str),
        "isBase64Encoded": False,
    }


class SyncBaselineServer:
    """The baseline handler behind ``simulator.local.front.Front`` on 127.0.0.1 (POST /donations)."""

    def __init__(self, handler: SyncBaselineHandler, port: int) -> None:
        self.handler = handler
        self.port = port
        self._lock = threading.Lock()  # one invocation at a time, like one Lambda execution environment
        self.front = Front(port, self._call_api, self._call_local)
        self._thread = threading.Thread(target=self.front.serve_forever, name="sync-baseline-front", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SyncBaselineServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.front.shutdown()
        self.front.server_close()
        self._thread.join(timeout=5)

    def _call_api(
        self, method: str, path: str, query: str, body: bytes | None, headers: list[tuple[str, str]]
    ) -> tuple[int, dict[str, str], str]:
        if (method, path) != ("POST", "/donations"):
            return 404, {"Content-Type": "application/json"}, '{"message":"Missing Authentication Token"}'
        event = api_gateway_event(method, path, body=body, headers=headers, query=query, resource="/donations")
        with self._lock:
            result = self.handler(event, LambdaContext("sync-baseline", 512, 30))
        return int(result["statusCode"]), dict(result.get("headers") or {}), str(result.get("body") or "")

    def _call_local(self, method: str, path: str, query: str, body: bytes, _: list[tuple[str, str]]) -> tuple[int, Any]:
        return 404, {"message": "Not Found"}
