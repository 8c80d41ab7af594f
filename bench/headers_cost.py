"""Headers' cost: CPU µs per message of ``Publisher.publish`` with the three event headers
(``publish/headers.py``: a ``HeaderMaker`` call + librdkafka copying them) against the same
messages without headers, on the publishing thread, against the real broker.

One publisher, one existing topic, a 200-byte value (about a core event's size) with a key;
rounds alternate headers / no headers so load from other processes hits both alike; each round
publishes N messages, then flushes (the flush is not timed). Medians of the rounds.

    .venv/bin/python bench/headers_cost.py [--quick] [--repeat 7]
"""

from __future__ import annotations

import time
from typing import Any

import common as c

from aliecs_integration.pb import events_pb2
from aliecs_integration.publish.headers import HeaderMaker
from aliecs_integration.publish.publisher import Publisher
from aliecs_integration.settings.producer import ProducerConfig


def one_round(publisher: Publisher, topic: str, count: int, with_headers: bool) -> float:
    """CPU µs per message of ``count`` publishes (flush not counted)."""
    make = HeaderMaker(events_pb2.Event, "0f8fad5b-d9cb-469f-a165-70867728950e")
    value, key = b"v" * 200, b"2oDvieFrVTi"
    start = time.thread_time()
    if with_headers:
        for _ in range(count):
            publisher.publish(topic, value, key, make())
    else:
        for _ in range(count):
            publisher.publish(topic, value, key)
    spent = time.thread_time() - start
    report = publisher.flush(120.0)
    assert report.undelivered == 0, report
    return spent / count * 1e6


def main() -> None:
    args = c.parser(__doc__ or "").parse_args()
    c.setup_logging(args.verbose)
    repeat = args.repeat or (2 if args.quick else 7)
    count = 5_000 if args.quick else 50_000
    broker = c.Broker(args.kafka_script, args.bootstrap)
    started = broker.ensure_up()
    root = c.topic_root()
    topic = f"{root}.environment"
    config = ProducerConfig.from_dict(
        {"topicRoot": root, "topics": {"replicationFactor": 1},
         "queue": {"maxMessages": 1_000_000, "maxBytes": 1 << 30}}, source="bench")
    publisher = Publisher([args.bootstrap], config, name="bench")
    results: dict[str, list[float]] = {"headers": [], "none": []}
    try:
        publisher.publish(topic, b"warm-up")
        publisher.flush(60.0)
        one_round(publisher, topic, count // 5, True)  # warm both paths
        one_round(publisher, topic, count // 5, False)
        for _ in range(repeat):
            results["headers"].append(one_round(publisher, topic, count, True))
            results["none"].append(one_round(publisher, topic, count, False))
    finally:
        publisher.close(30.0)
        deleted = c.delete_topics(args.bootstrap, root)
        if started:
            broker.stop()
    with_h, without = c.median(results["headers"]), c.median(results["none"])
    print(f"{repeat} rounds of {count} messages each, alternating; median CPU per message on "
          "the publishing thread")
    print(f"Publisher.publish without headers: {without:6.2f} µs  (rounds: "
          f"{', '.join(f'{v:.2f}' for v in results['none'])})")
    print(f"Publisher.publish with headers   : {with_h:6.2f} µs  (rounds: "
          f"{', '.join(f'{v:.2f}' for v in results['headers'])})")
    print(f"headers add {with_h - without:+.2f} µs per message (ratio "
          f"{c.ratio(with_h, without):.2f}x); deleted {deleted} topic(s) under {root}")
    payload: dict[str, Any] = {"repeat": repeat, "count": count, "rounds": results,
                               "median_us": {"headers": with_h, "none": without},
                               "machine": c.machine()}
    c.write_result("headers_cost" + ("-quick" if args.quick else ""), payload)


if __name__ == "__main__":
    main()
