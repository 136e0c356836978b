"""What IAM would refuse the real handlers, seen in moto (which enforces no IAM).

Each function's DynamoDB requests on the Donations table (and the Stripe webhook's on the Pledges table,
the one role whose Pledges writes are held to named attributes) are watched through its own boto3 client
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
from tests.support.role_table import DONATION_ATTRIBUTES, PLEDGE_ATTRIBUTES, ROLE_TABLE

WATCHED = ("TokenizeFunction", "SendReceiptFunction", "ReconcilerFunction", "StripeWebhookFunction", "NotifierFunction")
TABLE = "DonationsTable"
PLEDGES = "PledgesTable"


class RoleGuard:
    def __init__(self, pipeline: Pipeline) -> None:
        self.refused: list[str] = []
        self._tables = {pipeline.stack.tables[TABLE]: TABLE, pipeline.stack.tables[PLEDGES]: PLEDGES}
        for function in WATCHED:
            wiring = pipeline.handler(function).wiring()
            clients = [wiring.table.meta.client]
            if f"{function}Role" in PLEDGE_ATTRIBUTES:
                clients.append(wiring.pledges.table.meta.client)
            for client in clients:
                client.meta.events.register("before-call.dynamodb", self._watcher(f"{function}Role"))

    def take(self) -> list[str]:
        """What the roles would have refused since the last call."""
        refused, self.refused = self.refused, []
        return refused

    def _watcher(self, role: str) -> Any:
        def watch(model: Any, params: dict[str, Any], **_: Any) -> None:
            request = json.loads(params.get("body") or b"{}")
            table = self._tables.get(request.get("TableName"))
            if table is not None:
                self.refused += refusals(role, model.name, request, table)

        return watch


def refusals(role: str, operation: str, request: dict[str, Any], table: str = TABLE) -> list[str]:
    """Why IAM would refuse this request of ``role`` on ``table`` (per the role table)."""
    resource = f"{table}/index/{request['IndexName']}" if "IndexName" in request else table
    if (f"dynamodb:{operation}", resource) not in ROLE_TABLE[role]:
        return [f"{role}: dynamodb:{operation} on {resource}"]
    allowed = DONATION_ATTRIBUTES[role] if table == TABLE else PLEDGE_ATTRIBUTES.get(role)
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
