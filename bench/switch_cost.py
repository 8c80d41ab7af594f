"""The cost live settings add to publishing: ``PublisherSwitch.publish`` (a short lock round
trip before and after the publisher's ``publish``) against calling a publisher directly, on a
publisher that does nothing (so only the switch is measured). Interleaved rounds, medians of
ns per message and their ratio. No broker needed.

    .venv/bin/python bench/switch_cost.py [--messages 200000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

from aliecs_integration.publish.switch import PublisherSwitch
from aliecs_integration.records import ConnectionState, DeliveryReport


class Nothing:
    def publish(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        pass

    def flush(self, timeout_s: float) -> DeliveryReport:
        return DeliveryReport(0, 0, 0, 0)

    def close(self, timeout_s: float | None = None) -> DeliveryReport:
        return DeliveryReport(0, 0, 0, 0)

    def connection_state(self) -> ConnectionState:
        return ConnectionState.READY


def per_message_ns(publish: object, n: int) -> float:
    fn = publish  # a bound method: the same call shape both ways
    value, key = b"x" * 100, b"env"
    start = time.perf_counter_ns()
    for _ in range(n):
        fn("aliecs.core", value, key)  # type: ignore[operator]
    return (time.perf_counter_ns() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    publisher = Nothing()
    switch = PublisherSwitch(publisher)
    direct: list[float] = []
    switched: list[float] = []
    for _ in range(args.repeat):
        direct.append(per_message_ns(publisher.publish, args.messages))
        switched.append(per_message_ns(switch.publish, args.messages))
    d, s = statistics.median(direct), statistics.median(switched)
    print(f"direct publish:   {d:7.0f} ns/message (median of {args.repeat} x {args.messages})")
    print(f"through switch:   {s:7.0f} ns/message")
    print(f"added by switch:  {s - d:7.0f} ns/message (ratio {s / d:.2f})")


if __name__ == "__main__":
    main()
