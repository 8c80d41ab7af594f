"""Unit tests of aliecs_integration.monitoring.endpoint: addresses, /metrics and /healthz over
a real socket, bind errors, and that stop releases the port and the thread."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aliecs_integration.host import PluginStatus
from aliecs_integration.monitoring.endpoint import (
    EndpointError,
    MonitoringEndpoint,
    parse_address,
    start_monitoring,
)
from aliecs_integration.publish.metrics import Metrics
from aliecs_integration.settings.watch import WatchStatus

from .fakes import FakeEnvironments, FakeHost


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def endpoint(host: FakeHost | None = None, watch: WatchStatus | None = None,
             address: str = "127.0.0.1:0") -> MonitoringEndpoint:
    status = watch or WatchStatus("settings.yaml")
    started = start_monitoring(address, host or FakeHost(), FakeEnvironments({"STANDBY": 1}),
                               lambda: status)
    assert started is not None
    return started


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)),
    (" localhost:0 ", ("localhost", 0)),
    ("[::1]:9464", ("::1", 9464)),
    ("", None),
    ("off", None),
])
def test_parse_address(text: str, expected: tuple[str, int] | None) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("9464", "expected HOST:PORT"),
    (":9464", "expected HOST:PORT"),
    ("host:port", "port 'port' is not a number"),
    ("host:70000", "from 0 to 65535"),
    ("::1:9464", "IPv6 address in brackets"),
])
def test_malformed_addresses_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_address(text)


def test_off_starts_nothing() -> None:
    assert start_monitoring("", FakeHost(), None, lambda: WatchStatus("f")) is None
    assert start_monitoring(None, FakeHost(), None, lambda: WatchStatus("f")) is None


def test_metrics_and_healthz_over_http() -> None:
    host = FakeHost(plugins=[PluginStatus("core-kafka", "Core", True, state="READY")])
    with endpoint(host) as ep:
        status, content_type, text = get(f"{ep.url}/metrics")
        assert status == 200 and content_type.startswith("text/plain")
        names = {f.name for f in text_string_to_metric_families(text)}
        assert {"aliecs_plugin_loaded", "aliecs_environments", "aliecs_active_runs"} <= names
        status, content_type, text = get(f"{ep.url}/healthz")
        assert (status, content_type) == (200, "application/json")
        assert json.loads(text)["status"] == "ok"
        assert get(f"{ep.url}/nothing")[0] == 404


def test_openmetrics_when_the_scraper_asks_for_it() -> None:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om

    published = Metrics(sample_every=1)
    published.count_published("aliecs.run")
    published.record_sent("aliecs.run", 0.01)
    with endpoint(FakeHost(snapshots={"core-kafka": published.snapshot()})) as ep:
        request = urllib.request.Request(f"{ep.url}/metrics",
                                         headers={"Accept": "application/openmetrics-text"})
        with urllib.request.urlopen(request, timeout=10) as response:
            content_type, text = response.headers["Content-Type"], response.read().decode()
    assert content_type.startswith("application/openmetrics-text")
    names = {f.name for f in parse_om(text)}
    assert {"aliecs_settings_reloads", "aliecs_active_runs", "aliecs_kafka_messages_acknowledged",
            "aliecs_kafka_delivery_latency_seconds",
            "aliecs_kafka_delivery_latency_recent_seconds"} <= names


def test_healthz_503_names_the_unhealthy_part() -> None:
    host = FakeHost(plugins=[PluginStatus("core-kafka", "Core", True, state="TRANSIENT_FAILURE")])
    watch = WatchStatus("consul://c/k", reachable=False, last_error="refused")
    with endpoint(host, watch) as ep:
        status, _, text = get(f"{ep.url}/healthz")
    body = json.loads(text)
    assert status == 503
    assert body["producer"] == {"ok": False, "plugins": {"core-kafka": "TRANSIENT_FAILURE"}}
    assert body["settings"]["ok"] is False
    assert len(body["problems"]) == 2


def test_a_failing_source_gives_500_and_the_endpoint_keeps_serving() -> None:
    class Broken(FakeHost):
        def metrics(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("host is gone")

    with endpoint(Broken()) as ep:
        status, _, text = get(f"{ep.url}/metrics")
        assert status == 500 and "host is gone" in text
        assert get(f"{ep.url}/healthz")[0] == 200


def test_address_in_use_names_the_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(EndpointError) as caught:
            endpoint(address=address)
    assert str(caught.value) == f"cannot serve metrics on {address}: Address already in use"
    assert caught.value.address == address


def test_unknown_host_names_the_host() -> None:
    with pytest.raises(EndpointError, match=r"cannot serve metrics on no-such-host\.invalid:0: "
                                            r"unknown host 'no-such-host\.invalid'"):
        endpoint(address="no-such-host.invalid:0")


def test_stop_releases_the_port_and_the_thread() -> None:
    before = {t.ident for t in threading.enumerate()}
    ep = endpoint()
    port = int(ep.address.rsplit(":", 1)[1])
    assert get(f"{ep.url}/healthz")[0] == 200
    ep.stop()
    ep.stop()  # idempotent
    assert {t.ident for t in threading.enumerate() if t.name == "metrics-http"} <= before
    with socket.socket() as again:  # nothing listens there any more (TIME_WAIT aside)
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
        again.listen()
