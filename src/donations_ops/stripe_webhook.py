"""The Stripe webhook endpoint, installed from code: the counterpart of ``receipts install-template``.

``install_webhook`` makes sure Stripe has exactly one endpoint for the stack's webhook URL that sends
the events the handler handles (``donations.webhooks.HANDLED_EVENT_TYPES``), rendered in the API
version the functions pin (``donations.payments.STRIPE_API_VERSION``), and that the signing secret the
webhook function verifies with is the endpoint's. Through Stripe's WebhookEndpoints API
(docs.stripe.com/api/webhook_endpoints; parameters ``stripe.params.WebhookEndpointCreateParams`` /
``…UpdateParams`` of the pinned version):

* No endpoint for the URL: create one (``api_version``, ``enabled_events``) and store its ``secret``
  in the SSM SecureString parameter the webhook function reads.
* One endpoint, right version: update its ``enabled_events`` (and enable it), keep the stored secret.
  Stripe returns ``secret`` "only at creation" (``stripe.WebhookEndpoint.secret``), so an existing
  endpoint's secret cannot be read back: the stored one stays.
* One endpoint in another version (``api_version`` is a create-only parameter), or no stored secret:
  only with ``recreate``: a new endpoint (new secret, stored) is created, then the old one deleted.
  Both exist for a moment, so an event may arrive twice: the handler applies each event id once.
  The functions cache the secret up to 5 minutes; events refused meanwhile are retried by Stripe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import stripe
from botocore.exceptions import ClientError

from donations.payments import STRIPE_API_VERSION
from donations.webhooks import HANDLED_EVENT_TYPES
from donations_ops.aws import Clients
from donations_ops.stack_resources import OpsError, physical_id

WEBHOOK_PATH = "/webhooks/stripe"
WEBHOOK_FUNCTION = "StripeWebhookFunction"
SECRET_NAME_VARIABLE = "STRIPE_WEBHOOK_SECRET_NAME"  # noqa: S105 - the name of a setting, not a secret
"""The webhook function's setting naming its signing-secret parameter (donations.settings), read from
the deployed function: the one place the parameter's name comes from."""
SECRETS_KEY_OUTPUT = "SecretsKeyArn"
API_URL_OUTPUT = "ApiUrl"
DESCRIPTION = "Donation pipeline webhook (installed by donations-ops stripe install-webhook)"
PAGE_SIZE = 100
MAX_PAGES = 50


class WebhookInstallError(Exception):
    """Stripe refused a step, or the endpoint cannot be brought in line without --recreate."""


@dataclass(frozen=True)
class WebhookTarget:
    """Where the stack receives Stripe's events, and where its signing secret lives."""

    url: str
    secret_parameter: str
    secrets_key: str | None = None
    """The stack's KMS key for its provider keys (its SecretsKeyArn output), if it has one: the signing
    secret is stored under it like the others, so only the webhook function may decrypt it."""


@dataclass(frozen=True)
class InstalledWebhook:
    endpoint_id: str
    url: str
    api_version: str
    enabled_events: tuple[str, ...]
    action: str
    """created, recreated, updated or unchanged."""
    secret_parameter: str
    secret_stored: bool
    """A new signing secret was written to the parameter (else the stored one stays)."""


def handled_events() -> list[str]:
    """What the endpoint must send: exactly the event types the webhook handler applies."""
    return sorted(HANDLED_EVENT_TYPES)


def stack_webhook_target(clients: Clients, stack_name: str, *, url: str | None = None) -> WebhookTarget:
    """The stack's webhook URL (its ApiUrl output + /webhooks/stripe, unless given) and the parameter
    its webhook function reads the signing secret from."""
    name = physical_id(clients, stack_name, WEBHOOK_FUNCTION)
    environment = clients("lambda").get_function_configuration(FunctionName=name).get("Environment", {})
    parameter = environment.get("Variables", {}).get(SECRET_NAME_VARIABLE)
    if not parameter:
        raise OpsError(f"{WEBHOOK_FUNCTION} has no {SECRET_NAME_VARIABLE}: is {stack_name!r} this pipeline?")
    [stack] = clients("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    if url is None:
        if API_URL_OUTPUT not in outputs:
            raise OpsError(f"stack {stack_name!r} has no {API_URL_OUTPUT} output: pass --url")
        url = outputs[API_URL_OUTPUT].rstrip("/") + WEBHOOK_PATH
    return WebhookTarget(url=url, secret_parameter=parameter, secrets_key=outputs.get(SECRETS_KEY_OUTPUT))


def install_webhook(
    client: stripe.StripeClient, ssm: Any, target: WebhookTarget, *, recreate: bool = False
) -> InstalledWebhook:
    """Create or update the endpoint for ``target.url``; store a new signing secret when there is one."""
    found = [endpoint for endpoint in _endpoints(client) if endpoint.url == target.url]
    if len(found) > 1:
        ids = ", ".join(endpoint.id for endpoint in found)
        raise WebhookInstallError(f"{len(found)} endpoints send to {target.url} ({ids}): delete all but one")
    if not found:
        return _create(client, ssm, target, "created")
    existing = found[0]
    problem = _needs_new_endpoint(existing, ssm, target.secret_parameter)
    if problem is None and not recreate:
        return _update(client, existing, target)
    if not recreate:
        raise WebhookInstallError(
            f"{problem}: rerun with --recreate to replace endpoint {existing.id} with a new one "
            "(a new signing secret, stored in the parameter)"
        )
    installed = _create(client, ssm, target, "recreated")
    _call(client.v1.webhook_endpoints.delete, existing.id)
    return installed


def _needs_new_endpoint(existing: stripe.WebhookEndpoint, ssm: Any, parameter: str) -> str | None:
    if existing.api_version != STRIPE_API_VERSION:
        shown = existing.api_version or "the account's default"
        return f"endpoint {existing.id} sends events in {shown}, not {STRIPE_API_VERSION} (Stripe cannot change it)"
    if not _parameter_has_value(ssm, parameter):
        return f"{parameter} holds no signing secret, and Stripe shows an endpoint's secret only at creation"
    return None


def _create(client: stripe.StripeClient, ssm: Any, target: WebhookTarget, action: str) -> InstalledWebhook:
    params: stripe.params.WebhookEndpointCreateParams = {
        "url": target.url,
        "api_version": STRIPE_API_VERSION,  # type: ignore[typeddict-item]  # a Literal of every version
        "enabled_events": handled_events(),  # type: ignore[typeddict-item]
        "description": DESCRIPTION,
    }
    endpoint = _call(client.v1.webhook_endpoints.create, params=params)
    if not endpoint.secret:
        raise WebhookInstallError(f"Stripe created endpoint {endpoint.id} without a signing secret")
    # As the deploy guide stores the provider keys: SecureString, under the stack's KMS key when it has one.
    key = {"KeyId": target.secrets_key} if target.secrets_key else {}
    ssm.put_parameter(Name=target.secret_parameter, Value=endpoint.secret, Type="SecureString", Overwrite=True, **key)
    return _installed(endpoint, target, action, secret_stored=True)


def _update(client: stripe.StripeClient, existing: stripe.WebhookEndpoint, target: WebhookTarget) -> InstalledWebhook:
    if sorted(existing.enabled_events) == handled_events() and existing.status == "enabled":
        return _installed(existing, target, "unchanged", secret_stored=False)
    params: stripe.params.WebhookEndpointUpdateParams = {
        "enabled_events": handled_events(),  # type: ignore[typeddict-item]
        "disabled": False,
    }
    updated = _call(client.v1.webhook_endpoints.update, existing.id, params=params)
    return _installed(updated, target, "updated", secret_stored=False)


def _installed(
    endpoint: stripe.WebhookEndpoint, target: WebhookTarget, action: str, *, secret_stored: bool
) -> InstalledWebhook:
    return InstalledWebhook(
        endpoint_id=endpoint.id,
        url=endpoint.url,
        api_version=endpoint.api_version or "",
        enabled_events=tuple(endpoint.enabled_events),
        action=action,
        secret_parameter=target.secret_parameter,
        secret_stored=secret_stored,
    )


def _endpoints(client: stripe.StripeClient) -> list[stripe.WebhookEndpoint]:
    found: list[stripe.WebhookEndpoint] = []
    params: stripe.params.WebhookEndpointListParams = {"limit": PAGE_SIZE}
    for _ in range(MAX_PAGES):
        page = _call(client.v1.webhook_endpoints.list, params=params)
        found += page.data
        if not page.has_more or not page.data:
            return found
        params = {"limit": PAGE_SIZE, "starting_after": page.data[-1].id}
    raise WebhookInstallError(f"more than {MAX_PAGES * PAGE_SIZE} webhook endpoints on this account")


def _parameter_has_value(ssm: Any, name: str) -> bool:
    try:
        # Not decrypted: under the stack's KMS key only the webhook function may; a value is enough here.
        value = ssm.get_parameter(Name=name, WithDecryption=False)["Parameter"]["Value"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return False
        raise
    return bool(str(value).strip())


def _call(request: Any, *args: Any, **kwargs: Any) -> Any:
    """One WebhookEndpoints call; Stripe's refusal becomes a WebhookInstallError naming its message."""
    try:
        return request(*args, **kwargs)
    except stripe.StripeError as error:
        raise WebhookInstallError(f"Stripe answered {error.http_status}: {error.user_message or error}") from error
