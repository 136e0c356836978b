"""The run command's port check: a port a server listens on is refused, naming the variable to change."""

from __future__ import annotations

import socket

import pytest

from simulator.local.process import free_port, require_free_ports

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


def test_the_tests_free_ports_lie_below_the_range_outgoing_connections_take_theirs_from():
    # Given the kernel's ephemeral range, from which every outgoing connection gets its local port
    with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
        first_ephemeral = int(ranges.read().split()[0])

    # When the tests ask for free ports, as each stack they start does
    ports = [free_port() for _ in range(20)]

    # Then none is in that range (a connection opened between the probe and the server's bind cannot take
    # it), they differ, and a server can listen on one
    assert all(port < first_ephemeral for port in ports), ports
    assert len(set(ports)) > 15
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", ports[0]))
        server.listen()
