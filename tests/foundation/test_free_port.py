"""sandbox.proc.free_port: the ports of one stack are distinct even when the kernel repeats itself."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from sandbox import proc


class RepeatingSocket:
    """Stands in for a socket whose bind(port 0) gets the same ports the kernel handed out before."""

    ports = iter(())

    def __init__(self, *args: Any) -> None:
        self.port = next(RepeatingSocket.ports)

    def __enter__(self) -> RepeatingSocket:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def bind(self, address: tuple[str, int]) -> None:
        return None

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)


def test_a_port_the_kernel_hands_out_twice_is_not_given_to_two_services(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chaos seed 111: Azurite got one port for its Blob and its Table service and died at start."""
    monkeypatch.setattr(proc, "_HANDED_OUT", set(), raising=False)
    RepeatingSocket.ports = iter([41001, 41001, 41001, 41002])
    monkeypatch.setattr(socket, "socket", RepeatingSocket)
    assert [proc.free_port(), proc.free_port()] == [41001, 41002]


def test_free_ports_are_real_and_distinct() -> None:
    ports = [proc.free_port() for _ in range(50)]
    assert len(set(ports)) == 50 and all(0 < p < 65536 for p in ports)
