"""The test bed keeps the pod bridge while another bed still listens on its gateway."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.testbed import network

# /proc/net/tcp as the kernel writes it: a Kafka pod listener on 10.244.0.1:36377 (LISTEN), a client
# connection from the gateway (ESTABLISHED, not a listener) and a loopback listener.
SAMPLE = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100F40A:8E19 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100F40A:C350 0200F40A:1F90 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
   2: 0100007F:BDED 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0
"""


# /proc/net/tcp6 with a JVM's listener on the gateway, IPv4-mapped.
# (columns after the state cut here.)
SAMPLE6 = """  sl  local_address                         remote_address                        st
   2: 0000000000000000FFFF00000100F40A:8E19 00000000000000000000000000000000:0000 0A 00000000:00000000
   3: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000
"""


def test_only_listeners_on_the_gateway_count() -> None:
    assert network.gateway_listeners(SAMPLE) == [36377]
    assert network.gateway_listeners(SAMPLE6) == [36377]
    assert network.gateway_listeners(SAMPLE.splitlines()[0]) == []


def test_a_loopback_listener_of_this_machine_is_not_a_gateway_listener() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert port not in network.gateway_listeners(Path("/proc/net/tcp").read_text())
