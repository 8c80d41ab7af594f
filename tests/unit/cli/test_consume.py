"""consume: decoding by topic name, undecodable bytes reported and skipped, stop conditions."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

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


# --------------------------------------------------------------------------- filters, raw, table

def _item(value: bytes | None, ts: int = 1_700_000_000_000, topic: str = "aliecs.run",
          message_type: Any = events_pb2.Event) -> Decoded:
    return decode(FakeMessage(topic, value, b"ENV", offset=7, timestamp=(1, ts)), message_type)


def test_filter_by_environment_run_and_time() -> None:
    from aliecs_integration.publish.reader import Filter

    run_a = _item(run_event(env="E", run=4))
    legacy = _item(kafka_pb2.ActiveRunsList(activeRuns=[
        kafka_pb2.EnvInfo(environmentId="X", runNumber=9),
        kafka_pb2.EnvInfo(environmentId="Y", runNumber=4)]).SerializeToString(),
        topic="aliecs.env_list.RUNNING", message_type=kafka_pb2.ActiveRunsList)
    garbage = _item(GARBAGE)
    assert Filter().matches(garbage)
    assert Filter(frozenset({"E"})).matches(run_a)
    assert not Filter(frozenset({"Y"})).matches(run_a)
    assert Filter(frozenset({"Y", "Z"})).matches(legacy)
    assert Filter(run_number=4).matches(run_a) and Filter(run_number=9).matches(legacy)
    assert not Filter(run_number=5).matches(run_a)
    assert not Filter(frozenset({"E"})).matches(garbage)
    assert Filter(since_ms=1_700_000_000_000, until_ms=1_700_000_000_000).matches(run_a)
    assert not Filter(since_ms=1_700_000_000_001).matches(run_a)
    assert not Filter(until_ms=1_699_999_999_999).matches(run_a)


def test_until_ends_each_partition_and_filters_are_counted() -> None:
    from aliecs_integration.publish.reader import Filter

    def at(offset: int, ts: int, run: int) -> FakeMessage:
        return FakeMessage("aliecs.run", run_event(run=run), offset=offset, timestamp=(1, ts))

    consumer = FakeConsumer([at(0, 100, 1), at(1, 200, 2), at(2, 300, 1), at(3, 400, 1)])
    seen: list[Decoded] = []
    summary = consume_loop(consumer, {"aliecs.run": events_pb2.Event}, [("aliecs.run", 0)],
                           emit=seen.append, stop_at_end=False, poll_s=0,
                           keep=Filter(run_number=1, until_ms=300))
    assert [i.offset for i in seen] == [0, 2]
    assert summary == ConsumeSummary(2, 0, "reached the end of every partition", skipped=2)


def test_parse_time_forms_and_errors() -> None:
    from aliecs_integration.publish.reader import parse_time

    now = 1_800_000_000_000
    assert parse_time("15m", now_ms=now) == now - 900_000
    assert parse_time("2h", now_ms=now) == now - 7_200_000
    assert parse_time("1.5s", now_ms=now) == now - 1500
    assert parse_time("1790000000000") == 1_790_000_000_000
    assert parse_time("2026-09-21T14:13:20") == 1_790_000_000_000  # no zone: UTC
    assert parse_time("2026-09-21 16:13:20+02:00") == 1_790_000_000_000
    with pytest.raises(ValueError, match="'yesterday' is not a time: expected a duration"):
        parse_time("yesterday")
    result = CliRunner().invoke(cli, ["consume", "aliecs.run", "--since", "soon"])
    assert result.exit_code == 2 and "'soon' is not a time" in result.stderr


def test_consumer_properties_keep_consumer_side_keys_and_refuse_ours(tmp_path: Path) -> None:
    empty = tmp_path / "s.yaml"
    empty.write_text("kafkaEndpoints: []\n")
    from aliecs_integration.errors import ReaderConfigError
    from aliecs_integration.publish.reader import consumer_properties

    producer = {"security.protocol": "SASL_SSL", "sasl.username": "u", "sasl.password": "p",
                "ssl.ca.location": "/ca.pem", "acks": "all", "linger.ms": 5,
                "enable.idempotence": True, "compression.type": "lz4", "client.id": "x"}
    assert consumer_properties(producer, {"sasl.username": "v", "fetch.max.bytes": "1000"}) == {
        "security.protocol": "SASL_SSL", "sasl.username": "v", "sasl.password": "p",
        "ssl.ca.location": "/ca.pem", "client.id": "x", "fetch.max.bytes": "1000"}
    with pytest.raises(ReaderConfigError, match=r"bootstrap\.servers cannot be set"):
        consumer_properties({}, {"bootstrap.servers": "h:1"})
    no_brokers = CliRunner().invoke(cli, ["consume", "aliecs.run", "--settings", str(empty)])
    assert no_brokers.exit_code == 2
    assert f"{empty}: kafkaEndpoints is empty: give --brokers" in no_brokers.stderr
    both = CliRunner().invoke(cli, ["consume", "aliecs.run", "--raw", "--format", "json"])
    assert both.exit_code == 2 and "--raw and --format json exclude each other" in both.stderr
    bad_x = CliRunner().invoke(cli, ["consume", "aliecs.run", "-X", "nonsense"])
    assert bad_x.exit_code == 2 and "-X 'nonsense': expected key=value" in bad_x.stderr
    unknown = CliRunner().invoke(cli, ["consume", "aliecs.run", "-X", "no.such.property=1"])
    assert unknown.exit_code == 2
    assert "Kafka consumer configuration: No such configuration property" in unknown.stderr


def test_raw_frames_are_length_prefixed() -> None:
    from aliecs_integration.publish.reader import raw_frame

    value = run_event(run=3)
    assert raw_frame(_item(value)) == len(value).to_bytes(4, "big") + value
    assert raw_frame(_item(None)) == b"\0\0\0\0"


def test_table_lines_are_aligned_and_coloured_only_when_asked() -> None:
    from aliecs_integration.cli.consume import table_printer

    line = table_printer(["aliecs.run", "aliecs.env_list.RUNNING"], colour=False)
    ok, bad = line(_item(run_event(env="E", run=3))), line(_item(GARBAGE))
    assert ok.startswith("2023-11-14 22:13:20.000Z  aliecs.run               ")
    assert ok.index("runEvent") == bad.index("UNDECODABLE")  # same columns
    assert '"environmentId": "E", "runNumber": 3' in ok and "\x1b[" not in ok
    coloured = table_printer(["aliecs.run"], colour=True)(_item(run_event(run=3)))
    assert "\x1b[36maliecs.run" in coloured  # cyan topic
