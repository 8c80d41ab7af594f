"""The client commands against an in-process serve (producing off): output and exit codes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from aliecs_integration.cli.main import cli
from aliecs_integration.service.server import ControlServer
from aliecs_integration.settings.core import Settings


@pytest.fixture
def address(tmp_path: Path) -> Iterator[str]:
    settings = Settings.from_dict({"enableKafka": False}, source="test")
    server = ControlServer(settings, address="127.0.0.1:0", run_numbers=tmp_path / "rn")
    server.start()
    yield f"127.0.0.1:{server.port}"
    server.shutdown(drain_timeout_s=5, flush_timeout_s=1, grace_s=0.5)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_env_commands(address: str) -> None:
    created = run("env", "create", "--server", address, "-w", "default", "--detectors", "ITS,TPC",
                  "--var", "purpose=unit", "--user", "ann")
    assert created.exit_code == 0, created.output
    match = re.fullmatch(r"environment (\w{12}) created: CONFIGURED \(workflow default, "
                         r"detectors ITS,TPC\)\n", created.stdout)
    assert match, created.stdout
    env_id = match[1]
    started = run("env", "control", "--server", address, env_id, "start_activity")
    assert started.exit_code == 0 and re.match(
        rf"environment {env_id}: START_ACTIVITY -> RUNNING, run 1 \(\d+ ms\)", started.stdout)
    listed = run("env", "list", "--server", address)
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["ID", "WORKFLOW", "STATE", "RUN", "DETECTORS", "AGE",
                                "TRANSITION"]
    assert lines[1].split()[:5] == [env_id, "default", "RUNNING", "1", "ITS,TPC"]
    shown = run("env", "show", "--server", address, env_id)
    assert "state:       RUNNING" in shown.stdout and "  purpose = unit" in shown.stdout
    tasks = run("tasks", "--server", address, env_id)
    assert tasks.exit_code == 0 and re.search(r"^default\s+ACTIVE\s+RUNNING", tasks.stdout,
                                              re.MULTILINE)
    from aliecs_integration.service.client import ControlClient

    with ControlClient(address) as client:
        task_ids = [t.taskId for t in client.tasks()]
    if task_ids:
        assert all(task_id in tasks.stdout for task_id in task_ids)
    else:
        assert "no tasks" in tasks.stdout
    templates = run("templates", "--server", address)
    assert templates.stdout.splitlines()[1].split()[:2] == ["default", "builtin"]

    refused = run("env", "control", "--server", address, env_id, "CONFIGURE")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: FAILED_PRECONDITION: ")
    running = run("env", "destroy", "--server", address, env_id)
    assert running.exit_code == 1 and "is RUNNING (run 1)" in running.stderr
    unknown = run("env", "show", "--server", address, "NOSUCHENV")
    assert unknown.exit_code == 2 and "NOT_FOUND" in unknown.stderr
    bad_var = run("env", "create", "--server", address, "-w", "default", "--var", "novalue")
    assert bad_var.exit_code == 2 and "expected NAME=VALUE" in bad_var.stderr
    destroyed = run("env", "destroy", "--server", address, env_id, "--allow-running")
    assert destroyed.exit_code == 0 and destroyed.stdout == f"environment {env_id} destroyed\n"


def test_no_server_is_a_clear_runtime_failure(tmp_path: Path) -> None:
    result = run("env", "list", "--server", "127.0.0.1:9")
    assert result.exit_code == 1
    assert "cannot reach the control server at 127.0.0.1:9" in result.stderr
