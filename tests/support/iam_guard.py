"""What IAM would refuse the real handlers, seen in moto (which enforces no IAM).

Each function's DynamoDB requests on the Donations table are watched through its own boto3 client
(botocore's ``before-call`` event): the operation, the index a Query reads and the attributes an
UpdateItem names (its key, what it sets or removes, and what its condition reads: IAM's
``dynamodb:Attributes`` counts them all) are held to the role table (tests/support/role_table.py).
The ``world`` fixture asserts after every test that nothing was sent that the template's roles
would refuse, so every integration test is also a test of the roles.
"""

from __future__ import annotations

import json
from typing import Any

from simulator.local.pipeline import Pipeline
from tests.support.role_table import DONATION_ATTRIBUTES, ROLE_TABLE

WATCHED = ("TokenizeFunction", "SendReceiptFunction", "ReconcilerFunction", "StripeWebhookFunction", "NotifierFunction")
TABLE = "DonationsTable"


class RoleGuard:
    def __init__(self, pipeline: Pipeline) -> None:
        self.refused: list[str] = []
        self._table_name = pipeline.stack.tables[TABLE]
        for function in WATCHED:
            client = pipeline.handler(function).wiring().table.meta.client
            client.meta.events.register("before-call.dynamodb", self._watcher(f"{function}Role"))

    def take(self) -> list[str]:
        """What the roles would have refused since the last call."""
        refused, self.refused = self.refused, []
        return refused

    def _watcher(self, role: str) -> Any:
        def watch(model: Any, params: dict[str, Any], **_: Any) -> None:
            request = json.loads(params.get("body") or b"{}")
            if request.get("TableName") == self._table_name:
                self.refused += refusals(role, model.name, request)

        return watch


def refusals(role: str, operation: str, request: dict[str, Any]) -> list[str]:
    """Why IAM would refuse this request of ``role`` on the Donations table (per the role table)."""
    resource = f"{TABLE}/index/{request['IndexName']}" if "IndexName" in request else TABLE
    if (f"dynamodb:{operation}", resource) not in ROLE_TABLE[role]:
        return [f"{role}: dynamodb:{operation} on {resource}"]
    allowed = DONATION_ATTRIBUTES[role]
    if operation != "UpdateItem" or allowed is None:
        return []
    named = set(request.get("Key", {})) | set(request.get("ExpressionAttributeNames", {}).values())
    outside = sorted(named - allowed)
    return [f"{role}: UpdateItem naming {outside}"] if outside else []


_GUARDS: dict[int, RoleGuard] = {}


def role_guard(pipeline: Pipeline) -> RoleGuard:
    """The pipeline's guard (one per pipeline: its hooks stay registered on the handlers' clients)."""
    if id(pipeline) not in _GUARDS:
        _GUARDS[id(pipeline)] = RoleGuard(pipeline)
    return _GUARDS[id(pipeline)]
