"""haggle_lab.testing.ports: a test's server port is not one the kernel hands out to connections."""

from __future__ import annotations

import socket

import pytest

from haggle_lab.testing import ports


def test_a_free_port_is_below_the_ephemeral_range_and_can_be_bound() -> None:
    low = ports._ephemeral_low()
    picked = {ports.free_port() for _ in range(20)}
    assert all(port in ports.SPAN and port < low for port in picked)
    assert len(picked) > 1, "picked at random: two tests at once rarely share one"
    port = picked.pop()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        assert ports.free_port() != port


def test_a_port_in_use_is_not_picked(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", ports.SPAN.start))
        only_held = range(ports.SPAN.start, ports.SPAN.start + 2)
        monkeypatch.setattr(ports, "SPAN", only_held)
        assert {ports.free_port() for _ in range(10)} == {ports.SPAN.start + 1}
