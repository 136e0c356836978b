"""``donations-ops stripe install-webhook``: the stack's Stripe webhook endpoint, in our API version,
sending exactly the events the handler handles, its signing secret in the function's parameter.

    STRIPE_API_KEY=sk_... donations-ops --stack-name NAME stripe install-webhook [--url URL] [--recreate]

The key needs write access to webhook endpoints; it is read from the environment, never from the
command line. ``--stripe-api-base`` (or $STRIPE_API_BASE) points it at another Stripe, such as the
local stack's emulator. Running it again changes nothing, or brings the endpoint's events in line.
Exit codes as the rest of donations-ops: 0 done, 1 Stripe refused or the endpoint needs --recreate
(the message says why), 2 usage (no key, unknown stack).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from typing import Any

import stripe

from donations.payments import STRIPE_API_VERSION
from donations_ops.aws import Clients
from donations_ops.stack_resources import OpsError
from donations_ops.stripe_webhook import InstalledWebhook, WebhookInstallError, install_webhook, stack_webhook_target

API_KEY_ENV = "STRIPE_API_KEY"
API_BASE_ENV = "STRIPE_API_BASE"
OK, PROBLEMS = 0, 1


def add_stripe_commands(commands: Any, target: argparse.ArgumentParser) -> None:
    """Add ``stripe install-webhook`` to donations-ops' subcommands."""
    stripe_parser = commands.add_parser("stripe", parents=[target], help="the stack's Stripe webhook endpoint")
    stripe_commands = stripe_parser.add_subparsers(title="stripe commands", required=True, metavar="COMMAND")
    install = stripe_commands.add_parser(
        "install-webhook",
        parents=[target],
        help="create or update the Stripe webhook endpoint and store its signing secret",
        description=f"Reads the API key from ${API_KEY_ENV}. The endpoint sends API version "
        f"{STRIPE_API_VERSION} and the events the webhook handler handles; a new signing secret goes to "
        "the SSM parameter the stack's webhook function reads.",
    )
    install.add_argument("--url", help="the endpoint URL (default: the stack's ApiUrl output + /webhooks/stripe)")
    install.add_argument(
        "--recreate",
        action="store_true",
        help="replace the endpoint with a new one (new signing secret): needed when its API version is "
        "another one, or its secret is not stored",
    )
    install.add_argument(
        "--stripe-api-base", default=None, help=f"Stripe API base URL (default ${API_BASE_ENV}, else Stripe's own)"
    )
    install.set_defaults(command=cmd_install_webhook)


def cmd_install_webhook(args: argparse.Namespace, clients: Clients) -> int:
    api_key = os.environ.get(API_KEY_ENV, "")
    if not api_key:
        raise OpsError(f"set {API_KEY_ENV} to a Stripe secret key that may manage webhook endpoints")
    target = stack_webhook_target(clients, args.stack_name, url=args.url)
    base = args.stripe_api_base or os.environ.get(API_BASE_ENV)
    client = stripe.StripeClient(
        api_key, stripe_version=STRIPE_API_VERSION, base_addresses={"api": base} if base else {}
    )
    try:
        installed = install_webhook(client, clients("ssm"), target, recreate=args.recreate)
    except WebhookInstallError as error:
        print(f"donations-ops: error: {error}")
        return PROBLEMS
    if getattr(args, "json", False):
        print(json.dumps({**asdict(installed), "enabled_events": list(installed.enabled_events)}, indent=2))
    else:
        print(_summary(installed))
    return OK


def _summary(installed: InstalledWebhook) -> str:
    secret = (
        f"its signing secret is stored in {installed.secret_parameter}"
        if installed.secret_stored
        else f"the signing secret in {installed.secret_parameter} stays"
    )
    return (
        f"Webhook endpoint {installed.endpoint_id} {installed.action}: {installed.url}\n"
        f"  API version {installed.api_version}; events: {', '.join(installed.enabled_events)}\n"
        f"  {secret}"
    )
