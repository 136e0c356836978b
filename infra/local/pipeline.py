"""The whole pipeline in one process: template.yaml created in moto, the real handlers wired to it.

The same composition serves the local stack (against a moto server) and the tests (inside
``moto.mock_aws()``), so what is tested is what runs locally, and what runs locally is what the
template deploys. API Gateway is replaced by :meth:`Pipeline.call_api`, which builds REST (v1)
proxy events for the routes the template declares; Lambda's SQS event source mappings by
:mod:`infra.local.delivery`, with the template's batch settings.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from infra.cfn import PROJECT_ROOT, AwsClients, StackResources, deploy_to_moto, load_template, translate
from infra.events import LambdaContext, api_gateway_event
from infra.local.delivery import EventSource


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # API Gateway resource path, e.g. /donations/{donation_id}
    function_logical_id: str

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method.upper() != self.method:
            return None
        pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path)) + "$"
        found = re.match(pattern, path)
        return found.groupdict() if found else None


@dataclass
class ApiAnswer:
    status: int
    headers: dict[str, str]
    body: Any
    request_id: str

    @property
    def text(self) -> str:
        return self.body if isinstance(self.body, str) else json.dumps(self.body)


@dataclass
class ProviderEndpoints:
    """Where the functions find Stripe and SendGrid: the emulators, or the real test-mode services."""

    stripe_api_base: str = ""
    sendgrid_api_host: str = ""
    stripe_api_key: str = "sk_test_local_emulator"
    sendgrid_api_key: str = "SG.local-emulator"
    # The Stripe emulator signs its webhooks with this by default; with the real Stripe it is the
    # endpoint's secret (``stripe listen`` prints one).
    stripe_webhook_secret: str = "whsec_local_emulator"  # noqa: S105 - a well-known local test secret


@dataclass
class Pipeline:
    providers: ProviderEndpoints
    endpoint_url: str | None = None
    stack_name: str = "donations-local"
    parameters: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    """Extra environment for the functions (e.g. shorter backoffs in tests)."""
    template_path: Path = PROJECT_ROOT / "template.yaml"

    def start(self) -> Pipeline:
        self.sam_template = load_template(self.template_path)
        self.clients = AwsClients(endpoint_url=self.endpoint_url)
        self.stack: StackResources = deploy_to_moto(
            translate(self.sam_template, region=self.clients.region),
            stack_name=self.stack_name,
            parameters=self.parameters,
            clients=self.clients,
        )
        self._store_provider_keys()
        os.environ.update(self.function_environment())
        from donations.settings import get_settings

        get_settings.cache_clear()
        self.handlers = {lid: _load_handler(spec.code_uri, spec.handler) for lid, spec in self.stack.functions.items()}
        # One invocation at a time per function, as in one Lambda execution environment: handlers
        # keep per-invocation state in module globals (the resolver's current event, Logger keys).
        self._locks = {lid: threading.Lock() for lid in self.handlers}
        _one_metrics_flush_at_a_time()
        self.routes = api_routes(self.sam_template)
        return self

    def function_environment(self) -> dict[str, str]:
        """All functions' environments as moto resolved them, merged (they share this process)."""
        merged: dict[str, str] = {}
        for spec in self.stack.functions.values():
            merged.update(spec.environment)
        merged.update(
            {
                "STRIPE_API_BASE": self.providers.stripe_api_base,
                "SENDGRID_API_HOST": self.providers.sendgrid_api_host,
                "POWERTOOLS_SERVICE_NAME": "donations-local",
                "POWERTOOLS_TRACE_DISABLED": "true",
                "AWS_DEFAULT_REGION": self.clients.region,
                # moto's dummy credentials: the pipeline only ever talks to moto, never to a real account.
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
            }
        )
        if self.endpoint_url:
            merged["AWS_ENDPOINT_URL"] = self.endpoint_url
        merged.update(self.environment)
        return merged

    def _store_provider_keys(self) -> None:
        secrets = self.clients("secretsmanager")
        names = {
            "STRIPE_SECRET_NAME": self.providers.stripe_api_key,
            "SENDGRID_SECRET_NAME": self.providers.sendgrid_api_key,
            "STRIPE_WEBHOOK_SECRET_NAME": self.providers.stripe_webhook_secret,
        }
        environment = self.function_environment()
        for variable, value in names.items():
            name = environment[variable]
            try:
                secrets.create_secret(Name=name, SecretString=value)
            except secrets.exceptions.ResourceExistsException:
                secrets.put_secret_value(SecretId=name, SecretString=value)

    def handler(self, function_logical_id: str) -> ModuleType:
        return self.handlers[function_logical_id]

    def invoke(self, function_logical_id: str, event: dict[str, Any], context: Any = None) -> Any:
        spec = self.stack.functions[function_logical_id]
        context = context or LambdaContext(spec.name, spec.memory_size, spec.timeout)
        with self._locks[function_logical_id]:
            return self.handlers[function_logical_id].lambda_handler(event, context)

    def call_api(
        self, method: str, path: str, *, body: str | None = None, headers: dict[str, str] | None = None
    ) -> ApiAnswer:
        """What API Gateway does: find the route, build the proxy event, invoke, return the answer."""
        for route in self.routes:
            parameters = route.match(method, path)
            if parameters is not None:
                break
        else:
            return ApiAnswer(
                404 if not any(r.match(r.method, path) is not None for r in self.routes) else 405,
                {"Content-Type": "application/json"},
                {"message": "Missing Authentication Token"},
                "",
            )
        event = api_gateway_event(
            method, path, body=body, headers=headers, resource=route.path, path_parameters=parameters or None
        )
        spec = self.stack.functions[route.function_logical_id]
        context = LambdaContext(
            function_name=spec.name, timeout_seconds=spec.timeout, memory_limit_in_mb=spec.memory_size
        )
        result = self.handlers[route.function_logical_id].lambda_handler(event, context)
        response_headers = {**(result.get("headers") or {})}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            response_headers[name] = ",".join(values)
        raw = result.get("body") or ""
        try:
            parsed: Any = json.loads(raw)
        except ValueError:
            parsed = raw
        return ApiAnswer(int(result["statusCode"]), response_headers, parsed, event["requestContext"]["requestId"])

    def event_sources(self) -> list[EventSource]:
        sources = []
        for spec in self.stack.event_sources.values():
            if spec.queue_url is None or spec.queue_arn is None or not spec.enabled:
                continue
            function = self.stack.functions[spec.function_logical_id]
            sources.append(
                EventSource(
                    name=spec.function_logical_id,
                    queue_url=spec.queue_url,
                    queue_arn=spec.queue_arn,
                    handler=functools.partial(self.invoke, spec.function_logical_id),
                    batch_size=spec.batch_size,
                    batching_window_seconds=spec.maximum_batching_window_seconds,
                    function_timeout_seconds=function.timeout,
                    report_batch_item_failures=spec.report_batch_item_failures,
                )
            )
        return sources

    def queue_url(self, logical_id: str) -> str:
        return self.stack.queues[logical_id]


def api_routes(sam_template: dict[str, Any]) -> list[Route]:
    """The template's Api events: (method, path) → function. API Gateway does this routing on AWS."""
    routes = []
    for logical_id, resource in sam_template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in (resource.get("Properties", {}).get("Events") or {}).values():
            if event.get("Type") == "Api":
                properties = event["Properties"]
                routes.append(Route(properties["Method"].upper(), properties["Path"], logical_id))
    return routes


def _one_metrics_flush_at_a_time() -> None:
    """The functions share this process, and with it Powertools' one metric set (on AWS each has its own).

    A flush checks the set is not empty, serialises it, then clears it: another function's flush
    clearing it in between made the first raise "Must contain at least one metric". Flushes are
    therefore taken one at a time. (Metrics added meanwhile by another function may still be
    reported with this one's: a known limit of running every function in one interpreter.)
    """
    from donations.observability import metrics

    provider = metrics.provider  # log_metrics flushes through the EMF provider, not the Metrics facade
    if getattr(provider.flush_metrics, "one_at_a_time", False):
        return
    lock = threading.Lock()
    flush = provider.flush_metrics

    def flush_one_at_a_time(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return flush(*args, **kwargs)

    flush_one_at_a_time.one_at_a_time = True  # type: ignore[attr-defined]
    provider.flush_metrics = flush_one_at_a_time  # type: ignore[method-assign]


def _load_handler(code_uri: str | None, handler: str) -> ModuleType:
    """Import a function's handler module the way Lambda does: its code folder on sys.path.

    A module already imported is reloaded, so it reads the environment set for this pipeline.
    """
    if code_uri is None:
        raise ValueError(f"handler {handler} has no local CodeUri")
    folder = str((PROJECT_ROOT / code_uri).resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module_name = handler.rsplit(".", 1)[0]
    if module_name in sys.modules:
        return importlib.reload(sys.modules[module_name])
    return importlib.import_module(module_name)
