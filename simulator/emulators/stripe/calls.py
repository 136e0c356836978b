"""From an HTTP request to an API call the emulator may execute: authentication, routing, form
decoding and the parameter contract. Everything refused here is a validation error: Stripe saves
nothing under the idempotency key for it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from simulator.emulators.serving import Request, Response
from simulator.emulators.stripe import errors, restricted, routes
from simulator.emulators.stripe.auth import authenticate
from simulator.emulators.stripe.clock import Clock
from simulator.emulators.stripe.contract import check_endpoint_params
from simulator.emulators.stripe.idempotency import Scope
from simulator.emulators.stripe.objects import Json, new_request_id
from simulator.emulators.stripe.state import Ctx
from simulator.emulators.stripe.version import DEFAULT_API_VERSION
from simulator.emulators.stripe.wire import FormError, parse_form


@dataclass(frozen=True)
class ApiCall:
    """A request that passed validation, ready to execute."""

    method: str
    path: str
    route: routes.Route
    obj_id: str | None
    params: Json
    ctx: Ctx
    headers: dict[str, str]  # response headers every answer to it carries

    @property
    def scope(self) -> Scope | None:
        """The idempotency scope; None for GETs, which ignore keys (docs.stripe.com/api/idempotent_requests)."""
        if self.method != "POST" or not self.ctx.idempotency_key:
            return None
        return (self.ctx.api_key, self.ctx.idempotency_key)

    def error(self, err: errors.StripeApiError, extra_headers: dict[str, str] | None = None) -> Response:
        body = err.body(self.ctx.request_id, self.ctx.now)
        return Response.json(err.status, body, {**self.headers, **(extra_headers or {})})


def prepare(
    req: Request,
    api_keys: set[str] | None,
    clock: Clock,
    restricted_keys: Mapping[str, Mapping[str, str]] | None = None,
) -> ApiCall | Response:
    """The validated call, or the error answer (never saved under an idempotency key).
    ``restricted_keys``: restricted key -> its permissions (resource -> Read or Write)."""
    restricted_keys = restricted_keys or {}
    request_id, now = new_request_id(), clock.timestamp()
    version = req.header("stripe-version")
    key = req.header("idempotency-key") if req.method == "POST" else None
    headers = {"Request-Id": request_id}
    headers.update({"Stripe-Version": version} if version else {})
    headers.update({"Idempotency-Key": key} if key else {})
    try:
        matched = routes.match(req.method, req.path)
        publishable = matched is not None and matched[0].name in routes.PUBLISHABLE
        api_key = authenticate(req.header("authorization"), api_keys, restricted_keys.keys(), publishable=publishable)
        _check_version(version)
        if matched is None:
            raise errors.invalid(
                f"Unrecognized request URL ({req.method}: {req.path}). Please see https://stripe.com/docs or we "
                "can help at https://support.stripe.com/.",
                status=404,
            )
        route, obj_id = matched
        params = _decode(req)
        if api_key in restricted_keys:
            restricted.check(api_key, route.name, params, restricted_keys[api_key])
        required = routes.PUBLISHABLE.get(route.name)
        # Stripe.js's own parameter (a SetupIntent's client_secret on confirm): not in the server SDK's types.
        browser_only = required if api_key.startswith("pk_") and required not in route.endpoint.spec.fields else None
        enforce_contract(route, {name: value for name, value in params.items() if name != browser_only})
        if api_key.startswith("pk_") and required is not None and not params.get(required):
            raise errors.missing(required)
    except errors.StripeApiError as err:
        logged = err.status != 401  # an unauthenticated request has no account to log it in
        body = err.body(request_id if logged else None, now)
        return Response.json(err.status, body, headers)
    ctx = Ctx(api_key, request_id, key, version, now)
    return ApiCall(req.method, req.path, route, obj_id, params, ctx, headers)


def _check_version(version: str | None) -> None:
    if version is not None and version != DEFAULT_API_VERSION:
        raise errors.invalid(
            f"The Stripe emulator speaks API version {DEFAULT_API_VERSION} only (the version the installed "
            f"stripe SDK pins); this request asked for {version}."
        )


def _decode(req: Request) -> Json:
    raw = req.body.decode("utf-8", errors="replace") if req.method == "POST" else req.query
    try:
        return parse_form(raw)
    except FormError as exc:
        raise errors.invalid(str(exc)) from None


def enforce_contract(route: routes.Route, params: Json) -> None:
    """Refuse what the pinned API version refuses (first violation, as Stripe reports one), then what
    the emulator accepts from Stripe's contract but does not model."""
    violations = check_endpoint_params(route.endpoint, params)
    if violations:
        first = violations[0]
        raise errors.StripeApiError(
            400, "invalid_request_error", first.message, code=first.code, param=first.param, docs=first.docs
        )
    for name in params:
        if name not in route.modelled:
            err = errors.invalid(
                f"`{name}` is a valid parameter of {route.name} in API version {DEFAULT_API_VERSION}, but the "
                "Stripe emulator does not model what it does; teach simulator/emulators/stripe that behaviour "
                "before relying on it.",
                param=name,
                code="emulator_unmodelled_parameter",
            )
            err.error.pop("doc_url")  # no Stripe page documents an emulator limit
            raise err
