"""Every function role may do exactly what this table says: a role that gains an action, a resource, an
index or an attribute it may write fails here (docs/security.md, "Roles").

moto does not enforce IAM, so the functions running under moto prove nothing about their roles: this
table is the guard. It is written out by hand from what the code calls (donations.store,
donations.step_failures, the handlers), not derived from the template it checks.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from infra.deploy import Template
from tests.support.role_table import DONATION_ATTRIBUTES, PLEDGE_ATTRIBUTES, ROLE_TABLE, Grant

pytestmark = pytest.mark.infra

DONOR_DATA = {"email", "email_masked", "name", "amount", "currency", "donor_key", "metadata"}


def _resource_name(value: Any) -> str:
    """How the table names a resource: its logical id, ``X/index/NAME``, ``parameter:Param`` or ``*``."""
    if value == "*":
        return "*"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return str(target[0] if isinstance(target, list) else target.split(".")[0])
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = str(value["Fn::Sub"])
        if found := re.fullmatch(r"\$\{(\w+)\.Arn\}/index/(.+)", text):
            return f"{found[1]}/index/{found[2]}"
        if found := re.fullmatch(r".*:parameter\$\{(\w+)\}", text):
            return f"parameter:{found[1]}"
    return f"<unrecognized {value!r}>"


def _statements(template: Template, role: str) -> list[dict[str, Any]]:
    resources = template["Resources"]
    documents = [p["PolicyDocument"] for p in resources[role]["Properties"].get("Policies", [])]
    documents += [
        r["Properties"]["PolicyDocument"]
        for r in resources.values()
        if r["Type"] == "AWS::IAM::Policy" and {"Ref": role} in r["Properties"].get("Roles", [])
    ]
    return [st for document in documents for st in document["Statement"]]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def granted(template: Template, role: str) -> set[Grant]:
    return {
        (str(action), _resource_name(resource))
        for st in _statements(template, role)
        if st["Effect"] == "Allow"
        for action in _as_list(st["Action"])
        for resource in _as_list(st["Resource"])
    }


def writable_attributes(template: Template, role: str, table: str = "DonationsTable") -> set[str] | None:
    """The table's attributes the role's UpdateItem may name; None if one of its statements does not say."""
    allowed: set[str] = set()
    for st in _statements(template, role):
        if "dynamodb:UpdateItem" in _as_list(st["Action"]) and table in map(_resource_name, _as_list(st["Resource"])):
            names = st.get("Condition", {}).get("ForAllValues:StringEquals", {}).get("dynamodb:Attributes")
            if names is None:
                return None
            allowed |= set(names)
    return allowed


def role_table_violations(template: Template) -> list[str]:
    roles = {
        r["Properties"]["Role"]["Fn::GetAtt"][0]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Serverless::Function"
    }
    violations = [f"{role}: a function role the table does not know" for role in roles - ROLE_TABLE.keys()]
    for role in sorted(roles & ROLE_TABLE.keys()):
        found = granted(template, role)
        violations += [f"{role} gained {action} on {resource}" for action, resource in sorted(found - ROLE_TABLE[role])]
        violations += [f"{role} lost {action} on {resource}" for action, resource in sorted(ROLE_TABLE[role] - found)]
        attributes, expected = writable_attributes(template, role), DONATION_ATTRIBUTES[role]
        if attributes != expected:
            gained = "every attribute" if attributes is None else sorted(attributes - (expected or set()))
            violations.append(f"{role}: may UpdateItem {gained}, the table says {sorted(expected or [])}")
        pledges, expected_pledges = writable_attributes(template, role, "PledgesTable"), PLEDGE_ATTRIBUTES.get(role)
        if pledges != expected_pledges and ("dynamodb:UpdateItem", "PledgesTable") in found:
            violations.append(f"{role}: may UpdateItem on PledgesTable {pledges}, the table says {expected_pledges}")
    return violations


def test_every_role_may_do_exactly_what_the_table_says(sam_template: Template) -> None:
    assert role_table_violations(sam_template) == []


def test_no_consumer_may_rewrite_donor_data_or_query_every_index() -> None:
    # The table itself keeps the finding closed: only the functions that create donations (the charge, and
    # the renewals, each month's donation of a pledge) write donor data, and every Query names one index.
    creators = {role for role, grants in ROLE_TABLE.items() if ("dynamodb:PutItem", "DonationsTable") in grants}
    assert creators == {"ChargeFunctionRole", "RenewFunctionRole"}
    for role, attributes in DONATION_ATTRIBUTES.items():
        assert role in creators or (attributes is not None and not attributes & DONOR_DATA), role
    queries = [resource for grants in ROLE_TABLE.values() for action, resource in grants if action == "dynamodb:Query"]
    assert queries and all("/index/" in r and not r.endswith("*") for r in queries)


def _statement(role: str, sid: str, template: Template) -> dict[str, Any]:
    [found] = [st for st in _statements(template, role) if st.get("Sid") == sid]
    return found


def test_a_role_that_gains_an_action_fails_the_table(sam_template: Template) -> None:
    # Given the tokenize role allowed PutItem as well (UpdateItem can already create; PutItem overwrites)
    grown = copy.deepcopy(sam_template)
    _statement("TokenizeFunctionRole", "DonationsRead", grown)["Action"] = ["dynamodb:GetItem", "dynamodb:PutItem"]

    # Then the table test names it
    assert role_table_violations(grown) == ["TokenizeFunctionRole gained dynamodb:PutItem on DonationsTable"]


def test_a_consumer_that_may_write_the_donors_email_fails_the_table(sam_template: Template) -> None:
    # Given the receipt role allowed to update the donor's email
    grown = copy.deepcopy(sam_template)
    update = _statement("SendReceiptFunctionRole", "DonationsUpdateReceipt", grown)
    update["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"].append("email")

    # Then the table test names the attribute
    [violation] = role_table_violations(grown)
    assert violation.startswith("SendReceiptFunctionRole: may UpdateItem ['email']")


def test_a_role_that_may_query_every_index_fails_the_table(sam_template: Template) -> None:
    # Given the notifier allowed every index of the table again (index/*)
    grown = copy.deepcopy(sam_template)
    _statement("NotifierFunctionRole", "SummarizeTrouble", grown)["Resource"] = {
        "Fn::Sub": "${DonationsTable.Arn}/index/*"
    }

    # Then the table test names it
    assert role_table_violations(grown) == [
        "NotifierFunctionRole gained dynamodb:Query on DonationsTable/index/*",
        "NotifierFunctionRole lost dynamodb:Query on DonationsTable/index/attention-index",
    ]


def test_the_handlers_guard_names_what_a_role_would_be_refused() -> None:
    from tests.support.iam_guard import refusals

    # Given requests as the handlers send them (what tests/support/iam_guard.py sees in every integration test)
    card = {
        "Key": {"donation_id": {"S": "don_x"}},
        "ExpressionAttributeNames": {"#0": "card_status", "#1": "updated_at"},
    }
    email = {**card, "ExpressionAttributeNames": {"#0": "email"}}

    # Then only what the table does not allow is named
    assert refusals("TokenizeFunctionRole", "UpdateItem", card) == []
    assert refusals("TokenizeFunctionRole", "UpdateItem", email) == [
        "TokenizeFunctionRole: UpdateItem naming ['email']"
    ]
    assert refusals("TokenizeFunctionRole", "PutItem", card) == [
        "TokenizeFunctionRole: dynamodb:PutItem on DonationsTable"
    ]
    assert refusals("NotifierFunctionRole", "Query", {"IndexName": "attention-index"}) == []
    assert refusals("NotifierFunctionRole", "Query", {"IndexName": "donor-index"}) == [
        "NotifierFunctionRole: dynamodb:Query on DonationsTable/index/donor-index"
    ]
