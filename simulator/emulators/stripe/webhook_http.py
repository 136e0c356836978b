"""One signed webhook POST, with its outcome classified the way the delivery log records it."""

from __future__ import annotations

import contextlib
import http.client
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from simulator.emulators.stripe.signing import CONTENT_TYPE, USER_AGENT, sign_payload

_MAX_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Outcome:
    status: int | str  # HTTP status, or "error:<kind>"
    signed_at: int

    @property
    def ok(self) -> bool:
        return isinstance(self.status, int) and 200 <= self.status < 300


def post_signed(
    url: str,
    payload: bytes,
    secret: str,
    timeout: float,
    *,
    on_connect: Callable[[http.client.HTTPConnection], None] | None = None,
    on_close: Callable[[http.client.HTTPConnection], None] | None = None,
) -> Outcome:
    """POST ``payload`` signed with a fresh timestamp. ``on_connect`` sees the open connection (so a
    stopping dispatcher can abort it; it may raise ConnectionAbortedError), ``on_close`` its end."""
    signed_at = int(time.time())
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(parts.hostname or "", parts.port, timeout=timeout)
    headers = {
        "Content-Type": CONTENT_TYPE,
        "User-Agent": USER_AGENT,
        "Stripe-Signature": sign_payload(payload, secret, signed_at),
        "Accept": "*/*; q=0.5, application/xml",
        "Cache-Control": "no-cache",
        "Connection": "close",
    }
    try:
        conn.connect()
        if on_connect is not None:
            on_connect(conn)
        conn.request("POST", path, body=payload, headers=headers)
        resp = conn.getresponse()
        resp.read(_MAX_RESPONSE_BYTES)
        status: int | str = resp.status
    except TimeoutError:
        status = "error:timeout"
    except ConnectionRefusedError:
        status = "error:connection_refused"
    except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):  # incl. RemoteDisconnected
        status = "error:connection_reset"
    except http.client.HTTPException:
        status = "error:bad_response"
    except OSError:
        status = "error:connection"
    finally:
        conn.close()
        if on_close is not None:
            on_close(conn)
    return Outcome(status, signed_at)


def abort(conn: http.client.HTTPConnection) -> None:
    """Cut an in-flight request short (its reader sees a reset)."""
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
