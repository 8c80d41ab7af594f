"""run_scenario reports plugin hook failures, and `run` exits 1 because of them (a refused
event is an event lost: the run did not go as expected)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from aliecs_integration.cli.main import cli
from aliecs_integration.hookspecs import hookimpl
from aliecs_integration.host import PluginHost
from aliecs_integration.plugin import Plugin
from aliecs_integration.records import RunEvent
from aliecs_integration.scenario import session


class RefusesRuns(Plugin):
    @hookimpl
    def on_run_sor_eor(self, event: RunEvent) -> None:
        raise RuntimeError("refused by the broker: MSG_SIZE_TOO_LARGE")


def test_run_exits_1_on_plugin_hook_failures(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    class Host(PluginHost):
        def __init__(self, settings: Any) -> None:
            super().__init__(settings, extra_plugins={"refuser": RefusesRuns})

    monkeypatch.setattr(session, "PluginHost", Host)
    settings = tmp_path / "s.yaml"
    settings.write_text("enableKafka: false\n")
    scenario = tmp_path / "sc.yaml"
    scenario.write_text("environments:\n  - id: a\n    actions: [DEPLOY, CONFIGURE, "
                        "START_ACTIVITY, STOP_ACTIVITY, destroy]\n")
    result = CliRunner().invoke(cli, ["run", "--settings", str(settings), "--scenario",
                                      str(scenario), "--run-numbers", str(tmp_path / "rn")])
    assert result.exit_code == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "plugin refuser: " in errors[0] and "hook call(s) failed" in errors[0]
    assert "on_run_sor_eor: refused by the broker: MSG_SIZE_TOO_LARGE" in errors[0]
