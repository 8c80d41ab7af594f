"""Latency: hook fired -> delivery acknowledged, p50/p99/max, at fixed rates (paced loop).

Host path: ``PluginHost.fire(on_env_transition_step, record)`` with core-kafka and the legacy
plugin loaded; each fire publishes one ``events.Event`` on the environment topic (one partition,
so acknowledgements come back in order: the i-th acknowledgement is the i-th fire). The moment of
an acknowledgement is taken when the publisher's delivery callback records it
(``Metrics.record_sent`` is wrapped for that), i.e. what the process itself can observe.

Baseline: a bare confluent_kafka.Producer with the Publisher's exact librdkafka config, the same
bytes to the same topic at the same rate, ``poll()`` serving callbacks while the loop waits.

The paced loop fires event i at ``t0 + i / rate`` (late events are fired at once, never
skipped); latency is measured from the actual fire moment. librdkafka's ``linger.ms`` (default 5
ms) holds a message up to that long to batch it, so each rate is run with the default and with
``--linger`` (default 1 ms, what a latency-sensitive deployment would set in
``kafkaProducer.properties``).

    .venv/bin/python bench/latency.py [--quick] [--seconds 10] [--rates 1000,10000]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import common as c
from confluent_kafka import Producer

from aliecs_integration import hookspecs
from aliecs_integration.engine.environment import Environment
from aliecs_integration.publish.metrics import Metrics
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


class AckTimes:
    """Wraps ``Metrics.record_sent`` (the publisher's delivery callback calls it once per
    acknowledged message) to note the moment of each acknowledgement, while active."""

    def __init__(self) -> None:
        self.moments: list[float] = []
        self._original = Metrics.record_sent

    def __enter__(self) -> AckTimes:
        original, moments = self._original, self.moments

        def record_sent(metrics: Metrics, topic: str, latency_s: float) -> None:
            moments.append(time.perf_counter())
            original(metrics, topic, latency_s)

        Metrics.record_sent = record_sent  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        Metrics.record_sent = self._original  # type: ignore[method-assign]


def host_run(bootstrap: str, root: str, rate: float, seconds: float,
             properties: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], bytes, str]:
    with AckTimes() as acks:  # before the publisher exists: it may keep the bound method
        return _host_run(acks, bootstrap, root, rate, seconds, properties)


def _host_run(acks: AckTimes, bootstrap: str, root: str, rate: float, seconds: float,
              properties: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], bytes, str]:
    host = c.start_host(c.settings_for(bootstrap, root, properties=properties))
    publisher = c.publisher_of(host)
    env = Environment("LATENCYENV01", detectors=("TPC",), run_type="PHYSICS",
                      user_vars=c.ENV_VARIABLES, runtime_vars={}, defaults={}, workflow=None,
                      user=None)
    record = TransitionStepEvent(env.snapshot(), "CONFIGURE", "enter_CONFIGURED",
                                 OpStatus.ONGOING, False, "transition step starting")
    captured: list[tuple[str, bytes]] = []
    publish = publisher.publish

    def capture(topic: str, value: bytes, key: bytes | None = None) -> None:
        captured.append((topic, value))
        publish(topic, value, key)

    publisher.publish = capture  # type: ignore[method-assign]
    host.fire(hookspecs.on_env_transition_step, record)
    publisher.publish = publish  # type: ignore[method-assign]
    c.wait_ready(publisher)
    acked = acks.moments
    acked.clear()
    try:
        fired = paced(rate, seconds, lambda: host.fire(hookspecs.on_env_transition_step, record),
                      time.sleep)
        publisher.flush(60)
    finally:
        host.stop()
    topic, value = captured[0]
    return summary(fired, acked, seconds), c.raw_config(publisher), value, topic


def raw_run(config: dict[str, Any], topic: str, value: bytes, key: bytes, rate: float,
            seconds: float) -> dict[str, Any]:
    acked: list[float] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is None:
            acked.append(time.perf_counter())

    producer = Producer({**config, "on_delivery": on_delivery})
    producer.produce(topic, value, key)
    producer.flush(30)
    acked.clear()

    def wait(seconds_ahead: float) -> None:
        producer.poll(seconds_ahead)

    fired = paced(rate, seconds, lambda: producer.produce(topic, value, key), wait)
    producer.flush(60)
    return summary(fired, acked, seconds)


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
                raws.append(raw_run(config, topic, value, b"LATENCYENV01", rate, seconds))
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
    c.write_result("latency-quick" if args.quick else "latency", {
        "quick": args.quick, "seconds_per_run": seconds, "repeat": repeat,
        "broker_started_by_bench": started_broker, "results": results,
        "targets": {"p99_le_5ms_at_1k": targets},
    })


if __name__ == "__main__":
    main()
