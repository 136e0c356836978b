"""The account's webhook endpoints (simulator.emulators.stripe.webhook_endpoints serves their API) and
their deliveries: one ``WebhookDispatcher`` per endpoint, each signing with its endpoint's secret and
rendering events in its endpoint's API version (or the account's default)."""

from __future__ import annotations

from collections.abc import Sequence

from simulator.emulators.stripe.objects import Json, copy_json
from simulator.emulators.stripe.version import DEFAULT_API_VERSION
from simulator.emulators.stripe.webhook_settings import DEFAULT_RETRY_SCHEDULE, DEFAULT_TIMEOUT
from simulator.emulators.stripe.webhooks import WebhookDispatcher


class WebhookEndpoints:
    """The account's webhook endpoints and their deliveries. Callers hold the emulator's lock."""

    def __init__(
        self,
        *,
        account_api_version: str = DEFAULT_API_VERSION,
        retry_schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.account_api_version = account_api_version
        """What an endpoint created without ``api_version`` receives (the account's default version)."""
        self.retry_schedule = tuple(retry_schedule)
        self.timeout = timeout
        self.objects: dict[str, Json] = {}
        self.dispatchers: dict[str, WebhookDispatcher] = {}
        self._running = False

    # -- lifecycle (with the emulator) ------------------------------------------------------------
    def start(self) -> None:
        self._running = True
        for dispatcher in self.dispatchers.values():
            dispatcher.start()

    def stop(self) -> None:
        self._running = False
        for dispatcher in self.dispatchers.values():
            dispatcher.stop()

    def clear(self) -> None:
        """Delete every endpoint (like the account's other objects on reset), ending their deliveries."""
        for endpoint_id in list(self.objects):
            self.remove(endpoint_id)

    # -- delivery ---------------------------------------------------------------------------------
    def subscribed(self, event_type: str) -> list[str]:
        return [i for i, e in self.objects.items() if e["status"] == "enabled" and _wants(e, event_type)]

    def submit(self, event: Json) -> None:
        """Queue ``event`` for every enabled endpoint subscribed to its type, in that endpoint's version."""
        for endpoint_id in self.subscribed(str(event["type"])):
            rendered = copy_json(event)
            rendered["api_version"] = self.objects[endpoint_id]["api_version"] or self.account_api_version
            self.dispatchers[endpoint_id].submit(rendered)

    def deliveries(self) -> list[Json]:
        """Every endpoint's delivery log, each entry naming its endpoint and the URL it was sent to."""
        return [
            {**entry, "endpoint": endpoint_id, "url": self.objects[endpoint_id]["url"]}
            for endpoint_id, dispatcher in self.dispatchers.items()
            for entry in dispatcher.deliveries
        ]

    def wait_for(self, endpoint_id: str, n: int, timeout: float = 5.0, *, delivered_only: bool = False) -> list[Json]:
        """Block until that endpoint's log holds ``n`` entries (see ``WebhookDispatcher.wait_for``);
        call without the emulator's lock."""
        return self.dispatchers[endpoint_id].wait_for(n, timeout, delivered_only=delivered_only)

    # -- the API's changes ------------------------------------------------------------------------
    def add(self, endpoint: Json, secret: str) -> None:
        dispatcher = WebhookDispatcher(
            url=endpoint["url"],
            secret=secret,
            retry_schedule=self.retry_schedule,
            timeout=self.timeout,
            enabled_events=endpoint["enabled_events"],
            name=f"stripe-emulator-{endpoint['id']}",
        )
        self.objects[endpoint["id"]] = endpoint
        self.dispatchers[endpoint["id"]] = dispatcher
        if self._running:
            dispatcher.start()

    def remove(self, endpoint_id: str) -> None:
        self.objects.pop(endpoint_id)
        dispatcher = self.dispatchers.pop(endpoint_id)
        dispatcher.configure(None)  # no further attempts, as Stripe stops retrying for a deleted endpoint
        dispatcher.stop()


def _wants(endpoint: Json, event_type: str) -> bool:
    enabled = endpoint["enabled_events"]
    return "*" in enabled or event_type in enabled
