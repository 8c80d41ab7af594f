"""The spool (issue 12, item 15): a producing process SIGKILLed at random moments, several
times, against the real broker; every event handed to the publisher before each kill is in
Kafka after the restarts (the next process replays what the spool kept)."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.kafka_helpers import read_topic
from tests.reliability import SERVICE, numbers_in

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

KILLS = 4
REPO = Path(__file__).resolve().parents[2]


def child(
    bootstrap: str, root: str, spool: Path, handed: Path, first: int
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.spool_child", bootstrap, root, str(spool),
         str(handed), str(first)],
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def handed_numbers(path: Path) -> list[int]:
    if not path.exists():
        return []
    return [int(line) for line in path.read_text().split("\n") if line.strip()]


def test_sigkill_loses_nothing_handed_to_the_publisher(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    rng = random.Random()
    spool = tmp_path / "spool"
    replayed: list[int] = []
    handed: list[int] = []
    for kill in range(KILLS):
        log = tmp_path / f"handed{kill}"
        proc = child(kafka_bootstrap, topic_prefix, spool, log, kill * 1_000_000)
        deadline = time.monotonic() + 60
        while len(handed_numbers(log)) < 200:  # producing (and past its own replay)
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the child never started producing"
            time.sleep(0.05)
        time.sleep(rng.uniform(0.2, 3.0))
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
        replayed += [int(n) for n in re.findall(r"replayed (\d+) message", err)]
        handed += handed_numbers(log)
    drain = child(kafka_bootstrap, topic_prefix, spool, tmp_path / "none", -1)
    out, err = drain.communicate(timeout=300)
    assert drain.returncode == 0, err[-3000:]
    replayed += [int(n) for n in re.findall(r"replayed (\d+) message", err)]
    # a clean stop after everything was acknowledged leaves an empty journal
    assert list(spool.rglob("segment-*.log")) == [], list(spool.rglob("*"))
    assert [p.name for p in spool.iterdir()] == [kafka_bootstrap.replace(":", "_")]

    topic = f"{topic_prefix}.integrated_service.{SERVICE}"
    messages = read_topic(kafka_bootstrap, topic, expected=len(handed), settle=2.0)
    found = numbers_in(messages)
    missing = sorted(set(handed) - set(found))
    duplicates = len(found) - len(set(found))
    print(f"\nspool SIGKILL: {KILLS} kills; {len(handed)} events handed over; "
          f"{len(set(handed) & set(found))} of them found in Kafka ({len(found)} messages, "
          f"{duplicates} duplicates); replayed at restart: {replayed}; {out.strip()}")
    assert not missing, f"{len(missing)} handed-over events lost: {missing[:20]}"
    assert sum(replayed) > 0, "no kill left anything to replay: the test proved nothing"
    # issue 15: a replayed message carries the headers it was first published with: the
    # instance id of the process that handed it over (process k numbered its events from
    # k * 1_000_000), whichever process sent it; a duplicate keeps its event id
    instances: dict[int, set[bytes]] = {}
    event_ids: dict[int, set[bytes]] = {}
    for number, msg in zip(found, messages, strict=True):
        headers = dict(msg.headers() or [])
        assert headers["content-type"] == b"application/x-protobuf; messageType=events.Event"
        instances.setdefault(number // 1_000_000, set()).add(headers["source-instance-id"])
        event_ids.setdefault(number, set()).add(headers["event-id"])
    assert all(len(ids) == 1 for ids in instances.values()), instances
    assert len({next(iter(ids)) for ids in instances.values()}) == len(instances)
    assert all(len(ids) == 1 for ids in event_ids.values())
