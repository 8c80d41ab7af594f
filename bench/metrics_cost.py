"""Metrics cost: what the monitoring endpoint (``/metrics``, issue 15) costs per message.

Numbered integrated-service events are fired from one thread through the host path
(core-kafka, real broker) and flushed until acknowledged, in three modes, interleaved:

- ``off``: no endpoint (the baseline);
- ``idle``: the endpoint listening, never scraped;
- ``scraped``: the endpoint scraped over HTTP every 0.1 s by a thread of this process (150 times
  more often than a usual 15 s scrape interval), so the scrapes' CPU time is counted too.

Figures: CPU time of the whole process (every thread: driving, poller, HTTP server, scraper)
and of the driving thread alone, per acknowledged event, medians of the repetitions, and the
ratio to ``off``. Also the cost of one scrape. The topics are deleted at the end.

    .venv/bin/python bench/metrics_cost.py [--quick] [--events 200000] [--repeat 5]
"""

from __future__ import annotations

import threading
import time
import urllib.request
from typing import Any

import common as c
from prometheus_client import generate_latest

from aliecs_integration import hookspecs
from aliecs_integration.monitoring.collector import static_watch_status
from aliecs_integration.monitoring.endpoint import MonitoringEndpoint, start_monitoring
from aliecs_integration.records import IntegratedServiceEvent, OpStatus
from aliecs_integration.settings.core import Settings

MODES = ("off", "idle", "scraped")
SCRAPE_EVERY_S = 0.1


def settings(bootstrap: str, root: str) -> Settings:
    return Settings.from_dict({"kafkaEndpoints": [bootstrap], "kafkaProducer": {
        "topicRoot": root, "topics": {"replicationFactor": 1}}}, source="bench")


def scraper(url: str, stop: threading.Event, costs: list[float]) -> None:
    while True:
        started = time.thread_time()
        with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
            response.read()
        costs.append(time.thread_time() - started)
        if stop.wait(SCRAPE_EVERY_S):
            return


def one_run(bootstrap: str, root: str, events: int, mode: str) -> dict[str, Any]:
    host = c.start_host(settings(bootstrap, root))
    endpoint: MonitoringEndpoint | None = None
    stop = threading.Event()
    scrapes: list[float] = []
    thread: threading.Thread | None = None
    try:
        if mode != "off":
            endpoint = start_monitoring("127.0.0.1:0", host, None, static_watch_status("bench"))
        template = dict(service="bench", operation_name="count()",
                        operation_status=OpStatus.DONE_OK)
        fire = host.fire
        fire(hookspecs.on_integrated_service_event, IntegratedServiceEvent(
            environment_id="warm", payload="-1", **template))  # type: ignore[arg-type]
        c.wait_ready(host)
        before = c.core_metrics(host).sent
        if mode == "scraped":
            assert endpoint is not None
            thread = threading.Thread(target=scraper, args=(endpoint.url, stop, scrapes))
            thread.start()
        cpu0, thread0, wall0 = time.process_time(), time.thread_time(), time.perf_counter()
        for i in range(events):
            fire(hookspecs.on_integrated_service_event, IntegratedServiceEvent(
                environment_id=f"env{i % 8}", payload=str(i), **template))  # type: ignore[arg-type]
        driving = time.thread_time() - thread0
        report = c.flush(host, 300)
        stop.set()
        if thread is not None:
            thread.join()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        acked = c.core_metrics(host).sent - before
        collect_ms = None
        if endpoint is not None:  # one scrape's work on the server side: collect + format
            costs = []
            for _ in range(20):
                started = time.thread_time()
                generate_latest(endpoint.registry)
                costs.append(time.thread_time() - started)
            collect_ms = c.median(costs) * 1e3
    finally:
        stop.set()
        if endpoint is not None:
            endpoint.stop()
        host.stop()
    return {"mode": mode, "acknowledged": acked, "undelivered": report.undelivered,
            "cpu_us_per_event": cpu / acked * 1e6, "driving_us_per_event": driving / acked * 1e6,
            "wall_s": round(wall, 3), "scrapes": len(scrapes),
            "scrape_cpu_ms": c.median(scrapes) * 1e3 if scrapes else None,
            "collect_cpu_ms": collect_ms}


def count_calls(bootstrap: str, root: str, events: int, mode: str) -> dict[str, float]:
    """Python function calls (Python and C) per acknowledged event on the threads that carry
    messages (the driving thread and the publisher's poller), counted with a profile hook:
    unlike CPU time, the count does not depend on the machine's load."""
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event in ("call", "c_call"):
            name = threading.current_thread().name
            key = "driving" if name == "MainThread" else "poller" if name.endswith(
                "-poller") else "other"
            with lock:
                counts[key] = counts.get(key, 0) + 1

    import sys

    threading.setprofile(profile)  # threads started from now on (the poller)
    try:
        host = c.start_host(settings(bootstrap, root))
        endpoint = None
        try:
            if mode != "off":
                endpoint = start_monitoring("127.0.0.1:0", host, None,
                                            static_watch_status("bench"))
            template = dict(service="bench", operation_name="count()",
                            operation_status=OpStatus.DONE_OK)
            host.fire(hookspecs.on_integrated_service_event, IntegratedServiceEvent(
                environment_id="warm", payload="-1", **template))  # type: ignore[arg-type]
            c.wait_ready(host)
            before = c.core_metrics(host).sent
            def scrape_now() -> None:  # on a thread of its own: counted as "other"
                assert endpoint is not None
                thread = threading.Thread(target=lambda: urllib.request.urlopen(
                    f"{endpoint.url}/metrics", timeout=30).read(), name="scraper")
                thread.start()
                thread.join()

            if mode == "scraped":
                scrape_now()
            counts.clear()
            sys.setprofile(profile)
            for i in range(events):
                host.fire(hookspecs.on_integrated_service_event, IntegratedServiceEvent(
                    environment_id=f"env{i % 8}", payload=str(i),
                    **template))  # type: ignore[arg-type]
                if mode == "scraped" and i % (events // 10) == 0:
                    scrape_now()  # ten scrapes in the middle of the stream
            c.flush(host, 300)
            sys.setprofile(None)
            acked = c.core_metrics(host).sent - before
            seen = dict(counts)
        finally:
            sys.setprofile(None)
            if endpoint is not None:
                endpoint.stop()
            host.stop()
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    return {key: value / acked for key, value in seen.items()}


def main() -> None:
    p = c.parser(__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=0, help="events per run (default 200000, "
                   "quick 20000)")
    args = p.parse_args()
    c.setup_logging(args.verbose)
    events = args.events or (20_000 if args.quick else 200_000)
    repeat = args.repeat or (2 if args.quick else 5)
    broker = c.Broker(args.kafka_script, args.bootstrap)
    started_broker = broker.ensure_up()
    root = c.topic_root()
    print(f"topics under {root}.*; {repeat} x {events:,} events per mode, interleaved\n")
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    try:
        print("Python calls per acknowledged event (profile hook; load-independent):")
        calls = {}
        for mode in MODES:
            calls[mode] = count_calls(args.bootstrap, root, min(events, 20_000), mode)
            shown = ", ".join(f"{k} {v:.2f}" for k, v in sorted(calls[mode].items()))
            print(f"  {mode:8} {shown}")
        print()
        for i in range(repeat):
            order = MODES[i % 3:] + MODES[:i % 3]  # rotate who goes first
            for mode in order:
                run = one_run(args.bootstrap, root, events, mode)
                runs[mode].append(run)
                print(f"  round {i + 1} {mode:8} {run['cpu_us_per_event']:6.2f} µs CPU/event "
                      f"(driving thread {run['driving_us_per_event']:6.2f}), "
                      f"{run['scrapes']} scrapes, {run['undelivered']} undelivered")
    finally:
        deleted = c.delete_topics(args.bootstrap, root)
        print(f"\ndeleted {deleted} topic(s) under {root}.")
        if started_broker:
            print("(the broker was started by this script; it is left running)")
    base = c.median([r["cpu_us_per_event"] for r in runs["off"]])
    base_driving = c.median([r["driving_us_per_event"] for r in runs["off"]])
    summary = {}
    print(f"\n{'mode':8} {'CPU µs/event':>13} {'ratio':>6} {'driving µs/event':>17} {'ratio':>6}")
    for mode in MODES:
        cpu = c.median([r["cpu_us_per_event"] for r in runs[mode]])
        driving = c.median([r["driving_us_per_event"] for r in runs[mode]])
        summary[mode] = {"cpu_us_per_event": cpu, "driving_us_per_event": driving,
                         "cpu_ratio": c.ratio(cpu, base),
                         "driving_ratio": c.ratio(driving, base_driving)}
        print(f"{mode:8} {cpu:13.2f} {c.ratio(cpu, base):6.3f} {driving:17.2f} "
              f"{c.ratio(driving, base_driving):6.3f}")
    for mode in MODES[1:]:  # the same round's runs side by side: less of the machine's drift
        paired = [r["cpu_us_per_event"] / o["cpu_us_per_event"]
                  for r, o in zip(runs[mode], runs["off"], strict=True)]
        summary[mode]["paired_cpu_ratio_median"] = c.median(paired)
        print(f"{mode:8} CPU per event / off's in the same round: median {c.median(paired):.3f} "
              f"(min {min(paired):.3f}, max {max(paired):.3f})")
    spread = sorted(r["cpu_us_per_event"] for r in runs["off"])
    print(f"off alone, run to run: {spread[0]:.2f} to {spread[-1]:.2f} µs CPU/event")
    scrape_costs = [r["scrape_cpu_ms"] for r in runs["scraped"] if r["scrape_cpu_ms"]]
    collect_costs = [r["collect_cpu_ms"] for r in runs["idle"] + runs["scraped"]]
    print(f"\none scrape, server side (collect + format, {len(collect_costs)} x 20): median "
          f"{c.median(collect_costs):.2f} ms CPU")
    if scrape_costs:
        print(f"one scrape, client side (HTTP GET and read, the scraper thread): median "
              f"{c.median(scrape_costs):.2f} ms CPU")
    c.write_result("metrics_cost-quick" if args.quick else "metrics_cost",
                   {"events": events, "repeat": repeat, "runs": runs, "summary": summary,
                    "calls_per_event": calls})


if __name__ == "__main__":
    main()
