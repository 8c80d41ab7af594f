"""SIGTERM with messages in flight: ``aliecs-integration run`` (a child process, mid-scenario)
flushes what the broker can take within ``--flush-timeout`` and logs how many were delivered and
how many were not (hookspecs: ``on_host_stop`` "fires once at shutdown (also on SIGTERM)").

- broker unreachable: nothing can be flushed; the undelivered count (> 0) is logged;
- real broker: everything is flushed; the delivered count logged equals what the topics hold.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.kafka_helpers import read_topic

pytestmark = [
    pytest.mark.reliability,
]

CLOSED = re.compile(r"core-kafka: closed: (\d+) delivered, (\d+) failed, (\d+) dropped, "
                    r"(\d+) undelivered")
SCENARIO = """\
environments:
  - id: sigterm
    detectors: [TPC]
    actions: [DEPLOY, CONFIGURE, START_ACTIVITY, {sleep: 60}, STOP_ACTIVITY, destroy]
"""


def run_and_terminate(tmp_path: Path, bootstrap: str, root: str) -> tuple[int, str]:
    """Start ``run``, SIGTERM it once the run started; its exit code and stderr."""
    settings = tmp_path / "settings.yaml"
    settings.write_text(f"kafkaEndpoints: [{bootstrap}]\nkafkaProducer: {{topicRoot: {root}}}\n")
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO)
    child = subprocess.Popen(
        [sys.executable, "-m", "aliecs_integration.cli.main", "-v", "run", "--settings",
         str(settings), "--scenario", str(scenario), "--flush-timeout", "3",
         "--run-numbers", str(tmp_path / "run_number")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert child.stdout is not None
    deadline = time.monotonic() + 60
    for line in child.stdout:  # progress lines: wait until the run is on
        if "START_ACTIVITY" in line or time.monotonic() > deadline:
            break
    time.sleep(0.5)
    child.send_signal(signal.SIGTERM)
    try:
        _, err = child.communicate(timeout=30)
    finally:
        child.kill()
    return child.returncode, err


def test_sigterm_with_broker_unreachable_logs_the_undelivered_count(
    tmp_path: Path, topic_prefix: str
) -> None:
    code, err = run_and_terminate(tmp_path, "127.0.0.1:1", topic_prefix)
    assert code != 0
    closed = CLOSED.search(err)
    assert closed is not None, err[-2000:]
    assert int(closed[1]) == 0 and int(closed[4]) > 0


def test_sigterm_with_broker_up_flushes_everything(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    _, err = run_and_terminate(tmp_path, kafka_bootstrap, topic_prefix)
    closed = CLOSED.search(err)
    assert closed is not None, err[-2000:]
    delivered = int(closed[1])
    assert delivered > 0 and closed.groups()[1:] == ("0", "0", "0")
    topics = [f"{topic_prefix}.{t}" for t in ("core", "environment", "task", "role", "call", "run")]
    assert sum(len(read_topic(kafka_bootstrap, t, 0, settle=0.5)) for t in topics) == delivered
