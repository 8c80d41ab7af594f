"""Spool cost: events/s acknowledged through the host path (core-kafka, numbered
integrated-service events fired from one thread) with the on-disk spool
(``kafkaProducer.spool.path``) against the same run without it, interleaved, same broker,
same settings otherwise. Rate = acknowledged events / (fire time + time to the last
acknowledgement). The topics are deleted at the end.

    .venv/bin/python bench/spool_cost.py [--quick] [--events 100000] [--repeat 3]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import common as c
from confluent_kafka.admin import AdminClient

from aliecs_integration import hookspecs
from aliecs_integration.records import IntegratedServiceEvent, OpStatus
from aliecs_integration.settings.core import Settings


def settings(bootstrap: str, root: str, spool: Path | None) -> Settings:
    producer: dict[str, Any] = {"topicRoot": root, "topics": {"replicationFactor": 1}}
    if spool is not None:
        producer["spool"] = {"path": str(spool)}
    return Settings.from_dict({"kafkaEndpoints": [bootstrap], "kafkaProducer": producer},
                              source="bench")


def one_run(bootstrap: str, root: str, events: int, spool: Path | None) -> dict[str, Any]:
    host = c.start_host(settings(bootstrap, root, spool))
    try:
        fire = host.fire
        template = dict(service="bench", operation_name="count()",
                        operation_status=OpStatus.DONE_OK)
        fire(hookspecs.on_integrated_service_event, IntegratedServiceEvent(
            environment_id="warm", payload="-1", **template))  # type: ignore[arg-type]
        c.wait_ready(host)
        before = c.core_metrics(host).sent
        started = time.perf_counter()
        for i in range(events):
            fire(hookspecs.on_integrated_service_event, IntegratedServiceEvent(
                environment_id=f"env{i % 8}", payload=str(i), **template))  # type: ignore[arg-type]
        fired = time.perf_counter() - started
        report = c.flush(host, 300)
        total = time.perf_counter() - started
        snap = c.core_metrics(host)
    finally:
        host.stop()
    # what the journal keeps on disk after a clean stop (through the files, not the publisher)
    stats = (None if spool is None else
             {"journal_bytes": sum(f.stat().st_size for f in spool.rglob("*") if f.is_file())})
    acked = snap.sent - before
    return {"spool": spool is not None, "acknowledged": acked, "seconds": round(total, 3),
            "fired_per_s": events / fired, "events_per_s": acked / total,
            "failed": snap.failed, "dropped": snap.dropped, "undelivered": report.undelivered,
            "spool_stats": stats}


def main() -> None:
    p = c.parser(__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=0, help="events per run (default 100000, "
                   "quick 10000)")
    args = p.parse_args()
    c.setup_logging(args.verbose)
    events = args.events or (10_000 if args.quick else 100_000)
    repeat = args.repeat or (2 if args.quick else 3)
    broker = c.Broker(args.kafka_script, args.bootstrap)
    started_broker = broker.ensure_up()
    root = c.topic_root()
    print(f"topics under {root}.*; {repeat} x {events:,} events per side, interleaved\n")
    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="aliecs-spool-bench-") as tmp:
        try:
            for i in range(repeat):
                for spooled in (False, True):
                    spool = Path(tmp) / f"spool{i}.db" if spooled else None
                    figures = one_run(args.bootstrap, root, events, spool)
                    runs[spooled].append(figures)
                    print(f"{'spool   ' if spooled else 'no spool'} #{i + 1}: "
                          f"{figures['events_per_s']:>9,.0f} events/s acknowledged "
                          f"({figures['acknowledged']:,} in {figures['seconds']} s; fired "
                          f"{figures['fired_per_s']:,.0f}/s; {figures['failed']} failed, "
                          f"{figures['dropped']} dropped, {figures['undelivered']} undelivered"
                          + (f"; spool after close {figures['spool_stats']}" if spooled
                             else "") + ")")
        finally:
            admin = AdminClient({"bootstrap.servers": args.bootstrap})
            topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(root)]
            if topics:
                for future in admin.delete_topics(topics).values():
                    future.result(timeout=30)
    base = c.median([r["events_per_s"] for r in runs[False]])
    with_spool = c.median([r["events_per_s"] for r in runs[True]])
    rel = c.ratio(with_spool, base)
    print(f"\nmedian without spool: {base:,.0f} events/s   with spool: {with_spool:,.0f} "
          f"events/s   ratio {rel:.2f}x (cost {100 * (1 - rel):.0f} %)")
    c.write_result("spool_cost-quick" if args.quick else "spool_cost", {
        "quick": args.quick, "events_per_run": events, "repeat": repeat,
        "broker_started_by_bench": started_broker,
        "without_spool": {"median_events_per_s": base, "runs": runs[False]},
        "with_spool": {"median_events_per_s": with_spool, "runs": runs[True]},
        "ratio": rel,
    })


if __name__ == "__main__":
    main()
