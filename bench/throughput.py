"""Throughput: events/s acknowledged by the broker through the whole host path, against raw
confluent-kafka producing the same bytes to the same topics with the same producer settings.

Host path: an EnvironmentManager drives ``--envs`` deployed environments (``kafka_enabled``
true, default workflow) through CONFIGURE/RESET cycles from one thread; every step fires the
hooks; core-kafka encodes protobuf ``events.Event`` and the legacy plugin's calls publish
``NewStateNotification``/``ActiveRunsList``, all through the shared Publisher (acks=all,
idempotent, message.timeout.ms=0; librdkafka's default linger.ms). An "event" is a message
acknowledged by the broker. Rate = acknowledged messages / (drive time + time for the last
acknowledgement), i.e. nothing is counted that the broker has not confirmed.

Baseline: one confluent_kafka.Producer with the Publisher's exact librdkafka config, producing
the messages one CONFIGURE/RESET cycle published (captured byte for byte) in a loop, polling
on BufferError and once per cycle; same counting.

    .venv/bin/python bench/throughput.py [--quick] [--seconds 30] [--repeat 3] [--envs 4]
"""

from __future__ import annotations

import time
from typing import Any

import common as c
from confluent_kafka import Producer

Message = tuple[str, bytes, bytes | None]
TARGET_RATIO, TARGET_RATE = 0.5, 100_000.0


def host_run(bootstrap: str, root: str, seconds: float, envs: int) -> tuple[dict[str, Any],
                                                                            list[Message]]:
    """One timed host-path run; returns its figures and one cycle's messages (for raw)."""
    host = c.start_host(c.settings_for(bootstrap, root))
    publisher = c.publisher_of(host)
    captured: list[Message] = []
    try:
        with c.manager_for(host) as manager:
            ids = c.deployed_environments(manager, envs)
            c.wait_ready(publisher)
            publish = publisher.publish

            def capture(topic: str, value: bytes, key: bytes | None = None) -> None:
                captured.append((topic, value, key))
                publish(topic, value, key)

            publisher.publish = capture  # type: ignore[method-assign]  # one cycle, then off
            manager.transition(ids[0], "CONFIGURE")
            manager.transition(ids[0], "RESET")
            publisher.publish = publish  # type: ignore[method-assign]
            c.wait_ready(publisher)
            before = publisher.metrics.snapshot().sent
            transitions = 0
            started = time.perf_counter()
            while time.perf_counter() - started < seconds:
                for env_id in ids:
                    manager.transition(env_id, "CONFIGURE")
                    manager.transition(env_id, "RESET")
                transitions += 2 * len(ids)
            driven = time.perf_counter() - started
            mid = publisher.metrics.snapshot()
            published = mid.sent - before + mid.queued
            report = publisher.flush(120)
            total = time.perf_counter() - started
            snap = publisher.metrics.snapshot()
            acked = snap.sent - before
    finally:
        host.stop()
    return {
        "acknowledged": acked, "seconds": round(total, 3), "drive_seconds": round(driven, 3),
        "events_per_s": acked / total, "published_per_s": published / driven,
        "transitions": transitions, "events_per_transition": acked / max(1, transitions),
        "failed": snap.failed, "dropped": snap.dropped, "undelivered": report.undelivered,
    }, captured


def raw_run(config: dict[str, Any], messages: list[Message], seconds: float) -> dict[str, Any]:
    """The same bytes through a bare Producer with the same config."""
    acked = [0]
    failed = [0]

    def on_delivery(err: Any, msg: Any) -> None:
        if err is None:
            acked[0] += 1
        else:
            failed[0] += 1

    producer = Producer({**config, "on_delivery": on_delivery})
    for topic, value, key in messages:  # warm-up: connections, idempotence PID, metadata
        producer.produce(topic, value, key)
    producer.flush(60)
    acked[0] = 0
    produce, poll = producer.produce, producer.poll
    produced = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for topic, value, key in messages:
            while True:
                try:
                    produce(topic, value, key)
                    break
                except BufferError:
                    poll(0.001)
        produced += len(messages)
        poll(0)
    driven = time.perf_counter() - started
    left = producer.flush(120)
    total = time.perf_counter() - started
    return {"acknowledged": acked[0], "seconds": round(total, 3),
            "drive_seconds": round(driven, 3), "events_per_s": acked[0] / total,
            "published_per_s": produced / driven, "failed": failed[0], "undelivered": left}


def main() -> None:
    p = c.parser(__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=0.0,
                   help="sustained duration of each run (default 30, quick 3)")
    p.add_argument("--envs", type=int, default=4, help="environments cycled (default 4)")
    args = p.parse_args()
    c.setup_logging(args.verbose)
    seconds = args.seconds or (3.0 if args.quick else 30.0)
    repeat = args.repeat or (2 if args.quick else 3)
    broker = c.Broker(args.kafka_script, args.bootstrap)
    started_broker = broker.ensure_up()
    root = c.topic_root()
    print(f"topics under {root}.*; {repeat} x {seconds:g} s per side, interleaved\n")
    hosts: list[dict[str, Any]] = []
    raws: list[dict[str, Any]] = []
    config: dict[str, Any] = {}
    for i in range(repeat):
        figures, captured = host_run(args.bootstrap, root, seconds, args.envs)
        hosts.append(figures)
        print(f"host  #{i + 1}: {figures['events_per_s']:>10,.0f} events/s acknowledged "
              f"({figures['acknowledged']:,} in {figures['seconds']} s; "
              f"{figures['events_per_transition']:.1f} events/transition, "
              f"{figures['failed']} failed, {figures['dropped']} dropped)")
        if not config:
            config = _config_from(args.bootstrap, root)
        raw = raw_run(config, captured, seconds)
        raws.append(raw)
        print(f"raw   #{i + 1}: {raw['events_per_s']:>10,.0f} events/s acknowledged "
              f"({raw['acknowledged']:,} in {raw['seconds']} s)")
    host_rate = c.median([h["events_per_s"] for h in hosts])
    raw_rate = c.median([r["events_per_s"] for r in raws])
    rel = c.ratio(host_rate, raw_rate)
    lost = sum(h["failed"] + h["dropped"] + h["undelivered"] for h in hosts)
    print(f"\nmedian host path: {host_rate:,.0f} events/s   raw confluent-kafka: "
          f"{raw_rate:,.0f} events/s   ratio {rel:.2f}x")
    print(f"target >= {TARGET_RATIO}x raw: {c.verdict(rel >= TARGET_RATIO)}; target >= "
          f"{TARGET_RATE:,.0f} events/s: {c.verdict(host_rate >= TARGET_RATE)}; "
          f"failed/dropped/undelivered in host runs: {lost}")
    c.write_result("throughput-quick" if args.quick else "throughput", {
        "quick": args.quick, "seconds_per_run": seconds, "repeat": repeat, "envs": args.envs,
        "broker_started_by_bench": started_broker,
        "producer_config": {k: v for k, v in config.items() if "password" not in k},
        "host": {"median_events_per_s": host_rate, "runs": hosts},
        "raw": {"median_events_per_s": raw_rate, "runs": raws},
        "ratio": rel,
        "targets": {"ratio_ge_0.5": rel >= TARGET_RATIO, "rate_ge_100k": host_rate >= TARGET_RATE},
    })


def _config_from(bootstrap: str, root: str) -> dict[str, Any]:
    """The Publisher's librdkafka config for these settings (without starting a host)."""
    from aliecs_integration.publish.publisher import Publisher

    settings = c.settings_for(bootstrap, root)
    probe = Publisher(settings.kafka_endpoints, settings.producer, name="probe")
    try:
        return c.raw_config(probe)
    finally:
        probe.close(0)


if __name__ == "__main__":
    main()
