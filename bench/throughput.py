"""Throughput: events/s acknowledged by the broker through the whole host path, side by side
with four peers on the same broker in the same run, interleaved round by round.

Paths (an "event" is a message the broker acknowledged; rate = acknowledged / (drive time +
time until the last acknowledgement)):

- ``host``: an EnvironmentManager drives ``--envs`` deployed environments (``kafka_enabled``
  true, default workflow) through CONFIGURE/RESET cycles from one thread; every step fires the
  hooks; core-kafka encodes ``events.Event`` and the legacy plugin's calls publish
  ``NewStateNotification``/``ActiveRunsList``, all through the shared publisher (acks=all,
  idempotence, message.timeout.ms=0). Counts from ``host.metrics()`` / ``host.flush()``.
- ``host-fullq``: the same with a queue cap of ``FULL_QUEUE`` messages, so that librdkafka's
  queue is full most of the time and the publisher's overflow path (``block``) is what runs:
  its CPU per event, against the ``host`` run's unsaturated one, is the saturation check.
- ``raw``: one confluent_kafka.Producer with the publisher's exact librdkafka config, producing
  the messages one cycle over the same environments publishes (recorded byte for byte by a
  capture host whose plugins record instead of producing) in a loop.
- ``go-none`` / ``go-all``: ``bench/gowriter``, segmentio/kafka-go configured as the reference
  system's event writer (one Writer per topic, default batching: 100 messages / 1 s, a goroutine
  per event), the same values; acks as shipped (none) and acks=all.
- ``perf``: Kafka's own ProducerPerformance (kafka-tools jar of the dev broker), acks=all,
  idempotence, records of the captured messages' mean size, to one fresh topic.

Also per host run: the CPU per event of the driving thread and of the whole process (every
thread: driving, poller, librdkafka's), saturated (the continuous run, until the last
acknowledgement) and unsaturated (bursts of 50 cycles, each flushed before the next, so
librdkafka's queue never fills): the saturated cost should stay within 20 % of the unsaturated
one, for both.

Every round uses fresh topics under its own root and deletes them at the end of the round.

    .venv/bin/python bench/throughput.py [--quick] [--seconds 10] [--repeat 3] [--envs 4]
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common as c
from confluent_kafka import Producer

from aliecs_integration.publish.topic_admin import ensure_topics

Message = c.Message
TARGET_RATE = 150_000.0
TARGET_RAW_RATIO = 0.5
SATURATION_SLACK = 1.20
FULL_QUEUE = 2000
GO_DIR = c.REPO / "bench" / "gowriter"
CACHE = Path(os.environ.get("ALIECS_CACHE", Path.home() / ".cache" / "aliecs-integration"))
KAFKA_LIBS = CACHE / "kafka-4.1.1" / "libs"


def host_run(settings: c.Settings, seconds: float, envs: int) -> dict[str, Any]:
    """One timed host-path run, after an unsaturated phase measuring the per-event cost."""
    host = c.start_host(settings)
    try:
        with c.manager_for(host) as manager:
            ids = c.deployed_environments(manager, envs)

            def cycles(count: int) -> int:
                for _ in range(count):
                    for env_id in ids:
                        manager.transition(env_id, "CONFIGURE")
                        manager.transition(env_id, "RESET")
                return 2 * count * len(ids)

            cycles(5)
            c.wait_ready(host)
            # unsaturated: bursts far below librdkafka's queue window, flushed in between
            calm_cpu = calm_events = calm_proc = 0.0
            for _ in range(5):
                before = c.core_metrics(host).published
                cpu, proc = time.thread_time(), time.process_time()
                cycles(50)
                calm_cpu += time.thread_time() - cpu
                calm_events += c.core_metrics(host).published - before
                c.flush(host, 60)
                calm_proc += time.process_time() - proc
            before = c.core_metrics(host).sent
            published_before = c.core_metrics(host).published
            transitions = 0
            cpu, proc = time.thread_time(), time.process_time()
            started = time.perf_counter()
            while time.perf_counter() - started < seconds:
                transitions += cycles(1)
            driven = time.perf_counter() - started
            drive_cpu = time.thread_time() - cpu
            published = c.core_metrics(host).published - published_before
            report = c.flush(host, 120)
            total = time.perf_counter() - started
            proc_cpu = time.process_time() - proc
            snap = c.core_metrics(host)
            acked = snap.sent - before
    finally:
        host.stop()
    return {
        "acknowledged": acked, "seconds": round(total, 3), "drive_seconds": round(driven, 3),
        "events_per_s": acked / total, "published_per_s": published / driven,
        "transitions": transitions, "events_per_transition": acked / max(1, transitions),
        "saturated_us_per_event": drive_cpu / max(1, published) * 1e6,
        "unsaturated_us_per_event": calm_cpu / max(1.0, calm_events) * 1e6,
        "process_cpu_us_per_event": proc_cpu / max(1, acked) * 1e6,
        "unsaturated_process_cpu_us_per_event": calm_proc / max(1.0, calm_events) * 1e6,
        "failed": snap.failed, "dropped": snap.dropped, "undelivered": report.undelivered,
    }


def raw_run(config: dict[str, Any], messages: list[Message], seconds: float) -> dict[str, Any]:
    """The same bytes through a bare Producer with the same config (failures-only reports:
    acknowledged = produced - failed once flushed)."""
    failed = [0]

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            failed[0] += 1

    producer = Producer({**config, "on_delivery": on_delivery})
    for topic, value, key, headers in messages:  # warm-up: connections, PID, metadata
        producer.produce(topic, value, key, headers=headers)
    producer.flush(60)
    produce, poll = producer.produce, producer.poll
    produced = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for topic, value, key, headers in messages:
            while True:
                try:
                    produce(topic, value, key, headers=headers)
                    break
                except BufferError:
                    poll(0.001)
        produced += len(messages)
        poll(0)
    driven = time.perf_counter() - started
    left = producer.flush(120)
    total = time.perf_counter() - started
    acked = produced - failed[0] - left
    return {"acknowledged": acked, "seconds": round(total, 3), "drive_seconds": round(driven, 3),
            "events_per_s": acked / total, "failed": failed[0], "undelivered": left}


def go_binary() -> Path | None:
    """Build bench/gowriter (modules from the Go module proxy, cached outside the repo)."""
    go = shutil.which("go")
    if go is None:
        print("go not found: the Go writer rows are skipped")
        return None
    out = CACHE / "bench" / "gowriter"
    out.parent.mkdir(parents=True, exist_ok=True)
    res = subprocess.run([go, "build", "-o", str(out), "."], cwd=GO_DIR, capture_output=True,
                         text=True, check=False)
    if res.returncode != 0:
        print(f"go build failed, the Go writer rows are skipped:\n{res.stderr}")
        return None
    return out


def write_messages(messages: list[Message], path: Path) -> None:
    with path.open("wb") as fh:
        for topic, value, _key, _headers in messages:  # values only, as the reference's
            name = topic.encode()
            fh.write(struct.pack(">H", len(name)) + name + struct.pack(">I", len(value)) + value)


def go_run(binary: Path, bootstrap: str, stream: Path, seconds: float, acks: str) -> dict[str, Any]:
    res = subprocess.run([str(binary), "-bootstrap", bootstrap, "-messages", str(stream),
                          "-seconds", str(seconds), "-acks", acks],
                         capture_output=True, text=True, timeout=seconds + 300, check=False)
    if res.returncode != 0:
        raise SystemExit(f"gowriter failed:\n{res.stdout}{res.stderr}")
    figures: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return figures


def perf_run(bootstrap: str, root: str, record_size: int, seconds: float) -> dict[str, Any]:
    """Kafka's ProducerPerformance: about ``seconds`` worth of records at full speed."""
    topic = f"{root}.perf"
    c.create_topics(bootstrap, [topic])
    records = int(250_000 * seconds)
    cmd = ["java", "-Xmx512m", "-cp", f"{KAFKA_LIBS}/*",
           "org.apache.kafka.tools.ProducerPerformance", "--topic", topic,
           "--num-records", str(records), "--record-size", str(record_size),
           "--throughput", "-1", "--producer-props", f"bootstrap.servers={bootstrap}", "acks=all",
           "enable.idempotence=true"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 20 + 120,
                         check=False)
    last = [line for line in res.stdout.splitlines() if "records sent" in line]
    if res.returncode != 0 or not last:
        raise SystemExit(f"ProducerPerformance failed:\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
    words = last[-1].split()
    return {"acknowledged": int(words[0]), "events_per_s": float(words[3]),
            "record_size": record_size, "summary": last[-1]}


def run_round(i: int, args: Any, seconds: float, binary: Path | None, wanted: list[str],
              runs: dict[str, list[dict[str, Any]]]) -> None:
    """Round ``i``: every wanted path once on fresh topics (deleted at the end)."""
    root = c.topic_root()
    settings = c.settings_for(args.bootstrap, root)
    try:
        captured = c.capture_cycle(settings, envs=args.envs)
        record_size = round(sum(len(v) for _, v, _, _ in captured) / len(captured))
        with tempfile.TemporaryDirectory(prefix="aliecs-bench-") as tmp:
            stream = Path(tmp) / "messages.bin"
            write_messages(captured, stream)
            steps: dict[str, Callable[[], dict[str, Any]]] = {
                "host": lambda: host_run(settings, seconds, args.envs),
                "host-fullq": lambda: host_run(
                    c.settings_for(args.bootstrap, root, queue={"maxMessages": FULL_QUEUE}),
                    seconds, args.envs),
                "raw": lambda: raw_run(c.raw_config(settings), captured, seconds),
                "perf": lambda: perf_run(args.bootstrap, root, record_size, seconds),
            }
            if binary is not None:
                steps["go-none"] = lambda: go_run(binary, args.bootstrap, stream, seconds, "none")
                steps["go-all"] = lambda: go_run(binary, args.bootstrap, stream, seconds, "all")
            if "host" not in wanted:  # nothing else creates the captured messages' topics
                ensure_topics((args.bootstrap,), settings.producer,
                              sorted({topic for topic, _, _, _ in captured}), timeout_s=60)
            # the host first (it creates the topics), then the peers in a rotating order
            peers = [w for w in wanted if w != "host" and w in steps]  # host-fullq among them
            shift = i % max(1, len(peers))
            order = (["host"] if "host" in wanted else []) + peers[shift:] + peers[:shift]
            for name in order:
                figures = steps[name]()
                figures["loadavg"] = os.getloadavg()[0]
                runs[name].append(figures)
                line = (f"round {i + 1} {name:<8}: {figures['events_per_s']:>10,.0f} events/s "
                        f"acknowledged (load {figures['loadavg']:.1f})")
                if name.startswith("host"):
                    f = figures
                    line += (f"; CPU µs/event driving thread {f['unsaturated_us_per_event']:.2f} "
                             f"unsaturated / {f['saturated_us_per_event']:.2f} saturated, "
                             f"process {f['unsaturated_process_cpu_us_per_event']:.2f} / "
                             f"{f['process_cpu_us_per_event']:.2f}; {f['failed']} failed, "
                             f"{f['dropped']} dropped, {f['undelivered']} undelivered")
                print(line)
    finally:
        deleted = c.delete_topics(args.bootstrap, root)
        print(f"round {i + 1}: deleted {deleted} topic(s) under {root}.")


def main() -> None:
    p = c.parser(__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=0.0,
                   help="sustained duration of each run (default 10, quick 3)")
    p.add_argument("--envs", type=int, default=4, help="environments cycled (default 4)")
    p.add_argument("--paths", default="host,host-fullq,raw,go-none,go-all,perf",
                   help="comma-separated paths to run (default all)")
    args = p.parse_args()
    c.setup_logging(args.verbose)
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    repeat = args.repeat or (2 if args.quick else 3)
    wanted = args.paths.split(",")
    broker = c.Broker(args.kafka_script, args.bootstrap)
    started_broker = broker.ensure_up()
    binary = go_binary() if any(w.startswith("go") for w in wanted) else None
    loads: list[tuple[float, float, float]] = []
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in wanted}
    print(f"{repeat} rounds x {seconds:g} s per path, interleaved; load average at start "
          f"{os.getloadavg()}\n")
    for i in range(repeat):
        loads.append(os.getloadavg())
        run_round(i, args, seconds, binary, wanted, runs)
    medians = {name: c.median([r["events_per_s"] for r in rs]) for name, rs in runs.items() if rs}
    host_rate = medians.get("host", float("nan"))
    print(f"\nmedians of {repeat} (ratio = path / host path):")
    for name, rate in medians.items():
        print(f"  {name:<8} {rate:>10,.0f} events/s   {c.ratio(rate, host_rate):5.2f}x")
    results: dict[str, Any] = {"medians": medians, "runs": runs, "loadavg_per_round": loads}
    if runs.get("host"):
        h = runs["host"]
        unsat = c.median([r["unsaturated_us_per_event"] for r in h])
        sat = c.median([r["saturated_us_per_event"] for r in h])
        punsat = c.median([r["unsaturated_process_cpu_us_per_event"] for r in h])
        psat = c.median([r["process_cpu_us_per_event"] for r in h])
        lost = sum(r["failed"] + r["dropped"] + r["undelivered"] for r in h)
        drv_ratio = c.ratio(sat, unsat)
        proc_ratio = c.ratio(psat, punsat)
        if runs.get("host-fullq"):  # the queue full most of the time: the overflow path
            full = runs["host-fullq"]
            sat = c.median([r["saturated_us_per_event"] for r in full])
            psat = c.median([r["process_cpu_us_per_event"] for r in full])
            # per round (the two runs close in time, under the same load), then the median
            drv_ratio = c.median([c.ratio(f["saturated_us_per_event"],
                                          u["unsaturated_us_per_event"])
                                  for f, u in zip(full, h, strict=False)])
            proc_ratio = c.median([c.ratio(f["process_cpu_us_per_event"],
                                           u["unsaturated_process_cpu_us_per_event"])
                                   for f, u in zip(full, h, strict=False)])
        targets = {"host_ge_150k": host_rate >= TARGET_RATE,
                   "saturated_within_20pct": drv_ratio <= SATURATION_SLACK
                   and proc_ratio <= SATURATION_SLACK}
        if "go-all" in medians:
            targets["host_ge_go_acks_all"] = host_rate >= medians["go-all"]
        if "raw" in medians:
            results["host_vs_raw"] = c.ratio(host_rate, medians["raw"])
            print(f"host / raw confluent-kafka: {results['host_vs_raw']:.2f}x (long-term goal "
                  f">= {TARGET_RAW_RATIO}x)")
        print(f"CPU per event ({'host-fullq' if runs.get('host-fullq') else 'host'} saturated): "
              f"driving thread unsaturated {unsat:.2f} µs, saturated {sat:.2f} µs "
              f"(median ratio per round {drv_ratio:.2f}); whole process {punsat:.2f} / "
              f"{psat:.2f} µs (median ratio per round {proc_ratio:.2f}); "
              f"failed/dropped/undelivered in host runs: "
              f"{lost}")
        for name, met in targets.items():
            print(f"target {name}: {c.verdict(met)}")
        results |= {"targets": targets, "unsaturated_us_per_event": unsat,
                    "saturated_us_per_event": sat, "unsaturated_process_us_per_event": punsat,
                    "saturated_process_us_per_event": psat, "saturated_ratio": drv_ratio,
                    "saturated_process_ratio": proc_ratio}
    c.write_result("throughput-quick" if args.quick else "throughput", {
        "quick": args.quick, "seconds_per_run": seconds, "repeat": repeat, "envs": args.envs,
        "broker_started_by_bench": started_broker, **results,
    })


if __name__ == "__main__":
    main()
