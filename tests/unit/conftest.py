"""The fast layer: pure functions only, no DynamoDB Local, no gateway, no browser.

``make test-fast`` runs this folder alone in seconds. The top-level conftest's stack is a
lazy session fixture, so nothing starts unless a test asks for it; here asking is an error
(the fixtures that would start something are replaced by ones that fail), and no test may
open a network connection, so a unit test that quietly needed the stack fails at once
instead of hanging on a socket.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest


def _refuse(what: str) -> None:
    pytest.fail(f"unit tests run without {what}: move this test out of tests/unit", pytrace=False)


@pytest.fixture(scope="session")
def stack() -> Iterator[Any]:
    _refuse("the local stack")
    yield None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _refuse("a browser")
    yield None


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def connect(self: socket.socket, address: Any) -> None:
        raise AssertionError(f"a unit test tried to connect to {address}")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect)
