"""Free TCP ports for the tests' servers, below the kernel's range of ephemeral ports.

A port from `bind(0)` comes from the range the kernel also takes the source ports of outgoing
connections from. Between the moment a test picks such a port and the moment its server (a
container, a service, stripe-mock) binds it, any connection on the machine may take it: CI once
failed with `bind: address already in use` on a port picked that way. A port below that range
is only ever taken by a bind, so it stays free until the test uses it.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
SPAN = range(20_000, 25_000)
"""Where ports are picked: no fixed port of ours lies here (PostgreSQL 15432 and 25432, Kafka
19092, the other test and bench infra 28000-30999)."""


def free_port() -> int:
    """A port nothing is bound to on any address, outside the ephemeral range (or, on a machine
    whose ephemeral range covers `SPAN`, one the kernel picks)."""
    low = _ephemeral_low()
    candidates = [port for port in SPAN if port < low]
    for port in random.sample(candidates, k=min(200, len(candidates))):
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))  # a wildcard bind fails where any address holds the port
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ephemeral_low() -> int:
    try:
        return int(EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default
