"""aliecs_integration.devservers against stand-in dev/ scripts: reuse, start, stop, failures."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from aliecs_integration.devservers import DevServer, dev_kafka, dev_servers
from aliecs_integration.errors import DevServerError


def fake_script(tmp_path: Path, running: bool, start_code: int = 0) -> Path:
    """A dev/<x>-like script that logs each command line; status says ``running``."""
    log = tmp_path / "log"
    script = tmp_path / "server"
    script.write_text(textwrap.dedent(f"""\
        #!/usr/bin/env bash
        echo "$*" >> {log}
        case "$1" in
          status) exit {0 if running else 3} ;;
          start) exit {start_code} ;;
          stop) exit 0 ;;
        esac
    """))
    script.chmod(0o755)
    return script


def commands(tmp_path: Path) -> list[str]:
    return (tmp_path / "log").read_text().splitlines()


def test_dev_server_started_by_us_is_stopped(tmp_path: Path) -> None:
    server = DevServer("x", fake_script(tmp_path, running=False))
    assert server.ensure_running() is False and server.started
    server.stop_if_started()
    assert commands(tmp_path) == ["status", "start", "stop"]


def test_running_dev_server_is_reused_and_left_alone(tmp_path: Path) -> None:
    server = DevServer("x", fake_script(tmp_path, running=True))
    assert server.ensure_running() is True and not server.started
    server.stop_if_started()
    assert commands(tmp_path) == ["status"]


def test_dev_server_that_fails_to_start(tmp_path: Path) -> None:
    server = DevServer("x", fake_script(tmp_path, running=False, start_code=1))
    with pytest.raises(DevServerError, match="start failed \\(exit 1\\)"):
        server.ensure_running()


def test_dev_servers_need_a_source_checkout(tmp_path: Path) -> None:
    with pytest.raises(DevServerError, match="needs a source checkout"):
        dev_servers(tmp_path)


def test_a_failed_start_quotes_the_script_output(tmp_path: Path) -> None:
    script = tmp_path / "server"
    script.write_text("#!/usr/bin/env bash\necho \"port 19092 in use\"\nexit 4\n")
    script.chmod(0o755)
    with pytest.raises(DevServerError, match=r"server start --cluster --fresh failed \(exit 4\):"
                                             r"\nport 19092 in use"):
        DevServer("kafka", script, ("--cluster",)).start("--fresh")


def test_mode_args_follow_status_start_and_stop(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    script = fake_script(tmp_path, running=False)
    script.rename(tmp_path / "dev" / "kafka")
    server = dev_kafka(tmp_path, cluster=True)
    assert server.ensure_running("--fresh") is False
    server.stop_if_started()
    assert commands(tmp_path) == ["status --cluster", "start --cluster --fresh", "stop --cluster"]


def test_echo_works_when_stderr_is_not_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a test runner's capture (click's CliRunner) stderr has no file descriptor: the
    script still runs and its output is echoed (it once failed with 'cannot run ...: fileno')."""
    import io
    import sys

    captured = io.StringIO()
    monkeypatch.setattr(sys, "stderr", captured)
    script = tmp_path / "talk"
    script.write_text("#!/usr/bin/env bash\necho out; echo err >&2\n")
    script.chmod(0o755)
    res = DevServer("x", script).run("start", echo=True)
    assert res.returncode == 0
    assert captured.getvalue().split() == ["out", "err"]
