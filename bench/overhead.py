"""Overhead: µs per full transition and µs per hook call, on the driving thread only.

Transitions (CONFIGURE/RESET cycles over 4 deployed environments, 4 steps each, default
workflow, ``kafka_enabled`` true): the producer is real and the broker is up, but only the
driving thread is timed (``transition()`` returns once the messages are in the producer's queue;
acknowledgements are served by the publisher's poller thread). Wall time and the driving thread's
CPU time are both reported. Configurations:

- ``bare manager`` (baseline): no plugin loaded, a workflow without calls;
- ``core-kafka only``: core-kafka producing, a workflow without calls;
- ``both built-ins``: core-kafka and the legacy kafka plugin, the default workflow (two legacy
  calls per transition, each run on a call worker thread with a timeout);
- ``both, no broker``: the same with an unreachable bootstrap (127.0.0.1:1) and a big queue:
  topics are never created, messages wait in the publisher's own queue, and no delivery report
  or broker competes with the driving thread for the two cores.

START_ACTIVITY/STOP_ACTIVITY cycles (both built-ins) are reported apart: START_ACTIVITY
allocates a run number with a durable write (fsync of the file and its directory).

Hook calls: ``PluginHost.fire(on_core_event, event)`` with 0, 1 and 5 third-party plugins of one
trivial hookimpl each (no built-in loaded), against a bare pluggy ``pm.hook.on_core_event(event=)``
with the same plugins.

    .venv/bin/python bench/overhead.py [--quick] [--repeat 5]
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import common as c
import pluggy

from aliecs_integration import hookspecs
from aliecs_integration.engine.workflow import Workflow
from aliecs_integration.hookspecs import hookimpl
from aliecs_integration.host import PluginHost
from aliecs_integration.records import CoreEvent, CoreEventKind

TARGET_US = 100.0
BIG_QUEUE = {"maxMessages": 4_000_000, "maxBytes": 2 * 1024**3}
NO_CALLS = Workflow(name="bench", description="no calls")


class Trivial:
    """A third-party plugin with one trivial hook implementation."""

    def __init__(self) -> None:
        self.count = 0

    @hookimpl
    def on_core_event(self, event: CoreEvent) -> None:
        self.count += 1


def bare_host(settings: Any, **kwargs: Any) -> PluginHost:
    """A host with no entry point (no built-in plugin: by design here, so the host's error
    about the missing always-on core-kafka is not shown)."""
    host_log = logging.getLogger("aliecs_integration.host")
    level = host_log.level
    host_log.setLevel(logging.CRITICAL)
    try:
        host = PluginHost(settings, entry_points=[], **kwargs)
        host.start()
    finally:
        host_log.setLevel(level)
    return host


def timed(fn: Callable[[], int]) -> tuple[float, float]:
    """(wall µs, driving-thread CPU µs) per operation; ``fn`` returns how many it did."""
    wall, cpu = time.perf_counter(), time.thread_time()
    count = fn()
    return ((time.perf_counter() - wall) / count * 1e6, (time.thread_time() - cpu) / count * 1e6)


def transitions(args: Any, root: str, config: str, cycles: int, repeat: int,
                pair: tuple[str, str] = ("CONFIGURE", "RESET")) -> dict[str, Any]:
    """µs per transition of ``pair`` cycles over 4 environments, ``repeat`` measurements."""
    legacy = config.startswith("both")
    bootstrap = "127.0.0.1:1" if config == "both, no broker" else args.bootstrap
    settings = c.settings_for(bootstrap, root, legacy=legacy, queue=BIG_QUEUE,
                              enable=config != "bare manager")
    if config == "bare manager":
        host = bare_host(settings)
    else:
        host = PluginHost(settings)
        host.start()
    walls: list[float] = []
    cpus: list[float] = []
    try:
        with c.manager_for(host, None if legacy else NO_CALLS) as manager:
            ids = c.deployed_environments(manager, 4)
            if pair[0] == "START_ACTIVITY":
                for env_id in ids:
                    manager.transition(env_id, "CONFIGURE")

            def cycle() -> int:
                for _ in range(cycles):
                    for env_id in ids:
                        manager.transition(env_id, pair[0])
                        manager.transition(env_id, pair[1])
                return 2 * cycles * len(ids)

            cycle()  # warm-up (topics created, caches)
            acked = config not in ("bare manager", "both, no broker")
            if acked:
                c.wait_ready(host)
            for _ in range(repeat):
                wall, cpu = timed(cycle)
                walls.append(wall)
                cpus.append(cpu)
                if acked:
                    c.flush(host, 60)  # each repetition starts with an empty queue
    finally:
        host.stop(timeout_s=0 if config == "both, no broker" else 10)
    return {"wall_us": c.median(walls), "cpu_us": c.median(cpus), "wall_runs": walls,
            "cpu_runs": cpus, "transitions_per_run": 8 * cycles}


def hook_calls(plugins: int, calls: int, repeat: int) -> dict[str, Any]:
    """µs per hook call through PluginHost.fire and through bare pluggy, same plugins."""
    event = CoreEvent(CoreEventKind.FRAMEWORK, message="bench")
    objects = {f"third{i}": Trivial() for i in range(plugins)}
    settings = c.settings_for("unused:9092", "bench", legacy=False, enable=False)
    host = bare_host(settings, extra_plugins=objects)
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name, obj in {f"pm{i}": Trivial() for i in range(plugins)}.items():
        pm.register(obj, name=name)
    fire, hook = host.fire, pm.hook.on_core_event

    def via_host() -> int:
        for _ in range(calls):
            fire(hookspecs.on_core_event, event)
        return calls

    def via_pluggy() -> int:
        for _ in range(calls):
            hook(event=event)
        return calls

    host_us: list[float] = []
    pluggy_us: list[float] = []
    for _ in range(repeat):
        host_us.append(timed(via_host)[0])
        pluggy_us.append(timed(via_pluggy)[0])
    host.stop()
    h, b = c.median(host_us), c.median(pluggy_us)
    return {"plugins": plugins, "host_us": h, "pluggy_us": b, "ratio": c.ratio(h, b),
            "host_runs": host_us, "pluggy_runs": pluggy_us}


def main() -> None:
    p = c.parser(__doc__.split("\n\n")[0])
    args = p.parse_args()
    c.setup_logging(args.verbose)
    repeat = args.repeat or (3 if args.quick else 5)
    cycles = 25 if args.quick else 250
    started_broker = c.Broker(args.kafka_script, args.bootstrap).ensure_up()
    root = c.topic_root()
    print(f"{repeat} measurements of {8 * cycles} transitions each; median shown\n")
    results: dict[str, Any] = {}
    for config in ("bare manager", "core-kafka only", "both built-ins", "both, no broker"):
        r = results[config] = transitions(args, root, config, cycles, repeat)
        print(f"CONFIGURE/RESET, {config:<16}: {r['wall_us']:8.1f} µs/transition wall, "
              f"{r['cpu_us']:8.1f} µs driving-thread CPU")
    sor = results["START/STOP both built-ins"] = transitions(
        args, root, "both built-ins", max(5, cycles // 5), repeat, ("START_ACTIVITY",
                                                                     "STOP_ACTIVITY"))
    print(f"START/STOP_ACTIVITY, both built-ins: {sor['wall_us']:8.1f} µs/transition wall, "
          f"{sor['cpu_us']:8.1f} µs CPU (run-number fsync included)")
    full = results["both built-ins"]["cpu_us"]
    base = results["bare manager"]["cpu_us"]
    print(f"\nfull transition {full:.1f} µs driving-thread CPU vs bare manager {base:.1f} µs: "
          f"ratio {c.ratio(full, base):.2f}x; target <= {TARGET_US:g} µs: "
          f"{c.verdict(full <= TARGET_US)}\n")
    hooks = []
    calls = 20_000 if args.quick else 200_000
    for n in (0, 1, 5):
        h = hook_calls(n, calls, repeat)
        hooks.append(h)
        print(f"hook call, {n} third-party plugin(s): PluginHost.fire {h['host_us']:6.2f} µs, "
              f"bare pluggy {h['pluggy_us']:6.2f} µs, ratio {h['ratio']:.2f}x")
    print(f"deleted {c.delete_topics(args.bootstrap, root)} topic(s) under {root}.")
    c.write_result("overhead-quick" if args.quick else "overhead", {
        "quick": args.quick, "repeat": repeat, "broker_started_by_bench": started_broker,
        "transitions": results, "hook_calls": hooks,
        "transition_ratio_vs_bare_manager": c.ratio(full, base),
        "targets": {"transition_cpu_le_100us": full <= TARGET_US},
    })


if __name__ == "__main__":
    main()
