"""Unit tests of aliecs_integration.monitoring.health: which plugin states and settings watch
states are healthy, and what the body says."""

from __future__ import annotations

from aliecs_integration.host import PluginStatus
from aliecs_integration.monitoring.health import check_health
from aliecs_integration.settings.watch import WatchStatus

OK_WATCH = WatchStatus("consul://c/key")


def plugin(name: str, state: str, loaded: bool = True) -> PluginStatus:
    return PluginStatus(name, name, loaded, state=state)


def test_connected_producers_and_reachable_source_are_healthy() -> None:
    health = check_health([plugin("core-kafka", "READY"), plugin("kafka", "READY"),
                           plugin("trg", "UNKNOWN")], OK_WATCH)
    assert health.healthy
    body = health.as_dict()
    assert body["status"] == "ok" and body["problems"] == []
    assert body["producer"] == {"ok": True, "plugins": {"core-kafka": "READY", "kafka": "READY"}}
    assert body["settings"]["ok"] is True


def test_producing_off_is_healthy() -> None:
    assert check_health([plugin("core-kafka", "IDLE")], OK_WATCH).healthy


def test_each_unconnected_state_is_unhealthy_and_named() -> None:
    for state in ("CONNECTING", "TRANSIENT_FAILURE", "SHUTDOWN"):
        health = check_health([plugin("core-kafka", state), plugin("dcs", "TRANSIENT_FAILURE",
                                                                   loaded=False)], OK_WATCH)
        assert not health.healthy
        assert health.problems == (
            f"producer of plugin core-kafka is not connected (state {state})",)
        body = health.as_dict()
        assert body["status"] == "unhealthy" and body["producer"]["ok"] is False
        assert body["settings"]["ok"] is True


def test_unreachable_settings_source_is_unhealthy_with_its_error() -> None:
    watch = WatchStatus("consul://c/key", reachable=False, watch_errors=4,
                        last_error="connection refused")
    health = check_health([plugin("core-kafka", "READY")], watch)
    assert health.problems == (
        "settings source consul://c/key is not reachable: connection refused",)
    body = health.as_dict()
    assert body["producer"]["ok"] is True
    assert body["settings"] == {"ok": False, "source": "consul://c/key",
                                "last_error": "connection refused"}
