"""Shared pytest configuration. Server fixtures live in tests/servers.py."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.servers"]

CONSUL_CLIENT_ENV = ("CONSUL_HTTP_TOKEN", "CONSUL_CACERT", "CONSUL_CLIENT_CERT",
                     "CONSUL_CLIENT_KEY")


@pytest.fixture(autouse=True)
def _no_consul_client_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's shell may set Consul's client variables (token, CA, client certificate):
    every test starts without them; tests about them set their own."""
    for name in CONSUL_CLIENT_ENV:
        monkeypatch.delenv(name, raising=False)
