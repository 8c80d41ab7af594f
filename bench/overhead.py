"""Overhead: µs per full transition and µs per hook call, on the driving thread only.

Transitions (CONFIGURE/RESET cycles over 4 deployed environments, 4 steps each, default
workflow, ``kafka_enabled`` true): the producer is real and the broker is up, but only the
driving thread is timed (``transition()`` returns once the messages are in the producer's queue;
acknowledgements are served by the publisher's poller thread). Wall time and the driving thread's
CPU time are both reported. Configurations:

- ``bare manager`` (baseline): no plugin loaded, a workflow without calls;
- ``manager+workflow``: the default workflow (its tasks, roles and two calls per transition)
  with the calls' functions doing nothing and no plugin publishing: the manager's own work for
  the transitions ``both built-ins`` measures;
- ``core-kafka only``: core-kafka producing, a workflow without calls;
- ``both built-ins``: core-kafka and the legacy kafka plugin, the default workflow (two legacy
  calls per transition, run on the driving thread: they are nonblocking);
- ``both, no broker``: the same with an unreachable bootstrap (127.0.0.1:1) and a big queue:
  topics are never created, messages wait in the publisher's own queue, and no delivery report
  or broker competes with the driving thread for the two cores.

``event-stream floor``: the same cycles' messages (26 per transition) with nothing but the
work the stream itself requires beyond building the records: each record encoded by
core-kafka's ``Encoding``, given its headers, handed to a bare ``Producer`` (see
:func:`stream_floor`). Floor plus ``manager+workflow`` (which builds the records) is the least
any host on this stream could cost in Python.

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

import attrs
import common as c
import pluggy
from aliecs_integration_plugins.core_kafka import Encoding
from confluent_kafka import Producer

from aliecs_integration import hookspecs
from aliecs_integration.engine.workflow import Workflow
from aliecs_integration.hookspecs import hookimpl
from aliecs_integration.host import PluginHost
from aliecs_integration.pb import events_pb2, kafka_pb2
from aliecs_integration.plugin import nonblocking
from aliecs_integration.publish.headers import HeaderMaker
from aliecs_integration.publish.topics import TopicNames
from aliecs_integration.records import CoreEvent, CoreEventKind

TARGET_US = 100.0
BIG_QUEUE = {"maxMessages": 4_000_000, "maxBytes": 2 * 1024**3}
NO_CALLS = Workflow(name="bench", description="no calls")
MANAGER_WITH_CALLS = "manager+workflow"


class Trivial:
    """A third-party plugin with one trivial hook implementation."""

    def __init__(self) -> None:
        self.count = 0

    @hookimpl
    def on_core_event(self, event: CoreEvent) -> None:
        self.count += 1


class NoOpCalls:
    """Exports the legacy plugin's three call functions as nonblocking no-ops, and no hook:
    with it a host runs the default workflow (its calls, tasks and roles) and publishes
    nothing."""

    @hookimpl
    def register_call_functions(self) -> dict[str, Callable[[Any], str]]:
        return dict.fromkeys(("PublishEnterStateUpdate", "PublishLeaveStateUpdate",
                              "PublishStartActivityUpdate"), _no_op)


@nonblocking
def _no_op(call: Any) -> str:
    return ""


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
    workflow_calls = legacy or config == MANAGER_WITH_CALLS
    bootstrap = "127.0.0.1:1" if config == "both, no broker" else args.bootstrap
    settings = c.settings_for(bootstrap, root, legacy=legacy, queue=BIG_QUEUE,
                              enable=config not in ("bare manager", MANAGER_WITH_CALLS))
    if config == "bare manager":
        host = bare_host(settings)
    elif config == MANAGER_WITH_CALLS:
        host = bare_host(settings, extra_plugins={"kafka": NoOpCalls()})
    else:
        host = PluginHost(settings)
        host.start()
    walls: list[float] = []
    cpus: list[float] = []
    try:
        with c.manager_for(host, None if workflow_calls else NO_CALLS) as manager:
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
            acked = config not in ("bare manager", MANAGER_WITH_CALLS, "both, no broker")
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


def stream_floor(args: Any, root: str, cycles: int, repeat: int) -> dict[str, Any]:
    """µs per transition of the least work the event stream itself asks of Python beyond the
    manager, on the driving thread: each hook record core-kafka receives in a CONFIGURE/RESET
    cycle of 4 environments (recorded, then stamped with the current time once: the manager
    builds the records, and ``manager+workflow`` counts that) is encoded by core-kafka's own
    ``Encoding`` and given new headers, and every message (the legacy ones as recorded) is
    handed to a bare confluent-kafka ``Producer`` (the publisher's config, positional
    ``produce``). No hook dispatch, call, publisher switch or ``Publisher``: with the cost of
    the manager running the same workflow (``manager+workflow``) added, a lower bound for any
    host on this stream."""
    settings = c.settings_for(args.bootstrap, root, queue=BIG_QUEUE)
    records, legacy = c.capture_records(settings, envs=4)
    encoding = Encoding(TopicNames(root))
    now = time.time_ns()
    stamped = [(attrs.evolve(r, timestamp_ns=now), encoding.by_type.get(type(r), encoding.any))
               for r in records]
    legacy_values = [(topic, value) for topic, value, _, _ in legacy]
    c.create_topics(args.bootstrap, sorted({encoding.any(r)[0] for r in records}
                                           | {topic for topic, _ in legacy_values}))
    producer = Producer(c.raw_config(settings))
    core_headers = HeaderMaker(events_pb2.Event, "bench-floor")
    legacy_headers = HeaderMaker(kafka_pb2.NewStateNotification, "bench-floor")
    produce = producer.produce

    def cycle() -> int:
        for _ in range(cycles):
            for record, encoder in stamped:
                topic, key, value = encoder(record)
                produce(topic, value, key, -1, None, None, 0, core_headers())
            for topic, value in legacy_values:
                produce(topic, value, None, -1, None, None, 0, legacy_headers())
        return 8 * cycles

    cpus: list[float] = []
    try:
        cycle()  # warm-up: connections, producer id, metadata
        if producer.flush(60):
            raise SystemExit(f"floor: warm-up not acknowledged: is {args.bootstrap} up?")
        for _ in range(repeat):
            cpus.append(timed(cycle)[1])
            producer.flush(60)
    finally:
        producer.flush(10)
    return {"cpu_us": c.median(cpus), "cpu_runs": cpus, "transitions_per_run": 8 * cycles,
            "messages_per_transition": (len(records) + len(legacy)) / 8}


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
    for config in ("bare manager", MANAGER_WITH_CALLS, "core-kafka only", "both built-ins",
                   "both, no broker"):
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
    floor = results["event-stream floor"] = stream_floor(args, root, cycles, repeat)
    least = floor["cpu_us"] + results[MANAGER_WITH_CALLS]["cpu_us"]
    print(f"event-stream floor ({floor['messages_per_transition']:g} messages/transition "
          f"encoded, headed, produced; nothing else): {floor['cpu_us']:8.1f} µs CPU")
    print(f"\nfull transition {full:.1f} µs driving-thread CPU vs bare manager {base:.1f} µs: "
          f"ratio {c.ratio(full, base):.2f}x; target <= {TARGET_US:g} µs: "
          f"{c.verdict(full <= TARGET_US)}")
    print(f"least possible on this stream (floor + {MANAGER_WITH_CALLS}): {least:.1f} µs; full "
          f"transition / least: {c.ratio(full, least):.2f}x\n")
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
        "least_possible_us": least, "transition_ratio_vs_least": c.ratio(full, least),
        "targets": {"transition_cpu_le_100us": full <= TARGET_US},
    })


if __name__ == "__main__":
    main()
