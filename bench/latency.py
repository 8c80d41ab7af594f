"""Latency: hook fired -> delivery acknowledged, p50/p99/max, at fixed rates (paced loop).

Host path: ``PluginHost.fire(on_env_transition_step, record)`` with core-kafka and the legacy
plugin loaded; each fire publishes one ``events.Event`` on the environment topic (one partition,
so messages become readable in order: the i-th one read is the i-th fire). The moment of an
acknowledgement is when a consumer in the same process (assigned at the partition's end offset,
``fetch.wait.max.ms`` 1) reads the message: the publisher reports only failures one by one, so
that outside view is used for both paths.

Baseline: a bare confluent_kafka.Producer with the Publisher's exact librdkafka config, the same
bytes to the same topic at the same rate, ``poll()`` serving callbacks while the loop waits.
Topics are deleted at the end.

The paced loop fires event i at ``t0 + i / rate`` (late events are fired at once, never
skipped); latency is measured from the actual fire moment. librdkafka's ``linger.ms`` (default 5
ms) holds a message up to that long to batch it, so each rate is run with the default and with
``--linger`` (default 1 ms, what a latency-sensitive deployment would set in
``kafkaProducer.properties``).

    .venv/bin/python bench/latency.py [--quick] [--seconds 10] [--rates 1000,10000]
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import common as c
from aliecs_integration_plugins.core_kafka import encode
from confluent_kafka import Consumer, Producer, TopicPartition

from aliecs_integration import hookspecs
from aliecs_integration.engine.environment import Environment
from aliecs_integration.publish.topics import TopicNames
from aliecs_integration.records import OpStatus, TransitionStepEvent

TARGET_P99_MS_AT_1K = 5.0


def paced(rate: float, seconds: float, fire: Callable[[], object],
          wait: Callable[[float], None]) -> list[float]:
    """Call ``fire`` ``rate`` times a second for ``seconds``; the fire moments (perf_counter)."""
    count = int(rate * seconds)
    interval = 1.0 / rate
    moments: list[float] = []
    now = time.perf_counter
    started = now()
    for i in range(count):
        due = started + i * interval
        ahead = due - now()
        if ahead > 0:
            wait(ahead)
        moments.append(now())
        fire()
    return moments


def summary(fired: list[float], acked: list[float], seconds: float) -> dict[str, Any]:
    """p50/p99/max (ms) of ack - fire, matched in order; achieved rate."""
    latencies = sorted((a - f) * 1e3 for f, a in zip(fired, acked, strict=False))
    return {
        "count": len(latencies), "fired": len(fired),
        "achieved_rate": len(fired) / (fired[-1] - fired[0]) if len(fired) > 1 else 0.0,
        "p50_ms": c.percentile(latencies, 50), "p99_ms": c.percentile(latencies, 99),
        "max_ms": latencies[-1] if latencies else float("nan"), "seconds": seconds,
    }


class Receiver:
    """Notes the moment each new message of ``topic`` (one partition) can be read: a consumer
    assigned at the partition's end offset, fetching with a 1 ms wait, on its own thread. A message
    is readable once the broker acknowledged it (acks=all: the high watermark passed it), so
    the i-th moment is the i-th acknowledgement as seen from outside the producer, the same
    way for both paths."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.moments: list[float] = []
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-latency",
                                   "enable.auto.commit": False, "fetch.wait.max.ms": 1,
                                   "fetch.min.bytes": 1})
        _low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
        self._consumer.assign([TopicPartition(topic, 0, high)])  # nothing fired yet is read
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Receiver:
        self._consumer.poll(0.2)  # connect and start fetching before anything is fired
        self._thread.start()
        return self

    def _run(self) -> None:
        now, moments, poll = time.perf_counter, self.moments, self._consumer.poll
        while not self._stop.is_set():
            message = poll(0.05)  # returns as soon as one message is there
            if message is not None and message.error() is None:
                moments.append(now())

    def wait_for(self, count: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.moments) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._consumer.close()


def host_run(bootstrap: str, root: str, rate: float, seconds: float,
             properties: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], bytes, str]:
    settings = c.settings_for(bootstrap, root, properties=properties)
    host = c.start_host(settings)
    env = Environment("LATENCYENV01", detectors=("TPC",), run_type="PHYSICS",
                      user_vars=c.ENV_VARIABLES, runtime_vars={}, defaults={}, workflow=None,
                      user=None)
    record = TransitionStepEvent(env.snapshot(), "CONFIGURE", "enter_CONFIGURED",
                                 OpStatus.ONGOING, False, "transition step starting")
    message = encode(record, TopicNames(settings.producer.topic_root))  # what core-kafka sends
    try:
        host.fire(hookspecs.on_env_transition_step, record)
        c.wait_ready(host)
        with Receiver(bootstrap, message.topic) as receiver:
            host.fire(hookspecs.on_env_transition_step, record)  # the consumer fetches: warm
            receiver.wait_for(1)
            receiver.moments.clear()
            fired = paced(rate, seconds,
                          lambda: host.fire(hookspecs.on_env_transition_step, record), time.sleep)
            c.flush(host, 60)
            receiver.wait_for(len(fired))
    finally:
        host.stop()
    return (summary(fired, receiver.moments, seconds), c.raw_config(settings), message.value,
            message.topic)


def raw_run(config: dict[str, Any], bootstrap: str, topic: str, value: bytes, key: bytes,
            rate: float, seconds: float) -> dict[str, Any]:
    producer = Producer(config)
    producer.produce(topic, value, key)
    producer.flush(30)

    def wait(seconds_ahead: float) -> None:
        producer.poll(seconds_ahead)

    with Receiver(bootstrap, topic) as receiver:
        producer.produce(topic, value, key)  # the consumer is fetching: warm
        producer.flush(30)
        receiver.wait_for(1)
        receiver.moments.clear()
        fired = paced(rate, seconds, lambda: producer.produce(topic, value, key), wait)
        producer.flush(60)
        receiver.wait_for(len(fired))
    return summary(fired, receiver.moments, seconds)


def main() -> None:
    p = c.parser(__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=0.0, help="per run (default 10, quick 2)")
    p.add_argument("--rates", default="1000,10000", help="events/s, comma-separated")
    p.add_argument("--linger", type=float, default=1.0,
                   help="linger.ms of the second configuration (default 1)")
    args = p.parse_args()
    c.setup_logging(args.verbose)
    seconds = args.seconds or (2.0 if args.quick else 10.0)
    repeat = args.repeat or (2 if args.quick else 3)
    started_broker = c.Broker(args.kafka_script, args.bootstrap).ensure_up()
    root = c.topic_root()
    configs: dict[str, dict[str, Any]] = {"librdkafka default linger.ms (5)": {},
                                          f"linger.ms={args.linger:g}": {"linger.ms": args.linger}}
    results: list[dict[str, Any]] = []
    for label, properties in configs.items():
        for rate in (float(r) for r in args.rates.split(",")):
            hosts, raws = [], []
            for _ in range(repeat):
                h, config, value, topic = host_run(args.bootstrap, root, rate, seconds,
                                                   properties)
                hosts.append(h)
                raws.append(raw_run(config, args.bootstrap, topic, value, b"LATENCYENV01", rate,
                                    seconds))
            row: dict[str, Any] = {"config": label, "properties": properties, "rate": rate}
            for side, runs in (("host", hosts), ("raw", raws)):
                row[side] = {k: c.median([r[k] for r in runs])
                             for k in ("p50_ms", "p99_ms", "max_ms", "achieved_rate")}
                row[side]["runs"] = runs
            row["p99_ratio"] = c.ratio(row["host"]["p99_ms"], row["raw"]["p99_ms"])
            results.append(row)
            h, r = row["host"], row["raw"]
            print(f"{label:<34} {rate:>7,.0f}/s  host p50 {h['p50_ms']:6.2f} p99 "
                  f"{h['p99_ms']:6.2f} max {h['max_ms']:7.2f} ms (achieved "
                  f"{h['achieved_rate']:,.0f}/s) | raw p50 {r['p50_ms']:6.2f} p99 "
                  f"{r['p99_ms']:6.2f} max {r['max_ms']:7.2f} ms | p99 ratio "
                  f"{row['p99_ratio']:.2f}x")
    at_1k = [row for row in results if row["rate"] == 1000.0]
    targets = {row["config"]: row["host"]["p99_ms"] <= TARGET_P99_MS_AT_1K for row in at_1k}
    for label, met in targets.items():
        print(f"target p99 <= {TARGET_P99_MS_AT_1K:g} ms at 1k/s with {label}: {c.verdict(met)}")
    print(f"deleted {c.delete_topics(args.bootstrap, root)} topic(s) under {root}.")
    c.write_result("latency-quick" if args.quick else "latency", {
        "quick": args.quick, "seconds_per_run": seconds, "repeat": repeat,
        "broker_started_by_bench": started_broker, "results": results,
        "targets": {"p99_le_5ms_at_1k": targets},
    })


if __name__ == "__main__":
    main()
