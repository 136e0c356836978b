"""Shared emulator plumbing: wire-format parsing, fault selection, lifecycle, control API, CLI."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from simulator.emulators.control import EmulatorControl
from simulator.emulators.faults import FaultInjector
from simulator.emulators.sendgrid_emulator import SendGridEmulator
from simulator.emulators.serving import EmulatorRequestHandler
from simulator.emulators.stripe import (
    FormError,
    SearchQueryError,
    StripeEmulator,
    clause_matches,
    parse_form,
    parse_search,
)

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


# -- wire formats ----------------------------------------------------------------------
def test_parse_form_builds_nested_dicts_and_lists() -> None:
    body = (
        "amount=2500&metadata[donation_id]=don_1&metadata[note]=&expand[0]=payment_method&expand[1]=customer"
        "&items[0][price]=p1&items[1][price]=p2&payment_method_types[]=card&confirm=true"
    )
    assert parse_form(body) == {
        "amount": "2500",
        "metadata": {"donation_id": "don_1", "note": ""},
        "expand": ["payment_method", "customer"],
        "items": [{"price": "p1"}, {"price": "p2"}],
        "payment_method_types": ["card"],
        "confirm": "true",
    }


def test_parse_form_rejects_a_key_used_as_value_and_hash() -> None:
    with pytest.raises(FormError):
        parse_form("metadata=x&metadata[a]=b")


def test_search_query_clauses() -> None:
    clauses, joiner = parse_search("metadata['donation_id']:'don 1' AND status:\"succeeded\" AND amount>=100")
    assert joiner == "AND"
    assert [(c.field, c.op, c.value) for c in clauses] == [
        ("metadata.donation_id", ":", "don 1"),
        ("status", ":", "succeeded"),
        ("amount", ">=", 100.0),
    ]
    assert clause_matches(clauses[2], 150) and not clause_matches(clauses[2], 99)
    with pytest.raises(SearchQueryError):
        parse_search("status:'a' AND status:'b' OR status:'c'")
    with pytest.raises(SearchQueryError):
        parse_search("status:succeeded")  # strings must be quoted


# -- fault selection -----------------------------------------------------------------------
def test_times_fires_exactly_n_times_under_concurrency() -> None:
    faults = FaultInjector()
    faults.add("http_error", times=5)
    fired: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            n = len(faults.pick("POST", "/v1/x"))
            with lock:
                fired.append(n)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sum(fired) == 5


def test_rate_faults_replay_with_the_same_seed() -> None:
    def run(seed: int) -> list[bool]:
        faults = FaultInjector()
        faults.seed(seed)
        faults.add("reset", rate=0.3)
        return [bool(faults.pick("GET", "/")) for _ in range(200)]

    first = run(42)
    assert first == run(42)
    assert first != run(43)
    assert 30 < sum(first) < 90  # roughly 30 %


def test_filters_and_one_terminal_fault_per_request() -> None:
    faults = FaultInjector()
    faults.add("latency", latency_ms=5)
    faults.add("http_error", method="POST", path_prefix="/v1/payment_intents")
    faults.add("rate_limit")
    assert [f.kind for f in faults.pick("POST", "/v1/payment_intents/pi_1/confirm")] == ["latency", "http_error"]
    assert [f.kind for f in faults.pick("GET", "/v1/payment_intents/pi_1")] == ["latency", "rate_limit"]


@pytest.mark.parametrize(
    "kwargs",
    [{"kind": "nope"}, {"kind": "reset", "times": 0}, {"kind": "reset", "rate": 2.0}, {"kind": "reset", "phase": "x"}],
)
def test_invalid_faults_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FaultInjector().add(**kwargs)  # type: ignore[arg-type]


# -- lifecycle ---------------------------------------------------------------------------
def test_stop_frees_the_port_and_drops_keep_alive_connections() -> None:
    emu = StripeEmulator().start()
    port = emu.port
    session = requests.Session()
    assert session.get(f"{emu.url}/_emulator/health", timeout=5).json()["ok"] is True

    emu.stop()

    with pytest.raises(requests.ConnectionError):
        session.get(f"http://127.0.0.1:{port}/_emulator/health", timeout=5)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
    with StripeEmulator(port) as again:
        assert again.url == f"http://127.0.0.1:{port}"


def test_stop_releases_requests_held_by_a_timeout_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    held = threading.Event()
    original_hold = EmulatorRequestHandler.hold

    def hold(self: EmulatorRequestHandler, seconds: float) -> None:
        held.set()  # the request is now parked inside the emulator
        original_hold(self, seconds)

    monkeypatch.setattr(EmulatorRequestHandler, "hold", hold)
    emu = SendGridEmulator().start()
    emu.faults.add("timeout", latency_ms=60_000)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            requests.post(f"{emu.url}/v3/mail/send", json={}, timeout=30)
        except requests.RequestException as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert held.wait(timeout=5)
    started = time.monotonic()
    emu.stop()
    caller.join(timeout=10)
    assert not caller.is_alive()
    assert time.monotonic() - started < 5
    assert len(errors) == 1


def test_route_latency_uses_the_longest_matching_prefix() -> None:
    with StripeEmulator() as emu:
        emu.set_latency("GET /v1", 300)
        emu.set_latency("GET /v1/payment_intents", 0)
        headers = {"Authorization": "Bearer sk_test_x"}
        started = time.monotonic()
        requests.get(f"{emu.url}/v1/payment_intents/pi_x", headers=headers, timeout=5)
        fast = time.monotonic() - started
        started = time.monotonic()
        requests.get(f"{emu.url}/v1/customers/cus_x", headers=headers, timeout=5)
        slow = time.monotonic() - started
    assert slow >= 0.3
    assert fast < 0.3


def test_requests_are_counted_per_second_and_route_as_they_arrive_with_an_optional_label() -> None:
    # Given an emulator whose per-second log labels each request by its Idempotency-Key's prefix
    with StripeEmulator() as emu:
        emu.per_second_label = lambda req: (req.header("idempotency-key") or "none").split("-")[0]
        headers = {"Authorization": "Bearer sk_test_x"}
        before = int(time.time())

        # When three requests arrive, one of them refused (an unknown object), two labelled alike
        for key in ("renewal-1", "renewal-2"):
            requests.post(f"{emu.url}/v1/customers", headers={**headers, "Idempotency-Key": key}, timeout=5)
        requests.get(f"{emu.url}/v1/customers/cus_missing", headers=headers, timeout=5)
        after = int(time.time())

        # Then each is counted in the second it arrived, refused ones too, per route and label
        seconds = emu.requests_per_second()
    assert set(seconds) <= set(range(before, after + 1))
    totals: dict[str, int] = {}
    for counts in seconds.values():
        for name, count in counts.items():
            totals[name] = totals.get(name, 0) + count
    assert totals == {"POST /v1/customers renewal": 2, "GET /v1/customers/{id} none": 1}


def test_control_api_seed_remove_and_errors() -> None:
    with SendGridEmulator() as emu:
        control = EmulatorControl(emu.url)
        control.seed(7)
        fault_id = control.add_fault("http_error", status=503, method="post")
        assert control.faults()[0]["method"] == "POST"
        control.remove_fault(fault_id)
        assert control.faults() == []
        assert control.healthy()
        resp = requests.post(f"{emu.url}/_emulator/latency", data=b"[]", timeout=5)
        assert resp.status_code == 400


# -- CLI ---------------------------------------------------------------------------------
def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise TimeoutError("emulator printed nothing")
    return proc.stdout.readline()


@pytest.mark.parametrize(
    ("module", "sig"),
    [("simulator.emulators.stripe", signal.SIGTERM), ("simulator.emulators.sendgrid_emulator", signal.SIGINT)],
)
def test_cli_serves_until_signalled(module: str, sig: signal.Signals) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(  # noqa: S603 (fixed argv)
        [sys.executable, "-m", module, "--port", "0", "--seed", "1"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _read_line(proc, timeout=10)
        url = line.rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:")
        assert EmulatorControl(url).healthy()
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)
    assert proc.returncode == 0
    assert stderr == ""
