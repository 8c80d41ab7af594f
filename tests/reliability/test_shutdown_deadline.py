"""Shutdown (issue 12, item 12): one flush deadline for all plugins, taken from
kafkaProducer.flushTimeoutSeconds unless --flush-timeout says otherwise; environment threads
stopped before the publisher closes (real broker); a second SIGTERM says the truth."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.reliability]

SHORT = """\
environments:
  - id: short
    actions: [DEPLOY, CONFIGURE, START_ACTIVITY, STOP_ACTIVITY, destroy]
"""


def start_run(tmp_path: Path, settings: str, scenario: str, *extra: str) -> subprocess.Popen[str]:
    (tmp_path / "settings.yaml").write_text(settings)
    (tmp_path / "scenario.yaml").write_text(scenario)
    return subprocess.Popen(
        [sys.executable, "-m", "aliecs_integration.cli.main", "run", "--settings",
         str(tmp_path / "settings.yaml"), "--scenario", str(tmp_path / "scenario.yaml"),
         "--run-numbers", str(tmp_path / "rn"), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_for(child: subprocess.Popen[str], text: str, timeout: float = 60) -> float:
    """Read stdout until a line contains ``text``; the monotonic time it was seen."""
    assert child.stdout is not None
    deadline = time.monotonic() + timeout
    for line in child.stdout:
        if text in line:
            return time.monotonic()
        assert time.monotonic() < deadline, f"no line with {text!r}"
    raise AssertionError(f"stdout ended before a line with {text!r}")


@pytest.mark.parametrize(
    ("producer", "extra", "budget"),
    [("{flushTimeoutSeconds: 1.5}", (), 1.5), ("{flushTimeoutSeconds: 30}", ("--flush-timeout",
                                                                           "2"), 2.0)],
    ids=["settings-flushTimeoutSeconds", "flush-timeout-option"],
)
def test_one_flush_deadline_for_all_plugins(
    tmp_path: Path, producer: str, extra: tuple[str, ...], budget: float
) -> None:
    # both producers (core and legacy) hold events for a broker that is not there
    settings = ("kafkaEndpoints: ['127.0.0.1:1']\nkafkaEndpoint: '127.0.0.1:1'\n"
                f"integrationPlugins: [kafka]\nkafkaProducer: {producer}\n"
                "runtimeVars: {kafka_enabled: true}\n")
    child = start_run(tmp_path, settings, SHORT, *extra)
    try:
        seen = wait_for(child, "DESTROY")
        child.wait(60)
        shutdown = time.monotonic() - seen
    finally:
        child.kill()
    assert child.returncode == 1
    # one deadline: not one per plugin and per phase (it was 3 x the budget and more)
    assert shutdown < budget + 2.0, f"shutdown took {shutdown:.1f} s for a {budget} s budget"


def test_a_second_sigterm_says_the_flush_was_cut_short(tmp_path: Path) -> None:
    settings = "kafkaEndpoints: ['127.0.0.1:1']\nkafkaProducer: {flushTimeoutSeconds: 30}\n"
    scenario = SHORT.replace("START_ACTIVITY,", "START_ACTIVITY, {sleep: 60},")
    child = start_run(tmp_path, settings, scenario)
    try:
        wait_for(child, "START_ACTIVITY")
        child.send_signal(signal.SIGTERM)
        time.sleep(1.5)  # inside the 30 s flush
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=20)
    finally:
        child.kill()
    assert child.returncode == 143
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: terminated by SIGTERM again during shutdown"), err[-2000:]
    assert "neither flushed nor counted" in last
    assert "was flushed" not in last


def test_sigterm_stops_environments_before_the_publisher_closes(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    busy = "".join(
        f"  - id: e{i}\n    actions: [DEPLOY, CONFIGURE"
        + ", START_ACTIVITY, STOP_ACTIVITY" * 200 + ", destroy]\n"
        for i in range(6))
    settings = (f"kafkaEndpoints: ['{kafka_bootstrap}']\n"
                f"kafkaProducer: {{topicRoot: {topic_prefix}, flushTimeoutSeconds: 10}}\n")
    child = start_run(tmp_path, settings, "environments:\n" + busy)
    try:
        wait_for(child, "STOP_ACTIVITY")
        time.sleep(1.0)
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 143, err[-2000:]
    assert "publisher is closed" not in err, err[-3000:]
    assert "Traceback" not in err
