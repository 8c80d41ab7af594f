"""apply_settings: plugins stopped, reconfigured and started, runtime variables for the next
calls of running environments (in-process plugins; the real thing with Kafka and Consul is in
``tests/integration/test_live_settings.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aliecs_integration.engine.manager import EnvironmentManager
from aliecs_integration.engine.run_numbers import RunNumberStore
from aliecs_integration.host import PluginHost
from aliecs_integration.service.reload import apply_settings
from aliecs_integration.settings.core import Settings
from tests.unit.test_host import MOD, ep

EPS = [ep("core-kafka", f"{MOD}:Recorder"), ep("needs", f"{MOD}:NeedsEndpoint"),
       ep("exp", f"{MOD}:Exporter")]


def settings(**data: Any) -> Settings:
    return Settings.from_dict(data, source="t.yaml", declared_keys=("myEndpoint",))


def test_plugins_follow_the_settings_and_variables_reach_running_environments(
        tmp_path: Path) -> None:
    start = settings(integrationPlugins=["needs"], myEndpoint="h:1",
                     runtimeVars={"kafka_enabled": "false"})
    host = PluginHost(start, entry_points=EPS)
    host.start()
    manager = EnvironmentManager(host, settings_runtime_vars=start.runtime_vars,
                                 run_numbers=RunNumberStore(tmp_path / "rn"))
    env = manager.create(variables={"mine": "1"})
    assert sorted(host.plugin_names()) == ["core-kafka", "needs"]

    # "needs" loses its endpoint setting: stopped, as it would not load at start; "exp" and a
    # name nobody provides are added
    new = settings(integrationPlugins=["needs", "exp", "ghost"],
                   runtimeVars={"kafka_enabled": "true", "mine": "2"})
    report = apply_settings(host, manager, new)
    assert report.stopped == ("needs",) and report.started == ("exp",)
    assert any("setting 'myEndpoint' is missing" in p for p in report.problems)
    assert any("plugin 'ghost' not started" in p for p in report.problems)
    assert sorted(host.plugin_names()) == ["core-kafka", "exp"]
    assert host.call_function("exp.Hello") is not None
    variables = manager.get(env.id).variables
    assert variables["kafka_enabled"] == "true" and variables["mine"] == "1"  # user wins
    assert host.settings is new

    # "exp" leaves: its call function is gone
    report = apply_settings(host, manager, settings(runtimeVars={"kafka_enabled": "true"}))
    assert report.stopped == ("exp",) and report.problems == ()
    assert host.call_function("exp.Hello") is None
    manager.close()
    host.stop(timeout_s=1)
