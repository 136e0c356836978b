"""The operator console's API (``/_local/ops/...``): the same donations_ops functions the CLI uses.

Looking (alarms, what needs attention, a parked message, a donor, the report, the pledges) reads; acting (redrive,
discard, fix an address) is recorded on the donation as from the CLI. Also ``/_local/runbook``:
RUNBOOK.md as a page, its sections as anchors, for the console's links.

Acting is guarded against cross-site requests (OWASP Cross-Site Request Forgery Prevention Cheat
Sheet: "Custom Request Headers" and "Verifying Origin With Standard Headers"): a POST must carry
:data:`CONSOLE_HEADER`, which a cross-site form cannot send and a cross-site ``fetch`` can only send
after a CORS preflight this server never approves, and an ``Origin`` that is the console's own
(browsers send it with every POST). Anything else is a 403 that does nothing.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import parse_qs

from donations.money import with_code
from donations.notify import describe
from donations.pledges import LAPSED, NEEDS_ATTENTION
from donations_ops import actions, lookup, parked, pledges_cli, report
from donations_ops.alarms import stack_alarms
from donations_ops.aws import Clients
from donations_ops.stack_resources import OpsError, Stack, discover, resolve_dlq
from donations_ops.target import Target
from infra.deploy import PROJECT_ROOT

RUNBOOK = PROJECT_ROOT / "RUNBOOK.md"
STEP_QUEUES = ("receipt", "tokenize")
PLEDGES_SHOWN = 100
CONSOLE_HEADER = "X-Donations-Console"
"""Sent by the console's pages (static/ops-console.js) with every action."""


def console_origins(port: int) -> frozenset[str]:
    """The origins the console's pages are served from (the front binds 127.0.0.1 only)."""
    return frozenset({f"http://127.0.0.1:{port}", f"http://localhost:{port}"})


@dataclass(frozen=True)
class Raw:
    """An answer that is not JSON (the report's CSV, the runbook page)."""

    content_type: str
    body: bytes


Answer = tuple[int, Any]


class ConsoleApi:
    def __init__(
        self, clients: Clients, stack_name: str, alarm_prefix: str, origins: frozenset[str], target: Target
    ) -> None:
        self._clients = clients
        self._origins = origins
        self._stack_name = stack_name
        self._prefix = alarm_prefix
        self._stack: Stack | None = None
        self._target = target
        """How donations-ops reaches this stack: the commands the console suggests are written for it."""

    @property
    def stack(self) -> Stack:
        if self._stack is None:  # found as donations-ops finds a stack: from CloudFormation
            self._stack = discover(self._clients, self._stack_name)
        return self._stack

    def handle(
        self, method: str, route: str, query: str, body: bytes, headers: Iterable[tuple[str, str]] = ()
    ) -> Answer | None:
        """The answer to ``/_local/<route>``, or None when the route is not the console's."""
        handlers: dict[tuple[str, str], Callable[[dict[str, str], dict[str, Any]], Answer]] = {
            ("GET", "ops/alarms"): self._alarms,
            ("GET", "ops/attention"): self._attention,
            ("GET", "ops/show"): self._show,
            ("POST", "ops/redrive"): self._redrive,
            ("POST", "ops/discard"): self._discard,
            ("POST", "ops/fix-email"): self._fix_email,
            ("GET", "ops/donor"): self._donor,
            ("GET", "ops/story"): self._story,
            ("GET", "ops/report"): self._report,
            ("GET", "ops/report.csv"): self._report_csv,
            ("GET", "ops/pledges"): self._pledges,
            ("GET", "runbook"): lambda _q, _b: (200, Raw("text/html; charset=utf-8", runbook_page())),
        }
        found = handlers.get((method, route))
        if found is None:
            return None
        if method == "POST" and not self._same_site(headers):
            return 403, {"error": f"console actions come from the console's own pages only ({CONSOLE_HEADER}, Origin)"}
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        try:
            payload = json.loads(body or b"{}") if method == "POST" else {}
            return found(params, payload if isinstance(payload, dict) else {})
        except (OpsError, ValueError) as error:
            return 400, {"error": str(error)}

    def _same_site(self, headers: Iterable[tuple[str, str]]) -> bool:
        sent: dict[str, list[str]] = {}
        for name, value in headers:
            sent.setdefault(name.lower(), []).append(value)
        return (
            sent.get(CONSOLE_HEADER.lower()) == ["1"]
            and len(sent.get("origin", [])) == 1
            and (sent["origin"][0] in self._origins)
        )

    # -- looking -----------------------------------------------------------------------------------

    def _alarms(self, _: dict[str, str], __: dict[str, Any]) -> Answer:
        cloudwatch = self._clients("cloudwatch")
        found = []
        for alarm in stack_alarms(self._clients, self.stack):
            described = cloudwatch.describe_alarms(AlarmNames=[alarm.name])["MetricAlarms"]
            description = described[0] if described else {"AlarmName": alarm.name}
            cause, first, section = describe(description, self._prefix)
            found.append(
                {"name": alarm.name, "state": alarm.state, "reason": alarm.reason, "cause": cause,
                 "first_command": self._target.complete(first), "section": section,
                 "runbook": f"/_local/runbook#{section}"}
            )  # fmt: skip
        return 200, {"alarms": found}

    def _attention(self, params: dict[str, str], _: dict[str, Any]) -> Answer:
        queues = [params["queue"]] if params.get("queue") else list(STEP_QUEUES)
        views = []
        for queue in queues:
            dlq = resolve_dlq(self.stack, queue)
            view = parked.view(self._clients, self.stack, dlq, reason=params.get("reason") or None)
            rows = [{**dataclasses.asdict(row), "hint": self._complete(row.hint)} for row in view.rows]
            views.append({"queue": queue, **dataclasses.asdict(view), "rows": rows})
        return 200, {"steps": views}

    def _show(self, params: dict[str, str], _: dict[str, Any]) -> Answer:
        shown = parked.show(self._clients, self.stack, _required(params, "donation"))
        return 200, {**shown, "hint": self._complete(shown["hint"])}

    def _donor(self, params: dict[str, str], _: dict[str, Any]) -> Answer:
        day = report.parse_day(params["date"]) if params.get("date") else None
        found = lookup.find(
            self._clients, self.stack, email=params.get("email") or None, last4=params.get("last4") or None, day=day
        )
        return 200, {"donations": [lookup.summary_row(d) for d in found]}

    def _story(self, params: dict[str, str], _: dict[str, Any]) -> Answer:
        return 200, lookup.story(self._clients, self.stack, _required(params, "donation"))

    def _period(self, params: dict[str, str]) -> report.Report:
        first = report.parse_day(params.get("from") or params.get("date") or "today")
        last = report.parse_day(params["to"]) if params.get("to") else first
        return report.build(self._clients, self.stack, first, last)

    def _report(self, params: dict[str, str], _: dict[str, Any]) -> Answer:
        found = self._period(params)
        payload = {**dataclasses.asdict(found), "receipts_answer": found.receipts_answer}
        return 200, {**payload, "first_day": found.first_day.isoformat(), "last_day": found.last_day.isoformat()}

    def _report_csv(self, params: dict[str, str], _: dict[str, Any]) -> Answer:
        return 200, Raw("text/csv; charset=utf-8", report.as_csv(self._period(params)).encode())

    def _pledges(self, params: dict[str, str], _: dict[str, Any]) -> Answer:
        """As ``donations-ops pledges list``: those whose renewal failed, or with ``due`` those due that day."""
        due, state = params.get("due") or None, params.get("state") or None
        if due is not None:
            try:
                due = date.fromisoformat(due).isoformat()
            except ValueError:
                raise OpsError(f"not a day: {due!r} (YYYY-MM-DD, UTC)") from None
        if state not in (None, NEEDS_ATTENTION, LAPSED):
            raise OpsError(f"state is {NEEDS_ATTENTION} or {LAPSED}")
        store = pledges_cli.pledge_store(self._clients, self.stack)
        found = pledges_cli.listed(store, due=due, state=state, limit=PLEDGES_SHOWN)
        views = [{**pledges_cli.pledge_view(p), "amount_display": with_code(p.amount, p.currency)} for p in found]
        return 200, {"pledges": views, "due": due, "state": state}

    # -- acting ------------------------------------------------------------------------------------

    def _redrive(self, _: dict[str, str], body: dict[str, Any]) -> Answer:
        dlq = resolve_dlq(self.stack, _required(body, "queue"))
        force = bool(body.get("force"))
        firing = actions.alarms_against_redrive(self._clients, self.stack, dlq)
        if firing and not force:
            return 409, {
                "error": f"{', '.join(firing)} in ALARM: the step still fails, and a redrive now would park "
                "its messages again. Nothing was redriven. Fix the cause; Force redrive redrives anyway.",
                "alarms_firing": firing,
            }
        result = actions.redrive_safely(
            self._clients, self.stack, dlq, donation_id=body.get("donation") or None,
            force=force, note=str(body.get("note") or ""),
            method="copy",  # moto has no SQS move task: copy at once rather than ask for one
        )  # fmt: skip
        skipped = [{**dataclasses.asdict(s), "hint": self._complete(s.hint)} for s in result.skipped]
        payload = {**dataclasses.asdict(result), "skipped": skipped, "ok": result.ok, "alarms_firing": firing}
        return 200, payload

    def _complete(self, hint: str | None) -> str | None:
        return self._target.complete(hint) if hint else hint

    def _discard(self, _: dict[str, str], body: dict[str, Any]) -> Answer:
        dlq = resolve_dlq(self.stack, _required(body, "queue"))
        donation = _required(body, "donation")
        removed = actions.discard(self._clients, self.stack, dlq, donation, str(body.get("note") or ""))
        return 200, {"donation_id": donation, "removed_messages": removed}

    def _fix_email(self, _: dict[str, str], body: dict[str, Any]) -> Answer:
        donation = _required(body, "donation")
        removed = actions.fix_email_and_resend(
            self._clients, self.stack, donation, _required(body, "email"), str(body.get("note") or "")
        )
        return 200, {"donation_id": donation, "removed_messages": removed}


def _required(values: dict[str, Any], name: str) -> str:
    value = str(values.get(name) or "").strip()
    if not value:
        raise OpsError(f"{name} is required")
    return value


def runbook_page() -> bytes:
    """RUNBOOK.md as HTML, each ``##`` section with an id (its text, as the alarms' descriptions name it)."""
    from markdown_it import MarkdownIt  # rich's Markdown renderer, already installed with donations-ops

    rendered = MarkdownIt("commonmark").enable("table").render(RUNBOOK.read_text())

    def anchor(found: re.Match[str]) -> str:
        slug = re.sub(r"[^a-z0-9-]+", "-", html.unescape(found.group(1)).lower()).strip("-")
        return f'<h2 id="{slug}">{found.group(1)}</h2>'

    body = re.sub(r"<h2>(.*?)</h2>", anchor, rendered)
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Runbook</title>'
        '<link rel="stylesheet" href="/style.css"></head><body><main class="runbook" id="main">'
        f"{body}</main></body></html>"
    )
    return page.encode()
