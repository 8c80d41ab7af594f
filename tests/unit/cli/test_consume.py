"""consume: decoding by topic name, undecodable bytes reported and skipped, stop conditions."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner
from confluent_kafka import KafkaError

from aliecs_integration.cli.main import cli
from aliecs_integration.errors import ReadError, UnknownTopic
from aliecs_integration.pb import events_pb2, kafka_pb2
from aliecs_integration.publish.reader import (
    ConsumeSummary,
    Decoded,
    consume_loop,
    decode,
    json_line,
    message_types,
    text_line,
)
from tests.fakes import FakeConsumer, FakeMessage, partition_eof


def run_event(env: str = "env-1", run: int = 7) -> bytes:
    event = events_pb2.Event(timestamp=1, runEvent=events_pb2.Ev_RunEvent(
        environmentId=env, runNumber=run, transition="START_ACTIVITY",
        transitionStatus=events_pb2.DONE_OK))
    return event.SerializeToString()


GARBAGE = b"\xff\xff\xff\xff" + os.urandom(60)


def test_message_type_follows_the_topic_name() -> None:
    types = message_types(["aliecs.run", "aliecs.integrated_service.odc",
                           "aliecs.env_state.RUNNING", "aliecs.env_list.RUNNING"], "aliecs")
    assert list(types.values()) == [events_pb2.Event, events_pb2.Event,
                                    kafka_pb2.NewStateNotification, kafka_pb2.ActiveRunsList]
    assert message_types(["x.y.run"], "x.y")["x.y.run"] is events_pb2.Event
    with pytest.raises(UnknownTopic, match=r"'aliecs\.nope'"):
        message_types(["aliecs.run", "aliecs.nope"], "aliecs")


def test_decoded_json_and_text_lines() -> None:
    item = decode(FakeMessage("aliecs.run", run_event(), b"env-1", offset=41), events_pb2.Event)
    assert item.ok
    line = json.loads(json_line(item))
    assert line["topic"] == "aliecs.run" and line["offset"] == 41 and line["key"] == "env-1"
    assert line["type"] == "events.Event"
    assert line["message"]["runEvent"] == {"environmentId": "env-1", "runNumber": 7,
                                           "transition": "START_ACTIVITY",
                                           "transitionStatus": "DONE_OK"}
    text = text_line(item)
    assert text.startswith("aliecs.run[0]@41 key=env-1 events.Event {")
    assert 'environmentId: "env-1"' in text


def test_undecodable_bytes_give_a_clear_line() -> None:
    item = decode(FakeMessage("aliecs.run", GARBAGE, partition=2, offset=9), events_pb2.Event)
    assert not item.ok
    line = json.loads(json_line(item))
    assert (line["topic"], line["partition"], line["offset"]) == ("aliecs.run", 2, 9)
    assert line["error"].startswith("cannot decode as events.Event")
    assert line["hexPrefix"].startswith("ffffffff") and line["size"] == len(GARBAGE)
    assert "message" not in line
    text = text_line(item)
    assert text.startswith("aliecs.run[2]@9 key=- UNDECODABLE (64 bytes): cannot decode")
    assert "hex ffffffff" in text
    tombstone = decode(FakeMessage("aliecs.run", None, offset=1), events_pb2.Event)
    assert tombstone.error == "no value (a tombstone)"


def test_loop_reports_garbage_and_goes_on_until_every_partition_ended() -> None:
    consumer = FakeConsumer([
        FakeMessage("aliecs.run", run_event(run=1), offset=0),
        None,
        FakeMessage("aliecs.run", GARBAGE, offset=1),
        FakeMessage("aliecs.run", run_event(run=3), offset=2),
        partition_eof("aliecs.run"),
        partition_eof("aliecs.env_list.RUNNING"),
        FakeMessage("aliecs.run", run_event(run=4), offset=3),  # never reached: both ended
    ])
    seen: list[Decoded] = []
    summary = consume_loop(
        consumer, {"aliecs.run": events_pb2.Event, "aliecs.env_list.RUNNING":
                   kafka_pb2.ActiveRunsList},
        [("aliecs.run", 0), ("aliecs.env_list.RUNNING", 0)], emit=seen.append,
        stop_at_end=True, poll_s=0)
    assert [i.offset for i in seen] == [0, 1, 2]
    assert [i.ok for i in seen] == [True, False, True]
    assert summary == ConsumeSummary(3, 1, "reached the end of every partition")


def test_loop_stops_at_max_and_after_idle_timeout() -> None:
    many = [FakeMessage("aliecs.run", run_event(run=i), offset=i) for i in range(10)]
    summary = consume_loop(FakeConsumer(many), {"aliecs.run": events_pb2.Event},
                           [("aliecs.run", 0)], emit=lambda i: None, stop_at_end=False,
                           max_messages=4, poll_s=0)
    assert (summary.messages, summary.reason) == (4, "reached --max 4")
    ticks = iter(range(100))
    summary = consume_loop(FakeConsumer(many[:2]), {"aliecs.run": events_pb2.Event},
                           [("aliecs.run", 0)], emit=lambda i: None, stop_at_end=False,
                           idle_timeout_s=5, poll_s=0, clock=lambda: float(next(ticks)))
    assert (summary.messages, summary.reason) == (2, "no message for 5 s")


def test_fatal_consumer_error_ends_with_a_clear_error() -> None:

    gone = FakeMessage("aliecs.run", None, error=KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
    with pytest.raises(ReadError, match=r"aliecs\.run"):
        consume_loop(FakeConsumer([gone]), {"aliecs.run": events_pb2.Event},
                     [("aliecs.run", 0)], emit=lambda i: None, stop_at_end=True, poll_s=0)


def test_cli_unknown_topic_is_bad_input_without_contacting_a_broker() -> None:
    result = CliRunner().invoke(cli, ["consume", "aliecs.nope", "--brokers", "127.0.0.1:1"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("error: topic 'aliecs.nope': not a topic of root 'aliecs'")


def test_cli_unreachable_broker_is_one_line_exit_1() -> None:
    result = CliRunner().invoke(cli, ["consume", "aliecs.run", "--brokers", "127.0.0.1:1",
                                      "--connect-timeout", "0.5"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: cannot reach Kafka at 127.0.0.1:1 within 0.5 s")
    assert "Traceback" not in result.stderr


def test_cli_bad_format_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["consume", "aliecs.run", "--format", "xml"])
    assert result.exit_code == 2
    assert "Invalid value for '--format'" in result.stderr.strip().splitlines()[-1]
