"""The local stack: moto server, provider emulators, the pipeline, pollers, alarms and the HTTP front.

Everything listens on 127.0.0.1 and runs in one process (threads) beside moto's server (a child
process), so Ctrl-C stops it all. It stops in dependency order, each part after everything that
calls it (``Stage``): a part stopped early would leave its callers failing loudly until they stop.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from donations.redaction import looks_like_card_number
from donations_ops.alarms import stack_alarms
from donations_ops.queues import queue_counts
from donations_ops.stack_resources import Stack as OpsStack
from donations_ops.stack_resources import discover
from donations_ops.target import Target
from simulator.emulators.sendgrid_emulator import SendGridEmulator
from simulator.emulators.stripe import StripeEmulator
from simulator.emulators.stripe.cards import MAGIC_CARDS
from simulator.emulators.turnstile_emulator import LOCAL_SECRET, LOCAL_SITEKEY, TurnstileEmulator
from simulator.local.alarms import AlarmEvaluator
from simulator.local.config import LocalConfig
from simulator.local.delivery import BatchResult, EventSource, Poller
from simulator.local.front import Front
from simulator.local.metrics import (
    FunctionMetrics,
    FunctionOutput,
    MetricForwarder,
    QueueMetrics,
    running_function,
    set_log_stream,
)
from simulator.local.moto_process import MotoProcess
from simulator.local.pipeline import (
    Pipeline,
    ProviderEndpoints,
    install_receipt_template,
    install_statement_template,
    restricted_stripe_keys,
)
from simulator.local.process import require_free_ports
from simulator.local.readiness import wait_until_ready

log = logging.getLogger("donations.local")

TEST_PAYMENT_METHODS = [
    ("pm_card_visa", "Visa: succeeds"),
    ("pm_card_mastercard", "Mastercard: succeeds"),
    ("pm_card_authenticationRequired", "3-D Secure required"),
    ("pm_card_chargeDeclinedInsufficientFunds", "Declined: insufficient funds"),
    ("pm_card_chargeDeclined", "Declined: generic"),
]
# The Stripe emulator takes any pk_test_ key (the form's Stripe.js stand-in sends it).
EMULATOR_PUBLISHABLE_KEY = "pk_test_local_emulator"
# The renewal schedule and its EventBridge rule (template.yaml): run on demand by POST /_local/pledges/run-schedule.
RENEWAL_SCHEDULE = "ScheduleRenewalsFunction"
RENEWAL_RULE = "ScheduleRenewalsFunctionRenewalRun"

# What Stripe's and SendGrid's keys and Stripe's webhook secrets begin with (docs.stripe.com/keys,
# SendGrid's "API Keys" docs: keys begin "SG."): a path holding one is not printed.
SECRET_PREFIXES = ("sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_", "SG.")

STOP_SECONDS = 3.5
"""How long the requests in flight and the workers get, together, to finish when the stack stops; what is
still busy then is not waited for (the run command's process ends with it)."""

# One of the simulator's own routes: (path segments, request body) -> (status, JSON answer).
LocalRoute = Callable[[list[str], bytes], tuple[int, Any]]


class Stage(IntEnum):
    """When a part stops: the callers before what they call."""

    TRAFFIC = 0
    """The front and the Stripe emulator's webhook deliveries: nothing new comes in; what is in flight ends."""
    WORKERS = 1
    """Queue pollers (the functions), schedules and the alarm ticker (alarms, SNS delivery): they call the rest."""
    OUTPUT = 2
    """The metric forwarder (its last data points reach moto) and the functions' stdout."""
    PROVIDERS = 3
    """The Stripe, SendGrid and Turnstile emulators."""
    AWS = 4
    """moto: last, everything above calls it."""


class LocalStack:
    def __init__(self, config: LocalConfig | None = None, console: Any = None) -> None:
        self.config = config or LocalConfig()
        self.console = console or sys.stdout
        self.stripe: StripeEmulator | None = None
        self.sendgrid: SendGridEmulator | None = None
        self.turnstile: TurnstileEmulator | None = None
        self._closers: list[tuple[Stage, Callable[[], None]]] = []
        self._pollers: list[Poller] = []
        self._workers: list[threading.Thread] = []
        """The threads that call moto and the providers (pollers, schedules, the alarm ticker)."""
        self._stopping = threading.Event()
        self._stop_deadline = 0.0
        self.notifications: list[dict[str, Any]] = []
        self._ops_stack: OpsStack | None = None
        self.parameters: dict[str, str] = {}
        """Template parameters the stack is created with (the receipt template's id, once installed)."""

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> LocalStack:
        started = time.monotonic()
        config = self.config
        require_free_ports(
            {
                "DONATIONS_API_PORT": config.api_port,
                "DONATIONS_MOTO_PORT": config.moto_port,
                "DONATIONS_STRIPE_PORT": config.stripe_port if not config.stripe_api_key else 0,
                "DONATIONS_SENDGRID_PORT": config.sendgrid_port if not config.sendgrid_api_key else 0,
                "DONATIONS_TURNSTILE_PORT": config.turnstile_port if not config.turnstile_secret_key else 0,
            }
        )
        if config.stripe_api_key and not config.stripe_api_key.startswith("sk_test_"):
            raise SystemExit("STRIPE_API_KEY must be a test-mode key (sk_test_...); live keys are refused locally.")
        # AWS is remote: moto gets a process (and a core) of its own, so its work does not slow the functions.
        self.moto = MotoProcess(config.moto_port)
        self._on_stop(Stage.AWS, self.moto.stop)
        self.moto.start()
        self.moto_url = self.moto.url
        providers = self._start_providers()
        self.pipeline = Pipeline(
            providers,
            endpoint_url=self.moto_url,
            stack_name=config.stack_name,
            allowed_origin=f"http://127.0.0.1:{config.api_port}",
            parameters=self.parameters,
            environment=config.environment,
        ).start()
        self._deliver_stripe_webhooks()
        clients = self.pipeline.clients
        self.metrics = MetricForwarder(clients("cloudwatch"))
        self._on_stop(Stage.OUTPUT, self.metrics.close)
        self.output = FunctionOutput(self.metrics, self.console, verbose=config.verbose)
        self._route_function_output()
        self.function_metrics = FunctionMetrics(self.metrics)
        self._inbox_url = self._subscribe_operator_inbox()
        self.alarms = AlarmEvaluator(
            clients("cloudwatch"),
            clients("sns"),
            time_scale=config.time_scale,
            region=clients.region,
            alarm_prefix=config.stack_name,
            read_statistics=self.moto.metric_statistics,
        )
        self.alarms.start_like_aws()
        self.queue_metrics = QueueMetrics(
            clients("sqs"),
            clients("cloudwatch"),
            list(self.pipeline.stack.queues.values()),
            self.moto.queue_metrics,
        )
        self._start_pollers()
        self._start_renewal_schedule()  # its first run before the first alarm tick: a finished run is there
        self._start_ticker()
        self._start_reconciler()
        self._start_growth_notices()
        # Imported now: it loads donations' modules, which read the environment the pipeline has just set.
        from simulator.local.console_api import ConsoleApi, console_origins

        self.ops_target = Target.local_stack(self.moto_url, config.stack_name)
        """How donations-ops reaches this stack (the commands it suggests are written for it)."""
        self.console_api = ConsoleApi(
            clients, config.stack_name, f"{config.stack_name}-", console_origins(config.api_port), self.ops_target
        )
        self.front = Front(config.api_port, self._call_api, self._call_local)
        # A short poll interval: stopping waits for serve_forever to notice.
        threading.Thread(target=self.front.serve_forever, args=(0.05,), name="front", daemon=True).start()
        self._on_stop(Stage.TRAFFIC, lambda: self.front.stop(self._stop_seconds_left()))
        wait_until_ready(self, timeout=config.ready_timeout)  # NotReady: "Ready." only once a charge can succeed
        self.startup_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Stop stage by stage (``Stage``); a stage's parts in the reverse order of their start."""
        self._stopping.set()
        self._stop_deadline = time.monotonic() + STOP_SECONDS
        for poller in self._pollers:
            poller.stop()
        closers = sorted(reversed(self._closers), key=lambda closer: closer[0])  # stable: reversed within a stage
        self._closers.clear()
        for stage, close in closers:
            if stage > Stage.WORKERS and self._workers:
                self._join_workers()
            try:
                close()
            except Exception:
                log.exception("shutdown step failed")
        self._join_workers()

    def _join_workers(self) -> None:
        for worker in self._workers:
            worker.join(timeout=self._stop_seconds_left())
        busy = [worker.name for worker in self._workers if worker.is_alive()]
        self._workers.clear()
        if busy:
            log.warning("still busy after %.1f s, not waited for: %s", STOP_SECONDS, ", ".join(busy))

    def _stop_seconds_left(self) -> float:
        return max(0.0, self._stop_deadline - time.monotonic())

    def _on_stop(self, stage: Stage, close: Callable[[], None]) -> None:
        self._closers.append((stage, close))

    def _start_worker(self, target: Callable[[], None], name: str) -> None:
        worker = threading.Thread(target=target, name=name, daemon=True)
        worker.start()
        self._workers.append(worker)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- parts -----------------------------------------------------------------------------------

    def _start_providers(self) -> ProviderEndpoints:
        config = self.config
        providers = ProviderEndpoints()
        if config.stripe_webhook_secret:
            providers.stripe_webhook_secret = config.stripe_webhook_secret
        if config.stripe_api_key:
            providers.stripe_api_key = config.stripe_api_key  # the real Stripe API, in test mode
        else:
            self.stripe = StripeEmulator(config.stripe_port).start()
            self._on_stop(Stage.PROVIDERS, self.stripe.stop)
            # Its webhook deliveries stop with the traffic, after the front: a delivery the front is answering
            # gets its answer (stopping the deliveries first would cut it off); the emulator keeps the queue.
            self._on_stop(Stage.TRAFFIC, self.stripe.webhooks.stop)
            providers.stripe_api_base = self.stripe.url
            providers.stripe_function_keys = restricted_stripe_keys(self.stripe)
        if config.sendgrid_api_key:
            providers.sendgrid_api_key = config.sendgrid_api_key
        else:
            self.sendgrid = SendGridEmulator(config.sendgrid_port).start()
            self._on_stop(Stage.PROVIDERS, self.sendgrid.stop)
            providers.sendgrid_api_host = self.sendgrid.url
            # The shipped receipt template, installed as a deployer would (README "Receipts"): the outbox
            # shows each receipt rendered. With the real SendGrid, DONATIONS_FN_RECEIPT_TEMPLATE_ID names yours.
            self.parameters["ReceiptTemplateId"] = install_receipt_template(providers)
            self.parameters["StatementTemplateId"] = install_statement_template(providers)
        self._start_turnstile(providers)
        return providers

    def _start_turnstile(self, providers: ProviderEndpoints) -> None:
        """The card-testing CAPTCHA: Cloudflare's with your keys, else its emulator (and widget stand-in)."""
        config = self.config
        if config.turnstile_secret_key and config.turnstile_sitekey:
            providers.turnstile_verify_url = ""  # Cloudflare's siteverify
            providers.turnstile_sitekey, providers.turnstile_secret = (
                config.turnstile_sitekey,
                config.turnstile_secret_key,
            )
            return
        self.turnstile = TurnstileEmulator(config.turnstile_port).start()
        self._on_stop(Stage.PROVIDERS, self.turnstile.stop)
        providers.turnstile_verify_url = f"{self.turnstile.url}/turnstile/v0/siteverify"
        providers.turnstile_script_url = f"{self.turnstile.url}/turnstile/v0/api.js?render=explicit"
        providers.turnstile_sitekey, providers.turnstile_secret = LOCAL_SITEKEY, LOCAL_SECRET

    def _deliver_stripe_webhooks(self) -> None:
        """The emulator posts its events, signed, to our webhook route, as a Stripe endpoint would.

        The endpoint is installed as a deployer installs it: ``donations-ops stripe install-webhook``'s
        code, through the emulator's WebhookEndpoints API, in our API version with the handler's events;
        its new signing secret goes to the webhook function's parameter. Events only start with the first
        donation, after the front is listening; earlier ones would be retried by the emulator anyway.
        (Imported here: donations reads its environment, which the pipeline has just set, when first imported.)
        """
        import stripe

        from donations.payments import STRIPE_API_VERSION
        from donations_ops.stripe_webhook import WEBHOOK_PATH, install_webhook, stack_webhook_target

        if self.stripe is None:
            return  # the real Stripe: `stripe listen` forwards its events (docs/stripe-webhook-setup.md)
        pipeline = self.pipeline
        target = stack_webhook_target(
            pipeline.clients, self.config.stack_name, url=f"http://127.0.0.1:{self.config.api_port}{WEBHOOK_PATH}"
        )
        client = stripe.StripeClient(
            pipeline.providers.stripe_api_key,
            stripe_version=STRIPE_API_VERSION,
            base_addresses={"api": pipeline.providers.stripe_api_base},
        )
        ssm = pipeline.clients("ssm")
        install_webhook(client, ssm, target)
        # What the stack stored now: the start-up checks compare the functions' reading with it.
        stored = ssm.get_parameter(Name=target.secret_parameter, WithDecryption=True)["Parameter"]["Value"]
        pipeline.providers.stripe_webhook_secret = stored

    def _route_function_output(self) -> None:
        """The functions' stdout (JSON logs, EMF metrics) goes through FunctionOutput, as to CloudWatch Logs."""
        previous_stdout, previous_stream = sys.stdout, set_log_stream(self.output)
        sys.stdout = self.output

        def restore() -> None:
            sys.stdout = previous_stdout
            set_log_stream(previous_stream)

        self._on_stop(Stage.OUTPUT, restore)

    def _subscribe_operator_inbox(self) -> str:
        """An SQS queue subscribed to the operator topic: the console reads alarm notifications from it."""
        sqs, sns = self.pipeline.clients("sqs"), self.pipeline.clients("sns")
        url = sqs.create_queue(QueueName=f"{self.config.stack_name}-operator-inbox")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        # What operators receive: the operator topic (the alarm topic is the notifier's).
        sns.subscribe(TopicArn=self.pipeline.stack.topics["OperatorTopic"], Protocol="sqs", Endpoint=arn)
        return str(url)

    def _start_pollers(self) -> None:
        sqs = self.pipeline.clients("sqs")
        for source in self.pipeline.event_sources():
            wrapped = EventSource(**{**source.__dict__, "handler": self._instrumented(source.name, source.handler)})
            poller = Poller(sqs, wrapped, on_batch=self._on_batch)
            poller.start()
            self._pollers.append(poller)
            self._workers.append(poller)

    def _instrumented(self, function_logical_id: str, handler: Any) -> Any:
        spec = self.pipeline.stack.functions[function_logical_id]
        service = spec.environment.get("POWERTOOLS_SERVICE_NAME", function_logical_id)

        def invoke(event: dict[str, Any], context: Any) -> Any:
            started = time.perf_counter()
            failed = True
            try:
                with running_function(function_logical_id, service):
                    result = handler(event, context)
                failed = False
                return result
            finally:
                self.function_metrics.record(spec.name, (time.perf_counter() - started) * 1000, failed)

        return invoke

    def _on_batch(self, source: EventSource, result: BatchResult) -> None:
        if result.failed_ids:
            self.console.write(
                f"{time.strftime('%H:%M:%S')} {source.name:<20} {len(result.failed_ids)} of {result.received} "
                "messages failed; they return after their backoff\n"
            )

    def _start_ticker(self) -> None:
        def tick() -> None:
            while not self._stopping.wait(self.config.tick_seconds):
                self.tick()

        self._start_worker(tick, "alarm-ticker")

    def _start_reconciler(self) -> None:
        """Invoke the ReconcilerFunction every DONATIONS_LOCAL_RECONCILE_SECONDS (default 30), as its Schedule
        event does on AWS (EventBridge is not emulated). 0 turns it off."""
        self._start_schedule("ReconcilerFunction", "ReconcilerFunctionReconcileSchedule", self.config.reconcile_seconds)

    def _start_growth_notices(self) -> None:
        """The notifier's growth notice, every DIGEST_WINDOW_SECONDS of its environment (its window; the
        template's rate(15 minutes), compressed with the alarm periods by DONATIONS_LOCAL_TIME_SCALE)."""
        spec = self.pipeline.stack.functions.get("NotifierFunction")
        if spec is not None:
            window = int(self.pipeline.function_environment().get("DIGEST_WINDOW_SECONDS") or 900)
            self._start_schedule("NotifierFunction", "NotifierFunctionGrowthNotice", window)

    def _start_renewal_schedule(self) -> None:
        """The renewal schedule at its template rate (hourly), compressed with the alarm periods by
        DONATIONS_LOCAL_TIME_SCALE, run once at start: its AWS/Lambda Invocations keep renewal-run-not-finished
        OK as on AWS. It runs on the wall clock; POST /_local/pledges/run-schedule runs it at any time."""
        interval = 3600 / max(self.config.time_scale, 1.0)
        self._start_schedule(RENEWAL_SCHEDULE, RENEWAL_RULE, interval, run_first=True)

    def _start_schedule(self, function: str, rule_logical_id: str, interval: float, *, run_first: bool = False) -> None:
        from simulator.local.events import scheduled_event

        stack = self.pipeline.stack
        if interval <= 0 or function not in stack.functions:
            return
        rule_arn = self._rule_arn(rule_logical_id)
        invoke = self._instrumented(function, lambda event, context: self.pipeline.invoke(function, event, context))

        def run_once() -> None:
            try:
                outcome = invoke(scheduled_event(rule_arn, region=stack.region), None)
            except Exception:
                log.exception("%s run failed", function)
                return
            if outcome and any(outcome.values()):
                self.console.write(f"{time.strftime('%H:%M:%S')} {function:<20} {outcome}\n")

        def run() -> None:
            while not self._stopping.wait(interval):
                run_once()

        if run_first:
            run_once()
        self._start_worker(run, f"{function}-schedule")

    def _rule_arn(self, rule_logical_id: str) -> str:
        """The ARN of one of the template's EventBridge rules, as a scheduled event names it."""
        stack = self.pipeline.stack
        rule = stack.physical_ids.get(rule_logical_id, rule_logical_id)
        return f"arn:aws:events:{stack.region}:{stack.stack_id.split(':')[4]}:rule/{rule}"

    def tick(self) -> None:
        """Sample queue metrics, evaluate alarms, collect notifications (also called by tests)."""
        try:
            self.metrics.flush()  # what the functions reported so far is in CloudWatch before alarms look
            self.queue_metrics.publish()
            for transition in self.alarms.evaluate(stopping=self._stopping):
                self.console.write(
                    f"{time.strftime('%H:%M:%S')} {'ALARM':<20} {transition.alarm_name}: "
                    f"{transition.old_state} -> {transition.new_state}\n"
                )
            if self._stopping.is_set():
                return  # what is left waits for the next start (or is lost with moto's memory)
            self._deliver_alarm_topic()
            self._read_inbox()
        except Exception:
            log.exception("alarm tick failed")

    def _deliver_alarm_topic(self) -> None:
        """The alarm topic's messages to the notifier function (SNS -> Lambda), which relays to operators."""
        for delivery in self.pipeline.sns_deliveries:
            function = self.pipeline.stack.sns_function(delivery.source)
            spec = self.pipeline.stack.functions[function]
            started = time.perf_counter()
            with running_function(function, spec.environment.get("POWERTOOLS_SERVICE_NAME", function)):
                results = delivery.deliver()
            if results:
                self.function_metrics.record(spec.name, (time.perf_counter() - started) * 1000, None in results)

    def _read_inbox(self) -> None:
        sqs = self.pipeline.clients("sqs")
        for _ in range(10):
            messages = sqs.receive_message(QueueUrl=self._inbox_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return
            for message in messages:
                envelope = json.loads(message["Body"])
                self.notifications.append(
                    {
                        "subject": envelope.get("Subject"),
                        "received_at": envelope.get("Timestamp"),
                        "message": json.loads(envelope.get("Message") or "{}"),
                    }
                )
                sqs.delete_message(QueueUrl=self._inbox_url, ReceiptHandle=message["ReceiptHandle"])

    # -- HTTP ------------------------------------------------------------------------------------

    def _call_api(
        self, method: str, path: str, query: str, body: bytes | None, headers: list[tuple[str, str]]
    ) -> tuple[int, dict[str, str], str]:
        found, resource, _ = self.pipeline.api.find(method, path)
        function = found.function_logical_id if found else None
        spec = self.pipeline.stack.functions.get(function) if function else None
        service = spec.environment.get("POWERTOOLS_SERVICE_NAME", function) if spec and function else "api"
        started = time.perf_counter()
        with running_function(function or "api", service):
            answer = self.pipeline.call_api(method, path, body=body, headers=headers, query=query)
        elapsed = (time.perf_counter() - started) * 1000
        if spec:
            self.function_metrics.record(spec.name, elapsed, answer.status >= 500)
        donation = answer.body.get("donation_id", "") if isinstance(answer.body, dict) else ""
        # The path is the client's input: one holding something like a card number or a provider's key is
        # printed as its route (API Gateway's access log logs the route, resourcePath, never the path).
        withheld = looks_like_card_number(path) or any(prefix in path for prefix in SECRET_PREFIXES)
        shown = path if not withheld else (resource.path if resource else "(withheld)")
        self.console.write(
            f"{time.strftime('%H:%M:%S')} {'api':<20} {method} {shown} -> {answer.status} {donation} "
            f"({elapsed:.0f} ms)\n"
        )
        return answer.status, answer.headers, answer.text

    def _call_local(
        self, method: str, path: str, query: str, body: bytes, headers: list[tuple[str, str]]
    ) -> tuple[int, Any]:
        parts = path.strip("/").split("/")[1:]
        # The console's alarms, DLQ tools, donor lookup, report and runbook.
        answer = self.console_api.handle(method, "/".join(parts), query, body, headers)
        if answer is not None:
            return answer
        for route_method, pattern, answer_for in self._local_routes():
            if method == route_method and _matches(pattern, parts):
                return answer_for(parts, body)
        return 404, {"message": "Not Found"}

    def _local_routes(self) -> list[tuple[str, tuple[str, ...], LocalRoute]]:
        """The simulator's own pages under /_local/: (method, path segments with "*" for any one, answer)."""
        return [
            ("GET", ("config",), lambda _parts, _body: (200, self._form_config())),
            ("GET", ("outbox",), lambda _parts, _body: (200, self._outbox())),
            ("GET", ("outbox", "*"), lambda parts, _body: self._outbox_email(parts[1])),
            ("GET", ("openapi.json",), lambda _parts, _body: (200, self._openapi())),
            ("GET", ("status",), lambda _parts, _body: (200, self.status())),
            ("POST", ("payment_intents", "*", "authenticate"), lambda parts, body: self._authenticate(parts[1], body)),
            ("POST", ("pledges", "run-schedule"), lambda _parts, body: self._run_renewal_schedule(body)),
            ("POST", ("statements", "run-schedule"), lambda _parts, body: self._run_statements_schedule(body)),
        ]

    def _form_config(self) -> dict[str, Any]:
        """What the donation form needs to know: which provider (emulator or real) it talks to, and how."""
        return {
            "stripe_emulator": self.stripe is not None,
            "sendgrid_emulator": self.sendgrid is not None,
            "stripe_publishable_key": self.config.stripe_publishable_key
            if self.stripe is None
            else EMULATOR_PUBLISHABLE_KEY,
            "stripe_js_url": f"{self.stripe.url}/v3/" if self.stripe is not None else None,
            "turnstile_sitekey": self.pipeline.providers.turnstile_sitekey,
            "test_payment_methods": [
                {"id": pm, "label": label, "number": MAGIC_CARDS[pm].number} for pm, label in TEST_PAYMENT_METHODS
            ],
        }

    def _outbox(self) -> dict[str, Any]:
        return {"emails": [_listed(e) for e in reversed(self.sendgrid.outbox)] if self.sendgrid else []}

    def _outbox_email(self, message_id: str) -> tuple[int, Any]:
        found = [e for e in self.sendgrid.outbox if e["message_id"] == message_id] if self.sendgrid else []
        return (200, found[0]) if found else (404, {"message": "Not Found"})

    def _openapi(self) -> Any:
        app = self.pipeline.handler("ChargeFunction").app
        return json.loads(app.get_openapi_json_schema(title="Donations API", version="1.0.0"))

    def _authenticate(self, payment_intent: str, body: bytes) -> tuple[int, Any]:
        """The 3-D Secure page's answer, sent to the Stripe emulator (Stripe.js does it with the real Stripe)."""
        if self.stripe is None:
            return 409, {"message": "3-D Secure is completed by Stripe.js against the real Stripe"}
        outcome = json.loads(body or b"{}").get("outcome", "succeed")
        return 200, self.stripe.authenticate(payment_intent, outcome)

    def _run_renewal_schedule(self, body: bytes) -> tuple[int, Any]:
        """A month in seconds: run the renewal schedule as its hourly EventBridge rule would at the time
        given (``{"at": "2027-01-10T06:00:00Z"}``), so the pledges due by then are queued and renewed by
        the renew function's poller, as on AWS. Only the schedule's clock moves; nothing else's."""
        from simulator.local.events import scheduled_event

        at = _scheduled_time(body)
        if isinstance(at, str):
            return 400, {"message": at}
        event = scheduled_event(self._rule_arn(RENEWAL_RULE), region=self.pipeline.stack.region, at=at)
        return 200, {"at": at.isoformat(), **(self._run_schedule_function(event, at) or {})}

    def _run_statements_schedule(self, body: bytes) -> tuple[int, Any]:
        """The January statements run (the StatementsRunRule's input) as of the time given
        (``{"at": "2027-01-15T06:00:00Z"}``: last year's statements); the send-receipt poller sends them.
        Run it again to continue a run cut short, or to see that nothing is left to queue."""
        from donations.statement_run import STATEMENTS_EVENT

        at = _scheduled_time(body)
        if isinstance(at, str):
            return 400, {"message": at}
        event = {"run": STATEMENTS_EVENT, "time": at.isoformat()}
        return 200, {"at": at.isoformat(), **(self._run_schedule_function(event, at) or {})}

    def _run_schedule_function(self, event: dict[str, Any], at: datetime) -> Any:
        invoke = self._instrumented(
            RENEWAL_SCHEDULE, lambda event, context: self.pipeline.invoke(RENEWAL_SCHEDULE, event, context)
        )
        outcome = invoke(event, None)
        self.console.write(f"{time.strftime('%H:%M:%S')} {RENEWAL_SCHEDULE:<20} as of {at.isoformat()}: {outcome}\n")
        return outcome

    def status(self) -> dict[str, Any]:
        """Queue depths and alarm states, read with the operator tool's own queries (donations_ops)."""
        clients = self.pipeline.clients
        if self._ops_stack is None:  # found as donations-ops finds a stack: from CloudFormation
            self._ops_stack = discover(clients, self.config.stack_name)
        queues = []
        for logical_id, queue in sorted(self._ops_stack.queues.items()):
            visible, in_flight, _ = queue_counts(clients("sqs"), queue.url)
            queues.append({"queue": logical_id, "visible": visible, "in_flight": in_flight})
        alarms = [
            {"name": alarm.name, "state": alarm.state, "reason": alarm.reason}
            for alarm in stack_alarms(clients, self._ops_stack)
        ]
        return {"queues": queues, "alarms": alarms, "notifications": list(reversed(self.notifications[-50:]))}

    def urls(self) -> dict[str, str]:
        api = f"http://127.0.0.1:{self.config.api_port}"
        urls = {
            "Donation form": f"{api}/",
            "API": f"{api}/donations",
            "Receipts outbox": f"{api}/outbox",
            "Operator console": f"{api}/console",
            "moto (AWS APIs)": self.moto_url,
        }
        if self.stripe:
            urls["Stripe emulator"] = self.stripe.url
        if self.sendgrid:
            urls["SendGrid emulator"] = self.sendgrid.url
        if self.turnstile:
            urls["Turnstile emulator"] = self.turnstile.url
        return urls


def _scheduled_time(body: bytes) -> datetime | str:
    """The ``at`` of a run-schedule request, in UTC; or what is wrong with it."""
    try:
        at = datetime.fromisoformat(str(json.loads(body or b"{}")["at"]).replace("Z", "+00:00"))
    except (KeyError, ValueError, TypeError) as error:
        return f'give the time to run at as {{"at": "2027-01-10T06:00:00Z"}} ({error})'
    if at.tzinfo is None:
        return "give the time with its zone (Z for UTC)"
    return at.astimezone(UTC)


def _matches(pattern: tuple[str, ...], parts: list[str]) -> bool:
    return len(pattern) == len(parts) and all(want in ("*", part) for want, part in zip(pattern, parts, strict=True))


def _listed(email: dict[str, Any]) -> dict[str, Any]:
    """An outbox entry for the list: the rendered subject, not the bodies (``/_local/outbox/{id}`` has them)."""
    rendered = email.get("rendered")
    summary = {"subject": rendered.get("subject"), "error": rendered.get("error")} if rendered else None
    return {**email, "rendered": summary}
