"""``--metrics-address`` of ``serve`` and ``run``: malformed values and addresses in use give one
error naming the option and the address; the endpoint lives exactly as long as the command."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from prometheus_client.parser import text_string_to_metric_families

from aliecs_integration.cli.main import cli
from aliecs_integration.service.server import ControlServer
from aliecs_integration.settings.core import Settings

SCENARIO = "environments: [{id: a, actions: [DEPLOY, CONFIGURE, START_ACTIVITY]}]\n"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def taken() -> Iterator[str]:
    """HOST:PORT of a socket listening here (so the address is in use)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield f"127.0.0.1:{s.getsockname()[1]}"


def files(tmp_path: Path) -> tuple[str, str]:
    settings, scenario = tmp_path / "s.yaml", tmp_path / "sc.yaml"
    settings.write_text("enableKafka: false\n")
    scenario.write_text(SCENARIO)
    return str(settings), str(scenario)


@pytest.mark.parametrize("command", [["serve"], ["run", "--settings", "s", "--scenario", "x"]])
def test_malformed_address_is_a_usage_error_naming_the_option(command: list[str]) -> None:
    result = invoke(*command, "--metrics-address", "9464")
    assert result.exit_code == 2
    assert "Invalid value for '--metrics-address': '9464': expected HOST:PORT" in result.stderr


def test_run_with_the_address_in_use_fails_before_any_environment(tmp_path: Path,
                                                                   taken: str) -> None:
    settings, scenario = files(tmp_path)
    result = invoke("run", "--settings", settings, "--scenario", scenario, "--run-numbers",
                    str(tmp_path / "rn"), "--metrics-address", taken)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: --metrics-address {taken}: cannot listen: Address already in use (choose "
        "another address, or --metrics-address '' to turn the endpoint off)"]
    assert "START_ACTIVITY" not in result.stdout
    assert not (tmp_path / "rn").exists()


def test_serve_with_the_address_in_use_fails_and_releases_everything(tmp_path: Path,
                                                                     taken: str) -> None:
    settings, _ = files(tmp_path)
    result = invoke("serve", "--settings", settings, "--address", "127.0.0.1:0",
                    "--run-numbers", str(tmp_path / "rn"), "--metrics-address", taken)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: --metrics-address {taken}: cannot listen: Address already in use (choose "
        "another address, or --metrics-address '' to turn the endpoint off)"]
    # the instance lock on the run-number store was released: another serve can start
    server = ControlServer(Settings.from_dict({"enableKafka": False}, source="t"),
                           address="127.0.0.1:0", run_numbers=tmp_path / "rn")
    server.start()
    server.shutdown(drain_timeout_s=1, flush_timeout_s=1, grace_s=0.1)


def test_serve_that_cannot_listen_for_grpc_stops_its_metrics_endpoint(tmp_path: Path,
                                                                       taken: str) -> None:
    from aliecs_integration.service.server import ServeError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        metrics_port = s.getsockname()[1]
    server = ControlServer(Settings.from_dict({"enableKafka": False}, source="t"),
                           address=taken, run_numbers=tmp_path / "rn",
                           metrics_address=f"127.0.0.1:{metrics_port}")
    with pytest.raises(ServeError, match=f"cannot listen on {taken}"):
        server.start()
    with socket.socket() as again:  # nothing listens on the metrics port any more
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", metrics_port))
        again.listen()


def test_run_serves_while_it_runs_and_stops_with_it(tmp_path: Path) -> None:
    settings, scenario = files(tmp_path)
    result = invoke("run", "--settings", settings, "--scenario", scenario, "--run-numbers",
                    str(tmp_path / "rn"), "--metrics-address", "127.0.0.1:0")
    assert result.exit_code == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("metrics on "))
    address = line.split("http://", 1)[1].split("/", 1)[0]
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        host, port = address.rsplit(":", 1)
        probe.connect((host, int(port)))


def test_serve_endpoint_lives_with_the_server(tmp_path: Path) -> None:
    server = ControlServer(Settings.from_dict({"enableKafka": False}, source="t.yaml"),
                           address="127.0.0.1:0", run_numbers=tmp_path / "rn",
                           metrics_address="127.0.0.1:0")
    server.start()
    try:
        assert server.monitoring is not None
        url = server.monitoring.url
        text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    finally:
        server.shutdown(drain_timeout_s=1, flush_timeout_s=1, grace_s=0.1)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("aliecs_active_runs", ())] == 0
    assert samples[("aliecs_environments", (("state", "RUNNING"),))] == 0
    assert samples[("aliecs_plugin_state", (("plugin", "core-kafka"), ("state", "IDLE")))] == 1
    assert samples[("aliecs_settings_source_reachable", ())] == 1
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/healthz", timeout=2)


def test_serve_off_by_empty_value(tmp_path: Path) -> None:
    server = ControlServer(Settings.from_dict({"enableKafka": False}, source="t"),
                           address="127.0.0.1:0", run_numbers=tmp_path / "rn",
                           metrics_address="")
    server.start()
    server.shutdown(drain_timeout_s=1, flush_timeout_s=1, grace_s=0.1)
    assert server.monitoring is None


