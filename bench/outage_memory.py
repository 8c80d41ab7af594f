"""Outage memory: the process's RSS while the broker is down and events keep coming at 1k/s.

Core-kafka and the legacy plugin with the DEFAULT producer settings (queue cap 100 000 messages /
64 MiB, overflow ``block`` for 5 s) get ``--rate`` events/s (a mix of environment, call, role
and run events, one message each, fired through ``PluginHost.fire`` by a paced loop that does not
burst to catch up after a blocked publish). Phases:

1. broker up, ``--warmup`` seconds: the baseline RSS is the median of the second half;
2. ``<kafka-script> stop``, ``--minutes`` of outage (RSS sampled every second);
3. ``<kafka-script> start``: everything held must then be acknowledged (flush, up to 5 min).

Target: RSS during the outage <= baseline + cap (maxBytes) + 50 MB. Events the block policy
refused (cap reached) are counted and must equal the publisher's dropped count; every other
fired event must be acknowledged after the broker returns.

WARNING: this stops and restarts the broker behind ``--kafka-script``: do not run it while
tests use the same broker.

    .venv/bin/python bench/outage_memory.py [--quick] [--minutes 10] [--rate 1000]
"""

from __future__ import annotations

import threading
import time
from typing import Any

import common as c

from aliecs_integration import hookspecs
from aliecs_integration.engine.environment import Environment
from aliecs_integration.records import (
    CallEvent,
    CallTraits,
    OpStatus,
    RoleEvent,
    RunEvent,
    TransitionStepEvent,
)
from aliecs_integration.settings.producer import ProducerConfig

MARGIN = 50 * 1000 * 1000


def records() -> list[tuple[str, object]]:
    env = Environment("OUTAGEENV001", detectors=("TPC", "ITS"), run_type="PHYSICS",
                      user_vars=c.ENV_VARIABLES, runtime_vars={}, defaults={}, workflow=None,
                      user=None)
    snap = env.snapshot()
    traits = CallTraits(trigger="enter_CONFIGURED", timeout="30s")
    return [
        ("on_env_transition_step", TransitionStepEvent(snap, "CONFIGURE", "enter_CONFIGURED",
                                                       OpStatus.ONGOING, False, "starting")),
        ("on_call", CallEvent(env.id, "odc.Configure()", OpStatus.STARTED, traits)),
        ("on_env_transition_step", TransitionStepEvent(snap, "CONFIGURE", "enter_CONFIGURED",
                                                       OpStatus.ONGOING, True, "finished")),
        ("on_role_event", RoleEvent("default", "ACTIVE", "CONFIGURED", "default", env.id)),
        ("on_run_sor_eor", RunEvent(env.id, 42, "RUNNING", "START_ACTIVITY", OpStatus.DONE_OK)),
    ]


class Sampler(threading.Thread):
    """RSS every second, tagged with the phase."""

    def __init__(self) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.phase = "warmup"
        self.samples: list[tuple[float, str, int]] = []
        self.stopped = threading.Event()
        self.started_at = time.monotonic()

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            self.samples.append((round(time.monotonic() - self.started_at, 1), self.phase,
                                 c.rss_bytes()))


def drive(host: Any, rate: float, seconds: float, state: dict[str, int]) -> None:
    """Fire events at ``rate`` for ``seconds``; counts fired and refused (a hook failure)."""
    mix = records()
    interval = 1.0 / rate
    end = time.monotonic() + seconds
    due = time.monotonic()
    i = 0
    while (now := time.monotonic()) < end:
        if due > now:
            time.sleep(due - now)
        hook, record = mix[i % len(mix)]
        i += 1
        state["fired"] += 1
        state["refused"] += len(host.fire(getattr(hookspecs, hook), record))
        due = max(due + interval, time.monotonic() - 1.0)  # no burst after a blocked publish


def main() -> None:
    p = c.parser(__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="outage length (default 10)")
    p.add_argument("--rate", type=float, default=1000.0, help="events/s (default 1000)")
    p.add_argument("--warmup", type=float, default=0.0, help="seconds before (default 30)")
    args = p.parse_args()
    c.setup_logging(args.verbose)
    minutes = 0.5 if args.quick and args.minutes == 10.0 else args.minutes
    warmup = args.warmup or (5.0 if args.quick else 30.0)
    broker = c.Broker(args.kafka_script, args.bootstrap)
    started_broker = broker.ensure_up()
    cap = ProducerConfig()
    print(f"default cap: {cap.max_messages:,} messages / {cap.max_bytes:,} bytes, overflow "
          f"{cap.overflow.value} ({cap.block_timeout_s:g} s); {args.rate:g} events/s; "
          f"{warmup:g} s warm-up, {minutes:g} min outage")
    root = c.topic_root()
    host = c.start_host(c.settings_for(args.bootstrap, root))
    sampler = Sampler()
    sampler.start()
    state = {"fired": 0, "refused": 0}
    at_start = c.core_metrics(host)  # host start published a coreStart + a list
    state["fired"] = at_start.sent + at_start.queued
    try:
        drive(host, args.rate, warmup, state)
        c.wait_ready(host)
        warm = [rss for _, phase, rss in sampler.samples if phase == "warmup"]
        baseline = int(c.median(warm[len(warm) // 2:]))
        print(f"baseline RSS {baseline / 1e6:.1f} MB; stopping the broker")
        broker.stop()
        sampler.phase = "outage"
        outage_started = time.monotonic()
        drive(host, args.rate, minutes * 60, state)
        outage_s = time.monotonic() - outage_started
        held = c.core_metrics(host).queued
        sampler.phase = "recovery"
        print(f"outage over after {outage_s:.0f} s: {held:,} messages held; starting the broker")
        recovered = time.monotonic()
        broker.start()
        start_s = time.monotonic() - recovered
        report = c.flush(host, 300)
        drain_s = time.monotonic() - recovered
        snap = c.core_metrics(host)
    finally:
        sampler.stopped.set()
        host.stop()
        if not broker.running():
            broker.start()
        print(f"deleted {c.delete_topics(args.bootstrap, root)} topic(s) under {root}.")
    outage = [rss for _, phase, rss in sampler.samples if phase == "outage"]
    peak = max(outage) if outage else baseline
    after = [rss for _, phase, rss in sampler.samples if phase == "recovery"]
    peak_recovery = max(after) if after else peak
    bound = baseline + cap.max_bytes + MARGIN
    fired = state["fired"]
    met = max(peak, peak_recovery) <= bound  # draining may briefly need more than the outage
    delivered_ok = snap.sent == fired - snap.dropped and snap.dropped == state["refused"]
    print(f"RSS peak during outage {peak / 1e6:.1f} MB = baseline + {(peak - baseline) / 1e6:.1f}"
          f" MB (ratio {c.ratio(peak, baseline):.2f}x); bound baseline + cap + 50 MB = "
          f"{bound / 1e6:.1f} MB: {c.verdict(met)}; peak while draining after the outage "
          f"{peak_recovery / 1e6:.1f} MB")
    print(f"fired {fired:,}, refused by the block policy {state['refused']:,} (dropped counted "
          f"{snap.dropped:,}), acknowledged {snap.sent:,} ({report.undelivered} undelivered) "
          f"{drain_s:.1f} s after `start` (which took {start_s:.1f} s until the broker answered): "
          f"{'all accounted for' if delivered_ok else 'MISMATCH'}")
    c.write_result("outage_memory-quick" if args.quick else "outage_memory", {
        "quick": args.quick, "minutes": minutes, "rate": args.rate, "warmup_s": warmup,
        "broker_started_by_bench": started_broker,
        "cap": {"max_messages": cap.max_messages, "max_bytes": cap.max_bytes,
                "overflow": cap.overflow.value, "block_timeout_s": cap.block_timeout_s},
        "baseline_rss": baseline, "peak_rss_outage": peak, "peak_rss_recovery": peak_recovery,
        "growth": peak - baseline,
        "ratio_peak_to_baseline": c.ratio(peak, baseline), "bound": bound,
        "held_at_end_of_outage": held, "fired": fired, "refused": state["refused"],
        "dropped": snap.dropped, "acknowledged": snap.sent, "undelivered": report.undelivered,
        "drain_seconds_from_start_command": drain_s, "broker_start_seconds": start_s,
        "samples": sampler.samples,
        "targets": {"rss_le_baseline_cap_50MB": met, "all_accounted_for": delivered_ok},
    })


if __name__ == "__main__":
    main()
