"""The Stripe.js stand-in the emulator serves under ``/v3/``, in place of https://js.stripe.com/v3/.

``stripejs/stripe.js`` is the script a page loads (it names the Stripe.js reference page each call
follows); ``payment-element.html`` is the Payment Element's frame and ``authorize.html`` the 3-D Secure
challenge ``stripe.handleNextAction`` shows. Both frames call this emulator from its own origin, as
Stripe.js's frames call Stripe's, so the page needs no CORS and never sees a card number.
"""

from __future__ import annotations

from pathlib import Path

from simulator.emulators.serving import Request, Response

FILES = Path(__file__).with_name("stripejs")
_SERVED = {
    "/v3": ("stripe.js", "text/javascript; charset=utf-8"),
    "/v3/": ("stripe.js", "text/javascript; charset=utf-8"),
    "/v3/elements/payment": ("payment-element.html", "text/html; charset=utf-8"),
    "/v3/authorize": ("authorize.html", "text/html; charset=utf-8"),
}


def stand_in(req: Request) -> Response | None:
    """The stand-in's file for ``GET /v3/...``, or None for any other request."""
    served = _SERVED.get(req.path) if req.method == "GET" else None
    if served is None:
        return None
    name, content_type = served
    return Response(200, (FILES / name).read_bytes(), {"Content-Type": content_type, "Cache-Control": "no-store"})
