"""The run command's port check: a port a server listens on is refused, naming the variable to change."""

from __future__ import annotations

import socket

import pytest

from simulator.local.process import require_free_ports

pytestmark = pytest.mark.integration


def test_a_port_with_a_listener_is_refused_and_the_variable_named():
    # Given a server listening on a loopback port (bound as http.server binds, with SO_REUSEADDR)
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        # When the run command checks its ports, Then it stops before starting anything
        with pytest.raises(SystemExit, match=f"Port {port} on 127.0.0.1 is in use.*DONATIONS_API_PORT"):
            require_free_ports({"DONATIONS_API_PORT": port})


def test_a_free_port_and_a_port_left_to_its_default_pass():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    require_free_ports({"DONATIONS_API_PORT": port, "DONATIONS_STRIPE_PORT": 0})
