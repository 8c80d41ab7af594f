"""The command group: --help everywhere, fdset, hooks, plugins, topics create, run, and that
every bad input ends in one `error:` line with a meaningful exit code and no traceback."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from google.protobuf import descriptor_pb2

from aliecs_integration import schema
from aliecs_integration.cli.main import cli

COMMANDS = [[], ["demo"], ["run"], ["consume"], ["fdset"], ["plugins"], ["settings"],
            ["settings", "show"], ["settings", "push"], ["topics"], ["topics", "create"],
            ["hooks"]]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def one_error_line(result: Result, code: int) -> str:
    """The single stderr line of a failed command (asserting there is exactly one)."""
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "group")
def test_help_everywhere_with_exit_codes(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.stderr
    assert "Usage: " in result.stdout
    assert "Exit codes: 0 success; 1 runtime failure" in result.stdout


def test_every_command_is_listed() -> None:
    assert isinstance(cli, click.Group)
    assert set(cli.commands) == {"demo", "run", "consume", "fdset", "plugins", "settings",
                                 "topics", "hooks"}


def test_fdset_into_a_directory_writes_events_fdset_as_pq_expects(tmp_path: Path) -> None:
    out = tmp_path / "new" / "fdset"  # no suffix: a directory, created with its parents
    result = invoke("fdset", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["events.fdset"]
    fds = descriptor_pb2.FileDescriptorSet.FromString((out / "events.fdset").read_bytes())
    assert [f.name for f in fds.file] == list(schema.PROTO_FILES)
    assert f"wrote {out / 'events.fdset'}" in result.stdout
    existing = tmp_path / "dir.d"  # an existing directory, whatever its name
    existing.mkdir()
    assert invoke("fdset", "-o", str(existing)).exit_code == 0
    assert (existing / "events.fdset").stat().st_size == (out / "events.fdset").stat().st_size


def test_fdset_into_a_file(tmp_path: Path) -> None:
    out = tmp_path / "schema.fdset"
    result = invoke("fdset", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    assert [f.name for f in fds.file] == list(schema.PROTO_FILES)
    assert f"wrote {out} (" in result.stdout


def test_fdset_file_in_a_missing_directory_is_bad_input(tmp_path: Path) -> None:
    line = one_error_line(invoke("fdset", "-o", str(tmp_path / "no" / "x.fdset")), 2)
    assert "No such file or directory" in line and str(tmp_path / "no") in line


def test_hooks_prints_every_hook_signature() -> None:
    result = invoke("hooks")
    assert result.exit_code == 0
    assert "def on_run_sor_eor(event: RunEvent) -> None" in result.stdout
    assert "def register_call_functions() -> Mapping[str, CallFunction]" in result.stdout
    assert "<!--" not in result.stdout


def test_unexpected_errors_are_one_line_unless_verbose(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(path: Path) -> tuple[Path, int]:
        raise RuntimeError("kaput")

    monkeypatch.setattr(schema, "write_fdset", broken)
    line = one_error_line(invoke("fdset", "-o", str(tmp_path / "f")), 1)
    assert line == "error: unexpected RuntimeError: kaput (run with -v for the traceback)"
    verbose = invoke("-v", "fdset", "-o", str(tmp_path / "f"))
    assert verbose.exit_code == 1
    assert "Traceback" in verbose.stderr and "RuntimeError: kaput" in verbose.stderr
    assert verbose.stderr.strip().splitlines()[-1] == "error: unexpected RuntimeError: kaput"


def test_usage_errors_exit_2() -> None:
    result = invoke("consume")
    assert result.exit_code == 2
    assert "Missing argument 'TOPIC...'" in result.stderr
    assert invoke("nosuch").exit_code == 2


def test_plugins_lists_loaded_and_refused_plugins(tmp_path: Path) -> None:
    settings = write(tmp_path, "s.yaml", """
        enableKafka: false
        integrationPlugins: [kafka, nosuch]
    """)
    result = invoke("plugins", "--settings", str(settings), "--wait", "0")
    assert result.exit_code == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[2:]}
    assert "Core Kafka producer" in rows["core-kafka"] and "yes" in rows["core-kafka"]
    assert "IDLE" in rows["core-kafka"]
    assert "no" in rows["kafka"] and "setting 'kafkaEndpoint' is missing" in rows["kafka"]
    assert "no installed plugin provides 'nosuch'" in rows["nosuch"]


def test_plugins_with_malformed_settings_is_bad_input(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", "kafkaEndpoints: [unclosed\n")
    line = one_error_line(invoke("plugins", "--settings", str(bad)), 2)
    assert str(bad) in line and "malformed YAML at line" in line


def test_topics_create_with_unreachable_broker(tmp_path: Path) -> None:
    settings = write(tmp_path, "s.yaml", 'kafkaEndpoints: ["127.0.0.1:1"]\n')
    line = one_error_line(invoke("topics", "create", "--settings", str(settings),
                                 "--timeout", "0.5"), 1)
    assert "cannot reach Kafka at 127.0.0.1:1" in line


SMALL_SCENARIO = """
    environments:
      - id: one
        detectors: [ITS]
        actions: [DEPLOY, CONFIGURE, START_ACTIVITY, STOP_ACTIVITY, destroy]
      - id: two
        actions: [DEPLOY, {transition: DEPLOY, expect: error}, destroy]
"""


def test_run_without_kafka_shows_progress(tmp_path: Path) -> None:
    settings = write(tmp_path, "s.yaml", "enableKafka: false\n")
    scenario = write(tmp_path, "sc.yaml", SMALL_SCENARIO)
    result = invoke("run", "--settings", str(settings), "--scenario", str(scenario),
                    "--run-numbers", str(tmp_path / "rn"))
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "START_ACTIVITY  -> RUNNING  run 1" in out
    assert "STOP_ACTIVITY   -> CONFIGURED  run 1 ended" in out
    assert "DEPLOY          failed as expected: " in out
    assert "nothing was published" in out
    assert (tmp_path / "rn").read_text().strip() == "1"


def test_run_with_an_unexpected_outcome_exits_1(tmp_path: Path) -> None:
    settings = write(tmp_path, "s.yaml", "enableKafka: false\n")
    scenario = write(tmp_path, "sc.yaml", """
        environments:
          - {id: one, actions: [{transition: DEPLOY, expect: error}]}
    """)
    result = invoke("run", "--settings", str(settings), "--scenario", str(scenario),
                    "--run-numbers", str(tmp_path / "rn"))
    line = one_error_line(result, 1)
    assert line == "error: one actions[0] DEPLOY"
    assert "! one" in result.stdout and "(was expected to fail)" in result.stdout


@pytest.mark.parametrize(
    ("settings_text", "scenario_text", "code", "expected"),
    [
        ("enableKafka: false\n", "environments: [{id: a, actions: [FLY]}]\n", 2,
         "environments[0] ('a'): actions[0]: unknown transition 'FLY'"),
        ("enableKafka: yes please\n", SMALL_SCENARIO, 2, "key 'enableKafka'"),
        (None, SMALL_SCENARIO, 2, "settings file not found"),
    ],
)
def test_run_bad_input(tmp_path: Path, settings_text: str | None, scenario_text: str,
                       code: int, expected: str) -> None:
    settings = tmp_path / "s.yaml"
    if settings_text is not None:
        settings.write_text(settings_text)
    scenario = write(tmp_path, "sc.yaml", scenario_text)
    line = one_error_line(invoke("run", "--settings", str(settings), "--scenario",
                                 str(scenario)), code)
    assert expected in line


def test_run_with_unreachable_consul(tmp_path: Path) -> None:
    scenario = write(tmp_path, "sc.yaml", SMALL_SCENARIO)
    line = one_error_line(invoke("run", "--settings", "consul://127.0.0.1:1", "--scenario",
                                 str(scenario)), 1)
    assert "cannot reach Consul at 127.0.0.1:1" in line


def test_demo_with_a_malformed_scenario_starts_nothing(tmp_path: Path) -> None:
    scenario = write(tmp_path, "sc.yaml", "environments: [{id: a, actions: [destroy, DEPLOY]}]")
    line = one_error_line(invoke("demo", "--scenario", str(scenario)), 2)
    assert "actions[1]: nothing can follow destroy" in line


def test_run_with_unreachable_broker_reports_what_was_not_acknowledged(tmp_path: Path) -> None:
    settings = write(tmp_path, "s.yaml", 'kafkaEndpoints: ["127.0.0.1:1"]\n')
    scenario = write(tmp_path, "sc.yaml", "environments: [{id: a, actions: [DEPLOY]}]\n")
    result = invoke("run", "--settings", str(settings), "--scenario", str(scenario),
                    "--run-numbers", str(tmp_path / "rn"), "--flush-timeout", "0.5")
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"error: \d+ message\(s\) not acknowledged within 0.5 s, 0 failed, "
                        r"0 dropped \(is Kafka at 127.0.0.1:1 reachable\? the last error: "
                        r".*Connection refused.*\)", last), last
    assert "Traceback" not in result.stderr and "rdkafka" not in result.stderr
    total = next(line.split() for line in result.stdout.splitlines() if line.startswith("total"))
    assert total[1] == total[-1] != "0" and total[2] == "0"  # all published, none acknowledged
