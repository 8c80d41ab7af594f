"""env_list cost: µs per transition spent on ``aliecs.env_list.RUNNING`` with K environments
running (K = 1, 10, 100, 1000), the legacy plugin's way against the way before (same run).

Every state entry of every environment publishes the whole ``ActiveRunsList`` (the legacy
format requires the full list), so the bytes per transition grow with K; what must not grow
faster is our work. Per K, three kinds of transition, timed on the running set the plugin
keeps (``ActiveRuns``), without a broker:

- ``unchanged``: an environment outside the set enters a state (the list is republished as is);
- ``enter``: an environment enters RUNNING (inserted in listing order);
- ``leave``: it leaves RUNNING again (removed).

``now``: ``ActiveRuns.encoded_listing`` (entries encoded once, joined). ``before``: the
message built and serialized per listing (``ActiveRuns.listing(...).SerializeToString()``, a
sort and a copy of every entry after each change, what the plugin published before). The
figure to watch is µs per transition divided by K: flat means linear.

    .venv/bin/python bench/env_list.py [--quick]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import common as c
from aliecs_integration_plugins.kafka.active_runs import ActiveRuns

from aliecs_integration.pb import kafka_pb2

DETECTOR_SETS = (("ITS", "TPC", "TOF"), ("TPC",), ("MCH", "MID"), ("ITS", "MFT"), ("ZDC",))


def info(i: int, state: str) -> kafka_pb2.EnvInfo:
    return kafka_pb2.EnvInfo(environmentId=f"ENV{i:08d}", state=state, runNumber=1000 + i,
                             detectors=DETECTOR_SETS[i % len(DETECTOR_SETS)],
                             enterStateTimestamp=1_700_000_000_000 + i)


def per_transition(active: ActiveRuns, k: int, kind: str, rounds: int,
                   publish: Callable[[ActiveRuns, int], bytes]) -> float:
    """µs per transition of ``kind`` (update of the set + the list's bytes)."""
    outsider = info(k + 1, "CONFIGURED")
    runner, stopper = info(k + 1, "RUNNING"), info(k + 1, "CONFIGURED")
    started = time.perf_counter()
    for r in range(rounds):
        if kind == "unchanged":
            active.entered(outsider)
            publish(active, r + 1)
        else:  # enter then leave: two transitions
            active.entered(runner)
            publish(active, r + 1)
            active.entered(stopper)
            publish(active, r + 1)
    count = rounds if kind == "unchanged" else 2 * rounds
    return (time.perf_counter() - started) / count * 1e6


def now(active: ActiveRuns, ts: int) -> bytes:
    return active.encoded_listing(ts)[0]


def before(active: ActiveRuns, ts: int) -> bytes:
    return active.listing(ts).SerializeToString()


def main() -> None:
    p = c.parser(__doc__.split("\n\n")[0])
    args = p.parse_args()
    repeat = args.repeat or (3 if args.quick else 5)
    rows: list[dict[str, Any]] = []
    print(f"median of {repeat}; µs per transition (µs per transition / K)\n")
    for k in (1, 10, 100, 1000):
        active = ActiveRuns()
        for i in range(k):
            active.entered(info(i, "RUNNING"))
        assert now(active, 5) == before(active, 5)  # the same bytes
        size = len(now(active, 5))
        rounds = max(20, (2000 if not args.quick else 300) // k)
        row: dict[str, Any] = {"k": k, "bytes": size}
        for kind in ("unchanged", "enter/leave"):
            for name, fn in (("now", now), ("before", before)):
                row[f"{kind} {name}"] = c.median(
                    [per_transition(active, k, kind, rounds, fn) for _ in range(repeat)])
            row[f"{kind} ratio"] = c.ratio(row[f"{kind} now"], row[f"{kind} before"])
        rows.append(row)
        print(f"K={k:>5} ({size:>7,} B/list): unchanged {row['unchanged now']:8.2f} µs "
              f"({row['unchanged now'] / k:.3f}/K) vs before {row['unchanged before']:8.2f} "
              f"({row['unchanged ratio']:.2f}x); enter/leave {row['enter/leave now']:8.2f} µs "
              f"({row['enter/leave now'] / k:.3f}/K) vs before "
              f"{row['enter/leave before']:8.2f} ({row['enter/leave ratio']:.2f}x)")
    c.write_result("env_list-quick" if args.quick else "env_list",
                   {"quick": args.quick, "repeat": repeat, "rows": rows})


if __name__ == "__main__":
    main()
