"""What API Gateway does around the functions, read from the REST API the template deploys.

SAM translates the template's ``Api`` events and ``Cors`` setting into the RestApi's OpenAPI body:
which resource paths exist, which methods each has (an ``aws_proxy`` integration to a function, or
the ``mock`` integration SAM adds for CORS preflight), which media types are binary, and which
headers the gateway's own error answers carry (``x-amazon-apigateway-gateway-responses``). The
local front answers from that document, so it is as strict as the deployed API:

- a method the resource does not define, or a resource that does not exist, is answered by the
  gateway, not a function: 403 ``{"message": "Missing Authentication Token"}`` (AWS knowledge
  center, "How do I solve an API Gateway REST API endpoint 'Missing Authentication Token' error?");
- a function that fails or outlives its Timeout: 502 ``{"message": "Internal server error"}``
  ("How do I resolve HTTP 502 errors from API Gateway REST APIs with Lambda proxy integration?":
  "Lambda execution failed ... due to customer function error ... Method completed with status: 502");
- no answer within the integration timeout (29 s): 504 ``{"message": "Endpoint request timed out"}``
  ("How do I troubleshoot HTTP 504 errors from API Gateway?").
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

INTEGRATION_TIMEOUT_SECONDS = 29.0
"""REST APIs' default maximum integration timeout."""

# The integration's target: ``${Function.Arn}``, or ``${FunctionAliaslive}`` (an alias's Ref is its ARN)
# when the function has an AutoPublishAlias.
_INVOKED_ARN = re.compile(r"/functions/\$\{(\w+?)(?:\.Arn)?\}/invocations")
_SUB_VARIABLE = re.compile(r"\$\{([\w:]+)\}")


@dataclass(frozen=True)
class GatewayAnswer:
    status: int
    headers: dict[str, str]
    body: str


@dataclass(frozen=True)
class Method:
    function_logical_id: str | None = None
    """The function an ``aws_proxy`` integration invokes; None for a ``mock`` integration."""
    mock: GatewayAnswer | None = None


@dataclass(frozen=True)
class Resource:
    path: str
    """As API Gateway names it, e.g. /donations/{donation_id}."""
    methods: dict[str, Method]

    def match(self, path: str) -> dict[str, str] | None:
        pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path)) + "$"
        found = re.match(pattern, path)
        return found.groupdict() if found else None


@dataclass(frozen=True)
class RestApi:
    resources: list[Resource]
    binary_media_types: tuple[str, ...] = ()
    response_headers: dict[str, dict[str, str]] = field(default_factory=dict)
    """Gateway response type (DEFAULT_4XX, DEFAULT_5XX, ...) -> the headers the template adds."""

    @classmethod
    def from_template(cls, cfn_template: Mapping[str, Any], parameters: Mapping[str, str]) -> RestApi:
        """The first ``AWS::ApiGateway::RestApi`` of a translated (CloudFormation) template."""
        body = next(
            resource["Properties"]["Body"]
            for resource in cfn_template.get("Resources", {}).values()
            if resource.get("Type") == "AWS::ApiGateway::RestApi"
        )
        resolve = _Resolver(parameters)
        functions = _aliased_functions(cfn_template.get("Resources", {}))
        resources = [
            Resource(path, {verb.upper(): _method(spec, resolve, functions) for verb, spec in methods.items()})
            for path, methods in body.get("paths", {}).items()
        ]
        responses = {
            kind: {
                name.removeprefix("gatewayresponse.header."): resolve.literal(value)
                for name, value in (spec.get("responseParameters") or {}).items()
            }
            for kind, spec in (body.get("x-amazon-apigateway-gateway-responses") or {}).items()
        }
        binary = tuple(body.get("x-amazon-apigateway-binary-media-types") or ())
        return cls(resources, binary, responses)

    def find(self, method: str, path: str) -> tuple[Method | None, Resource | None, dict[str, str]]:
        """(method, resource, path parameters); method None when the resource does not define it."""
        for resource in self.resources:
            parameters = resource.match(path)
            if parameters is not None:
                return resource.methods.get(method.upper()), resource, parameters
        return None, None, {}

    def routes(self) -> list[tuple[str, str, str]]:
        """(method, resource path, function logical id) of every method a function serves."""
        return [
            (verb, resource.path, method.function_logical_id)
            for resource in self.resources
            for verb, method in resource.methods.items()
            if method.function_logical_id
        ]

    def is_binary(self, content_type: str | None) -> bool:
        """API Gateway base64-encodes a request body whose Content-Type matches binaryMediaTypes."""
        media_type = (content_type or "").split(";")[0].strip().lower()
        return any(fnmatch.fnmatch(media_type, pattern.lower()) for pattern in self.binary_media_types)

    # -- the gateway's own answers -------------------------------------------------------------

    def missing_authentication_token(self) -> GatewayAnswer:
        return self._error(403, "Missing Authentication Token", "MissingAuthenticationTokenException", "DEFAULT_4XX")

    def function_failed(self) -> GatewayAnswer:
        return self._error(502, "Internal server error", None, "DEFAULT_5XX")

    def integration_timed_out(self) -> GatewayAnswer:
        return self._error(504, "Endpoint request timed out", None, "DEFAULT_5XX")

    def _error(self, status: int, message: str, error_type: str | None, family: str) -> GatewayAnswer:
        headers = {"Content-Type": "application/json", **self.response_headers.get(family, {})}
        if error_type:
            headers["x-amzn-ErrorType"] = error_type
        return GatewayAnswer(status, headers, json.dumps({"message": message}, separators=(",", ":")))


def _aliased_functions(resources: Mapping[str, Any]) -> dict[str, str]:
    """Alias logical id -> the logical id of its function (``FunctionName: {"Ref": ...}``)."""
    return {
        logical_id: resource["Properties"]["FunctionName"]["Ref"]
        for logical_id, resource in resources.items()
        if resource.get("Type") == "AWS::Lambda::Alias" and "Ref" in resource["Properties"].get("FunctionName", {})
    }


def _method(spec: Mapping[str, Any], resolve: _Resolver, aliased: Mapping[str, str]) -> Method:
    integration = spec.get("x-amazon-apigateway-integration") or {}
    if integration.get("type") == "aws_proxy":
        uri = integration.get("uri")
        text = uri.get("Fn::Sub", "") if isinstance(uri, dict) else str(uri)
        found = _INVOKED_ARN.search(text)
        target = found.group(1) if found else None
        return Method(function_logical_id=aliased.get(target, target) if target else None)
    default = (integration.get("responses") or {}).get("default") or {}
    headers = {
        name.removeprefix("method.response.header."): resolve.literal(value)
        for name, value in (default.get("responseParameters") or {}).items()
    }
    templates = default.get("responseTemplates") or {}
    body = str(templates.get("application/json", "")).strip()
    if body:
        headers["Content-Type"] = "application/json"
    return Method(mock=GatewayAnswer(int(default.get("statusCode", 200)), headers, body))


@dataclass(frozen=True)
class _Resolver:
    """Resolves the intrinsics SAM leaves in the body (``Fn::Sub`` of parameters, ``Ref``)."""

    parameters: Mapping[str, str]

    def literal(self, value: Any) -> str:
        """A mapping expression's static value: ``'text'`` (quoted) is the text itself."""
        text = self.resolve(value)
        return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == "'" else text

    def resolve(self, value: Any) -> str:
        if isinstance(value, dict) and "Fn::Sub" in value:
            return _SUB_VARIABLE.sub(lambda m: str(self.parameters.get(m.group(1), m.group(0))), value["Fn::Sub"])
        if isinstance(value, dict) and "Ref" in value:
            return str(self.parameters.get(value["Ref"], ""))
        return str(value)
