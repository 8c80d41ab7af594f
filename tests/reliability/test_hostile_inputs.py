"""Every CLI command that reads a file, on every hostile input of the corpus in
``tests/reliability/hostile/`` (and a few made at run time: a FIFO, /dev/zero, a directory, a
missing file, 50 MB, 300,000 values): each run ends within 10 s, under 200 MB, with exit code
1 or 2, exactly one ``error:`` line naming the file (and the key or the line), no traceback.

``any/`` is hostile wherever a YAML file is read; ``settings/`` only as settings (as a
scenario it is merely not a scenario); ``scenario/`` only as a scenario (as settings, its
``environments`` key is one a plugin may read).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
import pytest

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

CORPUS = Path(__file__).resolve().parent / "hostile"
TIME_LIMIT_S = 10.0
MEMORY_LIMIT_KB = 200 * 1024

#: corpus file -> what its error line must say, as settings and as a scenario
ANY: dict[str, tuple[str, str]] = {
    "billion_laughs.yaml": ("aliases are expanded",) * 2,
    "billion_laughs_2k.yaml": ("aliases are expanded",) * 2,
    "recursive_alias.yaml": ("recursive alias at line 1",) * 2,
    "deep_nesting.yaml": ("nested deeper than 64 levels at line",) * 2,
    "flow_nesting.yaml": ("malformed YAML at line 1",) * 2,
    "duplicate_key.yaml": ("duplicate key 'enableKafka' at line 2",) * 2,
    "binary.png": ("binary data, not YAML text (NUL byte at offset 8)",) * 2,
    "not_utf8.yaml": ("not UTF-8 at byte offset 17",) * 2,
    "top_level_list.yaml": ("expected a mapping",) * 2,
    "empty.yaml": ("the settings document is empty", "expected a mapping"),
    "python_tag.yaml": ("malformed YAML at line 1",) * 2,
    "control_chars.yaml": ("malformed YAML: unacceptable character #x0007",) * 2,
    "scalar.yaml": ("expected a mapping",) * 2,
}
SETTINGS: dict[str, str] = {
    "typo_case.yaml": "key 'enablekafka': unknown key; did you mean `enableKafka`?",
    "typo_one_edit.yaml": "key 'integrationPlugin': unknown key; did you mean",
    "lingerms.yaml": "key 'kafkaProducer.properties.lingerms': the Kafka client refused",
    "inf_timeout.yaml": "key 'kafkaProducer.flushTimeoutSeconds': expected a number",
    "nan_block.yaml": "key 'kafkaProducer.queue.blockTimeoutSeconds': expected a number",
    "partitions_huge.yaml": "key 'kafkaProducer.topics.partitions': expected an integer",
    "traversal_var.yaml": "key 'runtimeVars': variable name '../../../../evil'",
    "bad_endpoint.yaml": "key 'kafkaEndpoints[0]': expected a 'host:port' string",
    "enable_string.yaml": "key 'enableKafka': expected a boolean",
    "topic_root_bad.yaml": "key 'kafkaProducer.topicRoot': expected dot-separated words",
    "reserved_property.yaml": "key 'kafkaProducer.properties.bootstrap.servers': not allowed",
    "unknown_producer_key.yaml": "key 'kafkaProducer.lingerMs': unknown key",
}
SCENARIOS: dict[str, str] = {
    "service_non_ascii.yaml": "actions[1]: key 'service': integrated service name 'dcsé'",
    "service_omega.yaml": "actions[1]: key 'service': integrated service name 'Ωmega'",
    "service_300.yaml": "actions[1]: key 'service': integrated service name",
    "sleep_inf.yaml": "actions[1]: key 'sleep': expected seconds from 0 to 86400, got inf",
    "sleep_nan.yaml": "actions[1]: key 'sleep': expected seconds from 0 to 86400, got nan",
    "duplicate_actions.yaml": "duplicate key 'actions' at line 4",
    "timeout_inf.yaml": "calls[0]",
    "workflow_binary.yaml": "key 'workflow':",
    "workflow_missing.yaml": "key 'workflow':",
    "unknown_transition.yaml": "actions[1]: unknown transition 'FLY'",
    "settings_as_scenario.yaml": "expected a mapping with a list under 'environments'",
}

GOOD_SETTINGS = "enableKafka: false\n"
GOOD_SCENARIO = "environments:\n  - id: ok\n    actions: [DEPLOY, destroy]\n"


@attrs.frozen
class Outcome:
    args: tuple[str, ...]
    code: int
    stderr: str
    elapsed_s: float
    max_rss_kb: int


# Runs the command given as its arguments and prints the command's peak RSS (kB) on stdout.
# Linux carries a parent's high-water RSS into a vfork()ed child across exec (signal->maxrss),
# so a child spawned straight from this (large) pytest process would report pytest's peak; the
# small wrapper process starts the command instead, and its wait4 sees the command's own peak.
_MEASURE = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(usage.ru_maxrss, flush=True)
sys.exit(os.waitstatus_to_exitcode(status) % 256)
"""


def run_cli(args: list[str], cwd: Path) -> Outcome:
    """One CLI run in its own process: exit code, stderr, wall time and peak memory (RSS of
    that process, from wait4 in a small wrapper), killed at the time limit."""
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-c", _MEASURE, sys.executable, "-m", "aliecs_integration.cli.main",
         *args], cwd=cwd, start_new_session=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "ALIECS_SETTINGS": "", "CONSUL_HTTP_TOKEN": ""})
    timer = threading.Timer(TIME_LIMIT_S + 5, lambda: os.killpg(child.pid, signal.SIGKILL))
    timer.start()
    out, err_bytes = child.communicate()
    timer.cancel()
    lines = out.decode().split()
    max_rss_kb = int(lines[-1]) if lines else 10**9  # no figure: the wrapper itself was killed
    return Outcome(tuple(args), child.returncode, err_bytes.decode("utf-8", "replace"),
                   time.monotonic() - started, max_rss_kb)


def settings_commands(path: str, good_scenario: str, tmp: Path) -> list[list[str]]:
    return [
        ["settings", "show", "--source", path],
        ["settings", "push", path, "--consul", "127.0.0.1:1"],
        ["run", "--settings", path, "--scenario", good_scenario, "--run-numbers",
         str(tmp / "rn")],
        ["plugins", "--settings", path, "--wait", "0"],
        ["topics", "create", "--settings", path, "--timeout", "1"],
        ["demo", "--settings-file", path, "--scenario", good_scenario, "--run-numbers",
         str(tmp / "rn")],
    ]


def scenario_commands(path: str, good_settings: str, tmp: Path) -> list[list[str]]:
    return [
        ["run", "--settings", good_settings, "--scenario", path, "--run-numbers",
         str(tmp / "rn")],
        ["demo", "--scenario", path, "--run-numbers", str(tmp / "rn")],
    ]


@pytest.fixture
def made_inputs(tmp_path: Path) -> Iterator[dict[str, tuple[str, str]]]:
    """Hostile inputs that cannot live in git: path -> fragments (settings, scenario)."""
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    big = tmp_path / "big.yaml"
    with big.open("wb") as fh:
        fh.truncate(50 * 1024 * 1024)
    many = tmp_path / "many.yaml"
    many.write_text("x: [" + ",".join("1" for _ in range(300_000)) + "]\n")
    (tmp_path / "adir").mkdir()
    yield {
        str(fifo): ("a FIFO (named pipe), not a regular file",) * 2,
        "/dev/zero": ("a device, not a regular file",) * 2,
        str(tmp_path / "adir"): ("a directory, not a regular file",) * 2,
        str(tmp_path / "missing.yaml"): ("file not found",) * 2,
        str(big): ("52428800 bytes: larger than the 4194304 bytes accepted",) * 2,
        str(many): ("more than 250000 values",) * 2,
    }


def test_every_command_on_every_hostile_input(
    tmp_path: Path, made_inputs: dict[str, tuple[str, str]]
) -> None:
    good_settings = tmp_path / "good_settings.yaml"
    good_settings.write_text(GOOD_SETTINGS)
    good_scenario = tmp_path / "good_scenario.yaml"
    good_scenario.write_text(GOOD_SCENARIO)
    jobs: list[tuple[list[str], str, str]] = []  # args, path, fragment
    inputs = {str(CORPUS / "any" / n): f for n, f in ANY.items()} | made_inputs
    for path, (as_settings, as_scenario) in inputs.items():
        jobs += [(a, path, as_settings)
                 for a in settings_commands(path, str(good_scenario), tmp_path)]
        jobs += [(a, path, as_scenario)
                 for a in scenario_commands(path, str(good_settings), tmp_path)]
    for name, fragment in SETTINGS.items():
        path = str(CORPUS / "settings" / name)
        jobs += [(a, path, fragment)
                 for a in settings_commands(path, str(good_scenario), tmp_path)]
    for name, fragment in SCENARIOS.items():
        path = str(CORPUS / "scenario" / name)
        jobs += [(a, path, fragment)
                 for a in scenario_commands(path, str(good_settings), tmp_path)]
    # the one command that writes a file: fdset -o
    not_a_dir = str(good_settings / "x.fdset")
    missing = str(tmp_path / "no" / "such.fdset")
    jobs += [(["fdset", "-o", missing], missing, "No such file or directory"),
             (["fdset", "-o", not_a_dir], not_a_dir, "Not a directory"),
             (["fdset", "-o", "/dev/full"], "/dev/full", "No space left on device")]
    assert len(jobs) >= 180

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda job: run_cli(job[0], tmp_path), jobs))

    problems: list[str] = []
    slowest = max(outcomes, key=lambda o: o.elapsed_s)
    worst_rss = max(o.max_rss_kb for o in outcomes)
    for (args, path, fragment), outcome in zip(jobs, outcomes, strict=True):
        errors = [line for line in outcome.stderr.splitlines() if line.startswith("error:")]
        what = f"{' '.join(args)}: "
        if outcome.elapsed_s > TIME_LIMIT_S:
            problems.append(f"{what}took {outcome.elapsed_s:.1f} s")
        if outcome.max_rss_kb > MEMORY_LIMIT_KB:
            problems.append(f"{what}used {outcome.max_rss_kb // 1024} MB")
        if outcome.code not in (1, 2):
            problems.append(f"{what}exit code {outcome.code}")
        if "Traceback" in outcome.stderr:
            problems.append(f"{what}traceback")
        if len(errors) != 1:
            problems.append(f"{what}{len(errors)} error lines: {outcome.stderr[-500:]!r}")
            continue
        line = errors[0]
        shown = os.path.abspath(path) if not path.startswith("/dev/") else path
        if path not in line and shown not in line:
            problems.append(f"{what}the error does not name the file: {line}")
        if fragment not in line:
            problems.append(f"{what}expected {fragment!r} in: {line}")
    print(f"{len(outcomes)} runs; slowest {slowest.elapsed_s:.1f} s "
          f"({' '.join(slowest.args[:2])}); most memory {worst_rss // 1024} MB")
    assert not problems, "\n".join(problems)
