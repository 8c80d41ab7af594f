"""The Subscribe fan-out: filtering, order, bounded queues."""

from __future__ import annotations

import threading

import pytest

from aliecs_integration.pb import events_pb2
from aliecs_integration.service.fanout import EventFanout, SubscriptionEnded, environment_of


def env_event(env_id: str, n: int) -> bytes:
    return events_pb2.Event(timestamp=n, environmentEvent=events_pb2.Ev_EnvironmentEvent(
        environmentId=env_id, message=f"m{n}")).SerializeToString()


def task_event(env_id: str) -> bytes:
    return events_pb2.Event(taskEvent=events_pb2.Ev_TaskEvent(
        taskid="t1", environmentId=env_id)).SerializeToString()


def test_environment_of_reads_the_payload() -> None:
    assert environment_of(env_event("E1", 1)) == "E1"
    assert environment_of(task_event("E2")) == "E2"  # key would be the task id
    core = events_pb2.Event(coreStartEvent=events_pb2.Ev_MetaEvent_CoreStart(frameworkId="f"))
    assert environment_of(core.SerializeToString()) == ""
    assert environment_of(events_pb2.Event(timestamp=1).SerializeToString()) == ""


def test_each_subscriber_gets_its_events_in_publishing_order() -> None:
    fanout = EventFanout()
    everything, only_a = fanout.subscribe(), fanout.subscribe("A")
    sent = [env_event("A" if n % 3 else "B", n) for n in range(30)] + [task_event("A")]
    for value in sent:
        fanout.publish("t", None, value)
    fanout.close_all()
    assert list(everything) == sent
    assert list(only_a) == [v for v in sent if environment_of(v) == "A"]
    assert fanout.subscriber_count() == 0


def test_nothing_is_decoded_without_subscribers() -> None:
    EventFanout().publish("t", None, b"\xff not protobuf")  # would raise if decoded


def test_a_subscriber_too_far_behind_is_ended_with_a_reason() -> None:
    fanout = EventFanout(capacity=3)
    slow = fanout.subscribe()
    for n in range(5):
        fanout.publish("t", None, env_event("A", n))
    assert [slow.next(0) for _ in range(3)] == [env_event("A", n) for n in range(3)]
    with pytest.raises(SubscriptionEnded, match="fell more than 3 events behind"):
        slow.next(0)


def test_next_waits_for_a_message_and_close_ends_iteration() -> None:
    fanout = EventFanout()
    sub = fanout.subscribe("A")
    assert sub.next(timeout_s=0.01) is None
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.extend(sub))
    reader.start()
    fanout.publish("t", None, env_event("A", 1))
    fanout.publish("t", None, env_event("B", 2))
    sub.close()
    reader.join(5)
    assert got == [env_event("A", 1)] and not reader.is_alive()


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        EventFanout(capacity=0)
