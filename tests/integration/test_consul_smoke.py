"""Smoke tests against the real dev Consul agent."""

from __future__ import annotations

import threading
from typing import Any

import consul


def test_kv_put_get_delete(consul_client: consul.Consul, topic_prefix: str) -> None:
    key = f"{topic_prefix}/smoke"
    assert consul_client.kv.put(key, "hello") is True
    _index, data = consul_client.kv.get(key)
    assert data is not None
    assert data["Value"] == b"hello"
    assert consul_client.kv.delete(key) is True
    _index, data = consul_client.kv.get(key)
    assert data is None


def test_kv_blocking_query_returns_after_change(
    consul_client: consul.Consul, topic_prefix: str
) -> None:
    key = f"{topic_prefix}/blocking"
    consul_client.kv.put(key, "v1")
    index, data = consul_client.kv.get(key)
    assert data is not None and data["Value"] == b"v1"

    result: dict[str, Any] = {}
    started = threading.Event()

    def watch() -> None:
        started.set()
        try:
            result["response"] = consul_client.kv.get(key, index=index, wait="30s")
        except Exception as exc:  # surfaced by the assertion below
            result["error"] = exc

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    started.wait(5)
    # the blocking query must not return before the change
    thread.join(0.5)
    assert thread.is_alive(), f"blocking query returned early: {result}"

    consul_client.kv.put(key, "v2")
    thread.join(20)
    assert not thread.is_alive(), "blocking query did not return after the change"
    assert "error" not in result, result
    new_index, new_data = result["response"]
    assert new_index > index
    assert new_data is not None and new_data["Value"] == b"v2"
    consul_client.kv.delete(key)
