"""The ALICE QC framework's Start/End of Run rule, applied in C++ to our ``aliecs.run`` stream.

``cxx/qc_runs.cc`` reads ``consume <root>.run --raw`` (4-byte big-endian length, then the
bytes), parses each ``events.Event`` with the C++ protobuf runtime and prints ``{"sor": N,
"env": ID}`` / ``{"eor": N, "env": ID}`` lines (the rule: see its header, and docs/events.md). Its
C++ code is generated from protos/ by Debian bookworm's protoc 3.21.12 and compiled with g++
into the test's temporary directory on every run; nothing generated is committed.

The toolchain comes from ``dev/cxx-deps`` (the .debs unpacked into
``${ALIECS_CACHE:-~/.cache/aliecs-integration}/protobuf-cpp-3.21.12``; ``dev/test`` runs it and
names the prefix in ``$ALIECS_PROTOBUF_CPP``); without it the tests are skipped, saying so.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aliecs_integration.engine.run_numbers import RunNumberStore
from aliecs_integration.pb import events_pb2
from aliecs_integration.scenario.model import parse_scenario
from aliecs_integration.scenario.session import run_scenario
from aliecs_integration.settings.core import Settings
from tests.conformance.consumers import REPO, decode_python

CACHE = Path(os.environ.get("ALIECS_CACHE") or Path.home() / ".cache" / "aliecs-integration")
PREFIX = Path(os.environ.get("ALIECS_PROTOBUF_CPP") or CACHE / "protobuf-cpp-3.21.12")
SOURCE = Path(__file__).resolve().parent / "cxx" / "qc_runs.cc"
PROTOS = ("protos/common.proto", "protos/events.proto")

pytestmark = [
    pytest.mark.slow,  # each module run compiles the consumer (about 5 s)
    pytest.mark.skipif(
        not (PREFIX / "bin" / "protoc").exists(),
        reason=f"the C++ protobuf toolchain is not in {PREFIX}: run dev/cxx-deps, or use "
        "dev/test"),
]


@pytest.fixture(scope="module")
def qc_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """qc_runs.cc and the code protoc generates from protos/, compiled in a temporary dir."""
    work = tmp_path_factory.mktemp("qc_runs")
    gxx = shutil.which("g++")
    assert gxx is not None, "g++ is needed (dev/README.md: needed on the machine)"
    lib = PREFIX / "lib"
    for args in ([str(PREFIX / "bin" / "protoc"), f"-I{REPO}", f"--cpp_out={work}",
                  *(str(REPO / p) for p in PROTOS)],
                 [gxx, "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", f"-I{work}",
                  f"-I{PREFIX / 'include'}", "-o", str(work / "qc_runs"), str(SOURCE),
                  *(str(work / p.replace(".proto", ".pb.cc")) for p in PROTOS),
                  f"-L{lib}", f"-Wl,-rpath,{lib}", "-lprotobuf"]):
        done = subprocess.run(args, cwd=work, capture_output=True, text=True, timeout=600,
                              check=False)
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return work / "qc_runs"


def frame(value: bytes) -> bytes:
    """One message as ``consume --raw`` writes it."""
    return struct.pack(">I", len(value)) + value


def payloads(stream: bytes) -> list[bytes]:
    """The messages of a well-formed ``--raw`` stream."""
    out = []
    while stream:
        (length,) = struct.unpack(">I", stream[:4])
        out.append(stream[4:4 + length])
        stream = stream[4 + length:]
    return out


def qc_rule_python(stream: bytes) -> list[dict[str, Any]]:
    """The same rule on the same frames, decoded in Python as test_consumers.py does."""
    out: list[dict[str, Any]] = []
    for value in payloads(stream):
        r = decode_python("events.Event", value).get("runEvent")
        if r is None or r.get("transitionStatus") != "STARTED":
            continue
        if r.get("transition") == "START_ACTIVITY" and r.get("state") == "CONFIGURED":
            out.append({"sor": r["runNumber"], "env": r["environmentId"]})
        if r.get("transition") in ("STOP_ACTIVITY", "TEARDOWN") and r.get("state") == "RUNNING":
            out.append({"eor": r["runNumber"], "env": r["environmentId"]})
    return out


def run_event(transition: str, state: str, status: events_pb2.OpStatus.ValueType,
              run: int = 5) -> bytes:
    return events_pb2.Event(timestamp=1, runEvent=events_pb2.Ev_RunEvent(
        environmentId="ENV1", runNumber=run, state=state, transition=transition,
        transitionStatus=status)).SerializeToString()


def test_cxx_qc_sees_one_start_and_one_end_of_each_run(
    qc_runs: Path, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Two runs of one environment through our host: the first ended by STOP_ACTIVITY, the
    second by a destroy while RUNNING (TEARDOWN)."""
    scenario = parse_scenario({"environments": [{
        "id": "qc", "detectors": ["TPC"], "run_type": "PHYSICS",
        "actions": ["DEPLOY", "CONFIGURE", "START_ACTIVITY", "STOP_ACTIVITY",
                    "START_ACTIVITY", "destroy"]}]}, source="test_qc_cxx", base_dir=REPO)
    settings = Settings.from_dict({
        "kafkaEndpoints": [kafka_bootstrap], "kafkaEndpoint": kafka_bootstrap,
        "kafkaProducer": {"topicRoot": topic_prefix, "topics": {"replicationFactor": 1}},
    }, source="test_qc_cxx")
    store = RunNumberStore(tmp_path / "run_number")
    outcome = run_scenario(settings, scenario, run_numbers=store, require_plugins=True)
    assert not outcome.result.failures
    assert outcome.metrics is not None and outcome.metrics.failed == outcome.metrics.dropped == 0
    env = dict(outcome.result.environment_ids)["qc"]
    first, second = store.last() - 1, store.last()

    consume = (f"{shlex.quote(sys.executable)} -m aliecs_integration consume {topic_prefix}.run "
               f"--root {topic_prefix} --from-beginning --raw")
    script = f"set -euo pipefail\n{consume} | tee frames.bin | {shlex.quote(str(qc_runs))}\n"
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False,
                          env={**os.environ, "ALIECS_KAFKA_BROKERS": kafka_bootstrap})
    assert done.returncode == 0, done.stderr
    seen = [json.loads(line) for line in done.stdout.splitlines()]
    assert seen == [{"sor": first, "env": env}, {"eor": first, "env": env},
                    {"sor": second, "env": env}, {"eor": second, "env": env}]
    stream = (tmp_path / "frames.bin").read_bytes()
    assert seen == qc_rule_python(stream)
    messages = len(payloads(stream))
    assert messages > len(seen)  # the other run events were parsed and passed over
    assert done.stderr.splitlines()[-1] == f"qc_runs: {messages} messages"


def test_cxx_rule_passes_over_near_misses_as_python_does(qc_runs: Path) -> None:
    """Each condition of the rule matters: only the first two frames are a SOR and an EOR."""
    frames = [run_event("START_ACTIVITY", "CONFIGURED", events_pb2.STARTED, 5),
              run_event("TEARDOWN", "RUNNING", events_pb2.STARTED, 5),
              run_event("START_ACTIVITY", "CONFIGURED", events_pb2.DONE_OK),
              run_event("START_ACTIVITY", "RUNNING", events_pb2.STARTED),
              run_event("STOP_ACTIVITY", "CONFIGURED", events_pb2.STARTED),
              run_event("STOP_ACTIVITY", "RUNNING", events_pb2.DONE_OK),
              run_event("GO_ERROR", "RUNNING", events_pb2.STARTED),
              events_pb2.Event(environmentEvent=events_pb2.Ev_EnvironmentEvent(
                  environmentId="ENV1", state="CONFIGURED", transition="START_ACTIVITY",
                  transitionStatus=events_pb2.STARTED)).SerializeToString(),
              b""]
    stream = b"".join(frame(f) for f in frames)
    done = subprocess.run([str(qc_runs)], input=stream, capture_output=True, timeout=30,
                          check=False)
    assert done.returncode == 0, done.stderr
    seen = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert seen == [{"sor": 5, "env": "ENV1"}, {"eor": 5, "env": "ENV1"}] == qc_rule_python(stream)
    assert done.stderr.decode().strip() == f"qc_runs: {len(frames)} messages"


SOR = run_event("START_ACTIVITY", "CONFIGURED", events_pb2.STARTED)


@pytest.mark.parametrize(("tail", "error"), [
    (frame(b"\x0a\x05ab"), "not an events.Event (4 bytes that the C++ protobuf runtime "
                           "cannot parse)"),  # field 1 says 5 bytes, 2 follow
    (frame(SOR)[:-3], f"truncated frame: the length says {len(SOR)} bytes, the input ends "
                      f"after {len(SOR) - 3}"),
    (b"\x00\x00", "truncated frame: 2 of the 4 length bytes, then the end of the input"),
], ids=["garbage", "truncated-message", "truncated-length"])
def test_cxx_consumer_fails_on_a_bad_frame_naming_its_offset(
    qc_runs: Path, tail: bytes, error: str
) -> None:
    """A bad frame after a good one: the good one is reported, then one error line naming the
    bad frame's index and byte offset, and exit code 1."""
    done = subprocess.run([str(qc_runs)], input=frame(SOR) + tail, capture_output=True,
                          timeout=30, check=False)
    assert done.returncode == 1
    assert done.stdout.decode().splitlines() == ['{"sor": 5, "env": "ENV1"}']
    assert done.stderr.decode().splitlines()[-1] == (
        f"qc_runs: message 1 at byte offset {4 + len(SOR)}: {error}")
