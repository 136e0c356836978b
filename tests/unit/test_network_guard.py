"""The unit tier's guard: a test marked ``unit`` that reaches for the network fails."""

from __future__ import annotations

import socket

import pytest
from pytest_socket import SocketBlockedError

pytestmark = pytest.mark.unit


@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_opening_a_socket_in_the_unit_tier_fails():
    with pytest.raises(SocketBlockedError):
        socket.create_connection(("127.0.0.1", 9), timeout=0.1)
