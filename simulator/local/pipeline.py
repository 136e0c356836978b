"""The whole pipeline in one process: template.yaml created in moto, the real handlers wired to it.

The same composition serves the local stack (against a moto server) and the tests (inside
``moto.mock_aws()``), so what is tested is what runs locally, and what runs locally is what the
template deploys. API Gateway is replaced by :meth:`Pipeline.call_api`, which answers from the
REST API the template deploys (:mod:`simulator.local.gateway`) and builds REST (v1) proxy events for
its functions; Lambda's SQS event source mappings by :mod:`simulator.local.delivery`, with the
template's batch settings. Every function runs in one execution environment
(:mod:`simulator.local.environment`): one invocation at a time, abandoned at the template's Timeout.
"""

from __future__ import annotations

import base64
import functools
import importlib
import ipaddress
import json
import os
import re
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from donations.stripe_keys import STRIPE_KEY_PERMISSIONS, STRIPE_KEY_VARIABLES
from infra.deploy import PROJECT_ROOT, AwsClients, StackResources, deploy_to_moto, load_and_translate
from simulator.local.delivery import EventSource
from simulator.local.environment import CallerGaveUp, ExecutionEnvironment, FunctionTimedOut
from simulator.local.events import Headers, api_gateway_event
from simulator.local.gateway import INTEGRATION_TIMEOUT_SECONDS, GatewayAnswer, RestApi
from simulator.local.sns import SnsDelivery

if TYPE_CHECKING:
    from simulator.emulators.stripe import StripeEmulator


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
    """The body parsed as JSON when it is JSON, else the text."""
    request_id: str
    raw: str | None = None
    """The body exactly as sent."""

    @property
    def text(self) -> str:
        if self.raw is not None:
            return self.raw
        return self.body if isinstance(self.body, str) else json.dumps(self.body)


LOCAL_FORM_HOSTNAMES = "localhost,127.0.0.1"
"""Where the local donation form is served (simulator/local/front.py): the hosts its CAPTCHA tokens name."""


@dataclass
class ProviderEndpoints:
    """Where the functions find Stripe and SendGrid: the emulators, or the real test-mode services."""

    stripe_api_base: str = ""
    sendgrid_api_host: str = ""
    stripe_api_key: str = "sk_test_local_emulator"
    stripe_function_keys: dict[str, str] = field(default_factory=dict)
    """Function -> its own restricted Stripe key (donations.stripe_keys); a function not named here uses
    ``stripe_api_key`` (a real test-mode secret key, or the emulator's)."""
    sendgrid_api_key: str = "SG.local-emulator"
    # The Stripe emulator signs its webhooks with this by default; with the real Stripe it is the
    # endpoint's secret (``stripe listen`` prints one).
    stripe_webhook_secret: str = "whsec_local_emulator"  # noqa: S105 - a well-known local test secret
    # Cloudflare Turnstile (the card-testing CAPTCHA): the emulator's widget and siteverify
    # (simulator/emulators/turnstile_emulator.py), or the real service with your widget's keys. Without
    # either, siteverify points at a closed local port: a token then fails closed (503), never
    # reaching the internet.
    turnstile_verify_url: str = "http://127.0.0.1:9/turnstile/v0/siteverify"
    turnstile_script_url: str = ""
    turnstile_sitekey: str = "0x4AAAAAAALocalEmulatorKey"
    turnstile_secret: str = "0x4AAAAAAALocalEmulatorSecretKeyXX"  # noqa: S105 - the emulator's well-known secret


def restricted_stripe_keys(stripe: StripeEmulator) -> dict[str, str]:
    """A restricted key per function, made in the Stripe emulator with exactly the permissions
    donations.stripe_keys writes down: every run proves the table is enough (the emulator refuses the rest)."""
    keys = {}
    for function, permissions in STRIPE_KEY_PERMISSIONS.items():
        keys[function] = f"rk_test_local_{function}"
        stripe.restrict(keys[function], {resource: access.value for resource, access in permissions.items()})
    return keys


def install_receipt_template(providers: ProviderEndpoints) -> str:
    """Install the shipped receipt template into the SendGrid emulator as a deployer would
    (``donations-ops receipts install-template``) and return its id, the stack's ReceiptTemplateId."""
    from sendgrid import SendGridAPIClient

    from donations_ops.receipts import install_template

    client = SendGridAPIClient(api_key=providers.sendgrid_api_key, host=providers.sendgrid_api_host)
    return install_template(client).template_id


def install_statement_template(providers: ProviderEndpoints) -> str:
    """The same for the year-end statement's template (``install-template --statement``): StatementTemplateId."""
    from sendgrid import SendGridAPIClient

    from donations_ops.receipts import install_statement_template as install

    client = SendGridAPIClient(api_key=providers.sendgrid_api_key, host=providers.sendgrid_api_host)
    return install(client).template_id


LOCAL_MANAGE_PAGE = "/manage"
"""Where the local front serves the pledge manage page (static/form/manage.html)."""
LOCAL_FORM_ORIGIN = "http://127.0.0.1:3000"
"""The origin of the local donation form (the front's default port): the stack's AllowedOrigin locally."""


@dataclass
class Pipeline:
    providers: ProviderEndpoints
    endpoint_url: str | None = None
    """A moto server in a process of its own (:class:`~simulator.local.moto_process.MotoProcess`); None for a
    moto in this process (``mock_aws``)."""
    stack_name: str = "donations-local"
    allowed_origin: str = LOCAL_FORM_ORIGIN
    parameters: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    """Extra environment for the functions (e.g. shorter backoffs in tests)."""
    template_path: Path = PROJECT_ROOT / "template.yaml"
    # What keys donation ids, donor keys and velocity keys here (donations.identifiers); a deployment
    # stores its own random one.
    identifier_secret: str = "local-identifier-secret-not-for-deployments"  # noqa: S105 - a local test secret
    # What signs the pledge manage links here (donations.pledge_links); a deployment stores its own random one.
    pledge_link_key: str = "local-pledge-link-key-not-for-deployments"

    def start(self) -> Pipeline:
        self.clients = AwsClients(endpoint_url=self.endpoint_url)
        self.sam_template, self.cfn_template = load_and_translate(self.template_path, region=self.clients.region)
        self.stack: StackResources = deploy_to_moto(
            self.cfn_template,
            stack_name=self.stack_name,
            parameters={**self._provider_parameters(), **self.parameters},
            clients=self.clients,
            moto_in_this_process=self.endpoint_url is None,
        )
        self._store_provider_keys()
        # Each handler reads its settings from the environment at import (INIT), so they are set first.
        os.environ.update(self.function_environment())
        self.handlers = {lid: _load_handler(spec.code_uri, spec.handler) for lid, spec in self.stack.functions.items()}
        self.api = RestApi.from_template(self.cfn_template, self.parameter_values())
        self.environments = self._environments()
        _share_metrics_as_lambda_would(os.environ["POWERTOOLS_METRICS_NAMESPACE"])
        self.routes = [Route(method, path, function) for method, path, function in self.api.routes()]
        self.sns_deliveries = self._sns_deliveries()
        return self

    def _sns_deliveries(self) -> list[SnsDelivery]:
        """Functions subscribed to a topic (the notifier to the alarm topic), fed as SNS would."""
        sqs, sns = self.clients("sqs"), self.clients("sns")
        return [
            SnsDelivery(sqs, sns, source, functools.partial(self.invoke, self.stack.sns_function(source)))
            for source in self.stack.sns_sources.values()
        ]

    def deliver_sns(self) -> list[Any]:
        """Hand what the topics got to their subscribed functions; their results."""
        return [result for delivery in self.sns_deliveries for result in delivery.deliver()]

    def _environments(self) -> dict[str, ExecutionEnvironment]:
        """One execution environment per function, with the template's Timeout and MemorySize.

        The functions behind the API take turns with each other as well: their handlers share
        Powertools' event handler, which keeps the current event and context on the router class
        (``BaseRouter.current_event``), one per interpreter. On AWS each function has an interpreter
        of its own; here a webhook resolved during a charge would overwrite the charge's event.
        """
        api_turn = threading.Lock()
        api_functions = {function for _, _, function in self.api.routes()}
        return {
            lid: ExecutionEnvironment(
                spec.name,
                self.handlers[lid].lambda_handler,
                spec.timeout,
                spec.memory_size,
                turn=api_turn if lid in api_functions else threading.Lock(),
            )
            for lid, spec in self.stack.functions.items()
        }

    def parameter_values(self) -> dict[str, str]:
        """The stack's parameters: the template's defaults, overridden by ``parameters``."""
        declared = self.sam_template.get("Parameters", {})
        values = {name: str(spec["Default"]) for name, spec in declared.items() if "Default" in spec}
        return {**values, **self._provider_parameters(), **self.parameters}

    def _provider_parameters(self) -> dict[str, str]:
        # The CAPTCHA widget the form shows, the form's hosts and its origin are stack parameters, the
        # first and last without defaults, as deployed: here, the local ones.
        return {
            "TurnstileSiteKey": self.providers.turnstile_sitekey,
            "FormHostnames": LOCAL_FORM_HOSTNAMES,
            "AllowedOrigin": self.allowed_origin,
            # The pledge manage page the emailed links open: the local front serves it.
            "ManagePageUrl": f"{self.allowed_origin}{LOCAL_MANAGE_PAGE}",
        }

    def function_environment(self) -> dict[str, str]:
        """All functions' environments as moto resolved them, merged (they share this process)."""
        merged: dict[str, str] = {}
        for spec in self.stack.functions.values():
            merged.update(spec.environment)
        merged.update(
            {
                "STRIPE_API_BASE": self.providers.stripe_api_base,
                "SENDGRID_API_HOST": self.providers.sendgrid_api_host,
                "TURNSTILE_VERIFY_URL": self.providers.turnstile_verify_url,
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
        if self.providers.turnstile_script_url:
            merged["TURNSTILE_SCRIPT_URL"] = self.providers.turnstile_script_url
        merged.update(self.environment)
        return merged

    def stored_secrets(self) -> dict[str, str]:
        """Each secret's environment variable -> the value the stack stores in the parameter it names."""
        return {
            # One Stripe key per function (donations.stripe_keys).
            **{
                variable: self.providers.stripe_function_keys.get(function, self.providers.stripe_api_key)
                for function, variable in STRIPE_KEY_VARIABLES.items()
            },
            "SENDGRID_SECRET_NAME": self.providers.sendgrid_api_key,
            "STRIPE_WEBHOOK_SECRET_NAME": self.providers.stripe_webhook_secret,
            "TURNSTILE_SECRET_NAME": self.providers.turnstile_secret,
            "IDENTIFIER_SECRET_NAME": self.identifier_secret,
            "PLEDGE_LINK_SECRET_NAME": self.pledge_link_key,
        }

    def _store_provider_keys(self) -> None:
        ssm = self.clients("ssm")
        environment = self.function_environment()
        # As an operator stores (and rotates) them: SecureString, standard tier, under the stack's key
        # when it made one (EncryptSecrets).
        key = {"KeyId": self.stack.outputs["SecretsKeyArn"]} if "SecretsKeyArn" in self.stack.outputs else {}
        for variable, value in self.stored_secrets().items():
            ssm.put_parameter(Name=environment[variable], Value=value, Type="SecureString", Overwrite=True, **key)

    def handler(self, function_logical_id: str) -> ModuleType:
        return self.handlers[function_logical_id]

    def invoke(self, function_logical_id: str, event: dict[str, Any], context: Any = None) -> Any:
        """Invoke a function in its execution environment, as Lambda does (waiting while it is busy).

        ``context`` is ignored: the environment creates the invocation's context when the invocation
        starts, so a wait for a busy environment does not eat into the function's time. Raises
        FunctionTimedOut when the invocation outlives the function's Timeout.
        """
        return self.environments[function_logical_id].invoke(event)

    def call_api(
        self,
        method: str,
        path: str,
        *,
        body: str | bytes | None = None,
        headers: Headers | None = None,
        query: str = "",
    ) -> ApiAnswer:
        """What API Gateway does: find the resource and method, answer itself or invoke the function.

        ``body`` as bytes is what came on the wire: base64-encoded for the function when its
        Content-Type matches the API's binaryMediaTypes, else decoded as UTF-8 text, as API Gateway
        does (bytes that are not UTF-8 become U+FFFD). A str is taken as that text already.
        """
        headers, source_ip = local_source_ip(headers)
        found, resource, parameters = self.api.find(method, path)
        if found is None or resource is None:
            return _gateway_answer(self.api.missing_authentication_token())
        if found.mock is not None:
            return _gateway_answer(found.mock)
        assert found.function_logical_id is not None
        binary = isinstance(body, bytes) and self.api.is_binary(_header(headers, "Content-Type"))
        event = api_gateway_event(
            method,
            path,
            body=base64.b64encode(body).decode() if binary and isinstance(body, bytes) else body,
            headers=headers,
            query=query,
            resource=resource.path,
            path_parameters=parameters or None,
            base64_encoded=binary,
            source_ip=source_ip,
        )
        try:
            result = self.environments[found.function_logical_id].invoke(
                event, deadline=time.monotonic() + INTEGRATION_TIMEOUT_SECONDS
            )
        except FunctionTimedOut:
            return _gateway_answer(self.api.function_failed(), event)
        except CallerGaveUp:
            return _gateway_answer(self.api.integration_timed_out(), event)
        if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
            return _gateway_answer(self.api.function_failed(), event)  # "Malformed Lambda proxy response"
        response_headers = {**(result.get("headers") or {})}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            response_headers[name] = ",".join(values)
        raw = result.get("body") or ""
        try:
            parsed: Any = json.loads(raw)
        except ValueError:
            parsed = raw
        request_id = event["requestContext"]["requestId"]
        return ApiAnswer(int(result["statusCode"]), response_headers, parsed, request_id, raw)

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


LOCAL_SOURCE_IP_HEADER = "X-Local-Source-Ip"
"""Local only: the client address the front reports as ``requestContext.identity.sourceIp``.

API Gateway takes sourceIp from the connection, and would pass this header on to the function as any
other; the charge function never reads it (only sourceIp). The local front takes it out of the
request and uses its value, so that tests and the attack simulation can speak from many addresses
over loopback. Anything not an IP address is ignored (127.0.0.1 is reported).
"""


def local_source_ip(headers: Headers | None) -> tuple[list[tuple[str, str]], str]:
    """(the headers without the local source-address header, the address to report as sourceIp)."""
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
    wanted = LOCAL_SOURCE_IP_HEADER.lower()
    given = [value for name, value in pairs if name.lower() == wanted]
    kept = [(name, value) for name, value in pairs if name.lower() != wanted]
    try:
        return kept, str(ipaddress.ip_address(given[-1].strip())) if given else "127.0.0.1"
    except ValueError:
        return kept, "127.0.0.1"


def _gateway_answer(answer: GatewayAnswer, event: dict[str, Any] | None = None) -> ApiAnswer:
    try:
        body: Any = json.loads(answer.body) if answer.body else ""
    except ValueError:
        body = answer.body
    request_id = event["requestContext"]["requestId"] if event else ""
    return ApiAnswer(answer.status, dict(answer.headers), body, request_id, answer.body)


def _header(headers: Headers | None, name: str) -> str | None:
    """The last value of a header (as API Gateway's single-value ``headers`` holds it)."""
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    values = [value for key, value in pairs if key.lower() == name.lower()]
    return values[-1] if values else None


def _share_metrics_as_lambda_would(namespace: str) -> None:
    """The functions share this process, and with it Powertools' one Metrics (on AWS each has its own).

    Its namespace is set now, from the functions' environment the pipeline has just put in place: on AWS
    each function's INIT reads POWERTOOLS_METRICS_NAMESPACE, but here donations.observability may have
    been imported before the stack started (the operator tool and the receipt template's installer
    import donations' modules), and a Metrics without a namespace fails every flush, answering 502.

    A flush checks the set is not empty, serialises it, then clears it: another function's flush
    clearing it in between made the first raise "Must contain at least one metric". Flushes are
    therefore taken one at a time. (Metrics added meanwhile by another function may still be
    reported with this one's: a known limit of running every function in one interpreter.)
    """
    from donations.observability import metrics

    metrics.namespace = namespace
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
