"""SnapStart's contract for the API functions (template parameter SnapStart), as checks that return violations.

Lambda SnapStart applies only to published versions and the aliases that point at them, never to
$LATEST ("Improving startup performance with Lambda SnapStart", docs.aws.amazon.com/lambda/latest/dg/
snapstart.html), so what the donor calls must be an alias of a published version: SAM's
AutoPublishAlias, with API Gateway integrated with the alias and allowed to invoke it. The same page
lists what SnapStart does not support: provisioned concurrency, Amazon EFS, ephemeral storage above
512 MB. moto ignores SnapStart and cannot create aliases from a template: infra.deploy resolves the
first and creates the second through the Lambda API; the rest is read from the translated template.
"""

from __future__ import annotations

import json
from typing import Any

from infra.deploy import references
from tests.infra.template_contracts import Deployed, Violations

SNAPSTART_FUNCTIONS = ("ChargeFunction", "StripeWebhookFunction")
ALIAS_NAME = "live"
SNAPSTART_LIMITS = {"ProvisionedConcurrencyConfig": "provisioned concurrency", "FileSystemConfigs": "Amazon EFS"}
MAX_EPHEMERAL_STORAGE_MB = 512


def _of_type(d: Deployed, kind: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in d.resources.items() if r.get("Type") == kind}


def _alias_of(d: Deployed, function: str) -> tuple[str, dict[str, Any]] | None:
    for lid, alias in _of_type(d, "AWS::Lambda::Alias").items():
        if references(alias["Properties"].get("FunctionName")) == {function}:
            return lid, alias
    return None


def check_aliases(d: Deployed, lambda_client: Any) -> Violations:
    """Each API function has the alias "live" on a version the stack published, and that version is deleted
    when a newer one replaces it (a retained version keeps its snapshot, and its cache charge)."""
    violations: Violations = []
    for function in SNAPSTART_FUNCTIONS:
        found = _alias_of(d, function)
        if found is None:
            violations.append(f"{function}: no alias (AutoPublishAlias), so SnapStart cannot apply")
            continue
        lid, alias = found
        version_ids = references(alias["Properties"].get("FunctionVersion"))
        versions = [d.resources.get(v, {}) for v in version_ids]
        if not versions or any(v.get("Type") != "AWS::Lambda::Version" for v in versions):
            violations.append(f"{lid}: does not point at a published version of {function}")
        violations += [
            f"{lid}: version not deleted once superseded" for v in versions if v.get("DeletionPolicy") != "Delete"
        ]
        if alias["Properties"].get("Name") != ALIAS_NAME:
            violations.append(f"{lid}: named {alias['Properties'].get('Name')!r}, not {ALIAS_NAME!r}")
        if lid not in d.stack.aliases:
            violations.append(f"{lid}: not created")
            continue
        name = d.stack.functions[function].name
        created = lambda_client.get_alias(FunctionName=name, Name=ALIAS_NAME)
        if not created["FunctionVersion"].isdigit():
            violations.append(f"{lid}: points at {created['FunctionVersion']}, not a published version")
    return violations


def check_api_invokes_aliases(d: Deployed) -> Violations:
    """Every API route of these functions integrates with the alias, and API Gateway may invoke the alias
    (and only from this API), not $LATEST."""
    violations: Violations = []
    api = next(iter(_of_type(d, "AWS::ApiGateway::RestApi").values()), {})
    paths = api.get("Properties", {}).get("Body", {}).get("paths", {})
    for function in SNAPSTART_FUNCTIONS:
        found = _alias_of(d, function)
        alias = found[0] if found else f"<{function} alias>"
        for path, methods in paths.items():
            for verb, spec in methods.items():
                uri = json.dumps(spec.get("x-amazon-apigateway-integration", {}).get("uri"))
                if f"${{{function}.Arn}}" in uri or (f"${{{function}}}" in uri):
                    violations.append(f"{verb.upper()} {path}: integrated with {function} ($LATEST), not {alias}")
        permissions = [
            p["Properties"]
            for p in _of_type(d, "AWS::Lambda::Permission").values()
            if p["Properties"].get("Principal") == "apigateway.amazonaws.com"
            and references(p["Properties"].get("FunctionName")) & {function, alias}
        ]
        if not permissions:
            violations.append(f"{function}: API Gateway has no permission to invoke it")
        for permission in permissions:
            if references(permission.get("FunctionName")) != {alias}:
                violations.append(f"{function}: API Gateway is allowed to invoke {permission.get('FunctionName')}")
            if "DonationsApi" not in references(permission.get("SourceArn")):
                violations.append(f"{function}: the invoke permission is not limited to this stack's API")
    return violations


def check_snapstart(d: Deployed, expected: str) -> Violations:
    """SnapStart's ApplyOn is what the parameter says, switching it publishes a new version (a new version
    description replaces the version: AWS::Lambda::Version's Description requires replacement), and
    nothing SnapStart does not support is configured."""
    violations: Violations = []
    for function in SNAPSTART_FUNCTIONS:
        spec = d.stack.functions[function]
        if spec.snap_start != expected:
            violations.append(f"{function}: SnapStart ApplyOn {spec.snap_start}, expected {expected}")
        properties = d.resources[function]["Properties"]
        condition = _condition(properties.get("SnapStart", {}).get("ApplyOn"))
        found = _alias_of(d, function)
        versions = references(found[1]["Properties"].get("FunctionVersion")) if found else set()
        for version in versions:
            if _condition(d.resources[version]["Properties"].get("Description")) != condition or condition is None:
                violations.append(f"{version}: switching SnapStart would not publish a new version")
        violations += [
            f"{function}: {what} (SnapStart does not support it)"
            for key, what in SNAPSTART_LIMITS.items()
            if key in properties
        ]
        storage = properties.get("EphemeralStorage", {}).get("Size", MAX_EPHEMERAL_STORAGE_MB)
        if int(storage) > MAX_EPHEMERAL_STORAGE_MB:
            violations.append(f"{function}: ephemeral storage {storage} MB > {MAX_EPHEMERAL_STORAGE_MB} (SnapStart)")
    return violations


def _condition(value: Any) -> str | None:
    """The condition an ``Fn::If`` chooses on, if the value is one."""
    if isinstance(value, dict) and isinstance(value.get("Fn::If"), list):
        return str(value["Fn::If"][0])
    return None
