"""The README's pq pipeline, as printed: ``fdset -o DIR`` then ``consume --raw`` piped into pq's
decoder (``--stream i32be``). pq's own Kafka client cannot talk to Kafka 4, hence the pipe.

``dev/test`` builds pq into the cache (``dev/pq``, without pq's Kafka client: about 1.5 minutes
on 2 cores) and names it in ``$ALIECS_PQ``; otherwise the ``pq`` on PATH is used, and the test
is skipped, saying so, when there is none.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from aliecs_integration.pb import events_pb2, kafka_pb2

PQ = os.environ.get("ALIECS_PQ") or shutil.which("pq")


@pytest.mark.skipif(PQ is None, reason="pq not found: run dev/pq, or use dev/test")
def test_readme_pq_pipeline_decodes_core_and_legacy_topics(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    run_topic, legacy_topic = f"{topic_prefix}.run", f"{topic_prefix}.env_state.RUNNING"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.create_topics([NewTopic(t, 1, 1) for t in (run_topic, legacy_topic)],
                                      operation_timeout=30).values():
        future.result(timeout=30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for run in (11, 12):
        producer.produce(run_topic, events_pb2.Event(timestamp=run, runEvent=events_pb2.Ev_RunEvent(
            environmentId="PQENV", runNumber=run, transition="START_ACTIVITY",
            transitionStatus=events_pb2.DONE_OK)).SerializeToString(), b"PQENV")
    producer.produce(legacy_topic, kafka_pb2.NewStateNotification(envInfo=kafka_pb2.EnvInfo(
        environmentId="PQENV", runNumber=12, state="RUNNING")).SerializeToString())
    assert producer.flush(30) == 0

    command = f"{shlex.quote(sys.executable)} -m aliecs_integration"
    env = {**os.environ, "ALIECS_KAFKA_BROKERS": kafka_bootstrap}

    def pipeline(topic: str, msgtype: str) -> list[dict[str, object]]:
        script = (f"set -euo pipefail\n{command} fdset -o ./fdset >&2\n"
                  f"{command} consume {topic} --root {topic_prefix} --from-beginning --raw "
                  f"| FDSET_PATH=./fdset {shlex.quote(PQ or 'pq')} --msgtype {msgtype} "
                  "--stream i32be\n")
        done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, text=True,
                              capture_output=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]

    runs = pipeline(run_topic, "events.Event")
    events = [r["runEvent"] for r in runs]
    assert [(e["environmentId"], e["runNumber"], e["transitionStatus"])  # type: ignore[index]
            for e in events] == [("PQENV", 11, "DONE_OK"), ("PQENV", 12, "DONE_OK")]
    (note,) = pipeline(legacy_topic, "kafka.NewStateNotification")
    info = note["envInfo"]
    assert isinstance(info, dict)
    assert (info["environmentId"], info["runNumber"], info["state"]) == ("PQENV", 12, "RUNNING")
    assert (tmp_path / "fdset" / "events.fdset").is_file()
