"""The example third-party plugin, pip-installed into the venv like any distribution: the host
loads it only when `integrationPlugins` names it, and it logs every SOR/EOR moment."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from aliecs_integration.cli.main import cli
from aliecs_integration.engine.manager import EnvironmentManager
from aliecs_integration.engine.run_numbers import RunNumberStore
from aliecs_integration.host import PluginHost, PluginStatus
from aliecs_integration.settings.core import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "third_party_plugin"
DIST = "aliecs-sorlog"


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, check=False, timeout=300)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """pip install (not editable) from a copy, so no build output lands in the repo."""
    source = tmp_path_factory.mktemp("sorlog") / "third_party_plugin"
    shutil.copytree(EXAMPLE, source)
    result = pip("install", "--no-deps", "--no-build-isolation", str(source))
    assert result.returncode == 0, result.stdout + result.stderr
    importlib.invalidate_caches()
    try:
        yield
    finally:
        pip("uninstall", "-y", DIST)
        importlib.invalidate_caches()


def status(host: PluginHost, name: str) -> PluginStatus:
    return next(s for s in host.list_plugins() if s.name == name)


def host_for(data: dict[str, object]) -> PluginHost:
    host = PluginHost(Settings.from_dict({"enableKafka": False, **data}, source="test"))
    host.start()
    return host


def test_not_loaded_unless_named(installed: None, tmp_path: Path) -> None:
    host = host_for({"sorlogPath": str(tmp_path / "sor.jsonl")})
    try:
        sorlog = status(host, "sorlog")
        assert not sorlog.loaded
        assert sorlog.reason == "not named in integrationPlugins"
        assert sorlog.origin == "aliecs-sorlog==0.1.0:aliecs_sorlog:SorLogPlugin"
        assert "sorlog" not in host.plugin_names()
    finally:
        host.stop()


def test_named_without_its_path_setting_is_refused(installed: None) -> None:
    host = host_for({"integrationPlugins": ["sorlog"]})
    try:
        sorlog = status(host, "sorlog")
        assert not sorlog.loaded
        assert sorlog.reason == "setting 'sorlogPath' is missing (needed by plugin 'sorlog')"
    finally:
        host.stop()


def test_named_it_loads_and_logs_every_sor_and_eor(installed: None, tmp_path: Path) -> None:
    log = tmp_path / "logs" / "sor.jsonl"
    host = host_for({"integrationPlugins": ["sorlog"], "sorlogPath": str(log)})
    manager = EnvironmentManager(host, settings_runtime_vars={},
                                 run_numbers=RunNumberStore(tmp_path / "rn"))
    try:
        sorlog = status(host, "sorlog")
        assert (sorlog.loaded, sorlog.pretty_name, sorlog.endpoint, sorlog.state) == (
            True, "SOR/EOR JSON-lines log", str(log), "READY")
        env = manager.create(detectors=["ITS"]).id
        for transition in ("DEPLOY", "CONFIGURE", "START_ACTIVITY", "STOP_ACTIVITY",
                           "START_ACTIVITY", "GO_ERROR"):
            manager.transition(env, transition)
        manager.destroy(env)
    finally:
        manager.close()
        host.stop()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(x["moment"], x["transition"], x["status"], x["runNumber"]) for x in lines] == [
        ("SOR", "START_ACTIVITY", "STARTED", 1),
        ("SOR", "START_ACTIVITY", "DONE_OK", 1),
        ("EOR", "STOP_ACTIVITY", "STARTED", 1),
        ("EOR", "STOP_ACTIVITY", "DONE_OK", 1),
        ("SOR", "START_ACTIVITY", "STARTED", 2),
        ("SOR", "START_ACTIVITY", "DONE_OK", 2),
        ("EOR", "GO_ERROR", "STARTED", 2),
        ("EOR", "GO_ERROR", "DONE_OK", 2),
    ]
    assert {x["environmentId"] for x in lines} == {env}
    assert all(isinstance(x["timestampMs"], int) and x["timestampMs"] > 0 for x in lines)


def test_plugins_command_lists_it(installed: None, tmp_path: Path) -> None:
    settings = tmp_path / "s.yaml"
    settings.write_text(f"enableKafka: false\nintegrationPlugins: [sorlog]\n"
                        f"sorlogPath: {tmp_path / 'sor.jsonl'}\n")
    result = CliRunner().invoke(cli, ["plugins", "--settings", str(settings), "--wait", "0"])
    assert result.exit_code == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("sorlog "))
    assert "SOR/EOR JSON-lines log" in row and "yes" in row and "READY" in row
    assert "aliecs-sorlog==0.1.0" in row
