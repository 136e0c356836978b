"""``donations-ops receipts install-template``: put the shipped receipt template into SendGrid, print its id.

    SENDGRID_API_KEY=SG... donations-ops receipts install-template [--statement] [--name NAME | --template-id d-...]

``--statement`` installs the year-end statement's template instead (its id goes in StatementTemplateId).

The key needs the Template Engine permission (a Mail Send-only key gets 403); it is read from the
environment, never from the command line. ``--sendgrid-host`` (or $SENDGRID_API_HOST) points it at
another SendGrid, such as the local stack's emulator. Exit codes as the rest of donations-ops: 0 done,
1 SendGrid refused (the message says why), 2 usage (no key).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from donations_ops.receipts import (
    DEFAULT_NAME,
    STATEMENT_NAME,
    Installed,
    InstallError,
    install_statement_template,
    install_template,
)
from donations_ops.stack_resources import OpsError

API_KEY_ENV = "SENDGRID_API_KEY"
HOST_ENV = "SENDGRID_API_HOST"
OK, PROBLEMS = 0, 1


def add_receipt_commands(commands: Any) -> None:
    """Add ``receipts install-template`` to donations-ops' subcommands."""
    receipts = commands.add_parser("receipts", help="the receipt email's SendGrid dynamic template")
    receipt_commands = receipts.add_subparsers(title="receipts commands", required=True, metavar="COMMAND")
    install = receipt_commands.add_parser(
        "install-template",
        help="create or update the SendGrid dynamic template with a new active version; print its id",
        description=f"Reads the API key from ${API_KEY_ENV} (it needs the Template Engine permission). "
        "Prints the template id to deploy with: ReceiptTemplateId.",
    )
    install.add_argument(
        "--statement",
        action="store_true",
        help="the year-end statement's template (deploy its id as StatementTemplateId), not the receipt's",
    )
    install.add_argument(
        "--name",
        default=None,
        help=f"the template's name in SendGrid (default {DEFAULT_NAME!r}, or {STATEMENT_NAME!r} with --statement)",
    )
    install.add_argument(
        "--template-id", help="update this dynamic template (default: the one named --name, created if none)"
    )
    install.add_argument(
        "--sendgrid-host", default=None, help=f"SendGrid API base URL (default ${HOST_ENV}, else SendGrid's own)"
    )
    install.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    install.set_defaults(command=cmd_install_template)


def cmd_install_template(args: argparse.Namespace, _clients: Any) -> int:
    from sendgrid import SendGridAPIClient

    api_key = os.environ.get(API_KEY_ENV, "")
    if not api_key:
        raise OpsError(f"set {API_KEY_ENV} to a SendGrid API key with the Template Engine permission")
    host = args.sendgrid_host or os.environ.get(HOST_ENV)
    client = SendGridAPIClient(api_key=api_key, host=host) if host else SendGridAPIClient(api_key=api_key)
    try:
        if args.statement:
            installed = install_statement_template(
                client, name=args.name or STATEMENT_NAME, template_id=args.template_id
            )
        else:
            installed = install_template(client, name=args.name or DEFAULT_NAME, template_id=args.template_id)
    except InstallError as error:
        print(f"donations-ops: error: {error}")
        return PROBLEMS
    if getattr(args, "json", False):
        print(json.dumps(_as_json(installed), indent=2))
    else:
        print(_summary(installed, "StatementTemplateId" if args.statement else "ReceiptTemplateId"))
    return OK


def _as_json(installed: Installed) -> dict[str, Any]:
    return {
        "template_id": installed.template_id,
        "version_id": installed.version_id,
        "created": installed.created,
        "name": installed.name,
    }


def _summary(installed: Installed, parameter: str) -> str:
    what = "Created the dynamic template" if installed.created else "Updated the dynamic template"
    return (
        f"{what} {installed.name!r}: version {installed.version_id} is now active.\n"
        f"Deploy with {parameter}={installed.template_id}\n"
        f"  (sam deploy --parameter-overrides {parameter}={installed.template_id})\n"
        f"{installed.template_id}"
    )
