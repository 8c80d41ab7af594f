"""``aliecs-integration consume``: read ``aliecs.*`` topics and print each message decoded.

Options and printing only: reading, decoding, filters, consumer properties and raw frames are
:mod:`aliecs_integration.publish.reader`'s. On a terminal the output is aligned, coloured
columns; otherwise one JSON object a line (or protobuf text, or with ``--raw`` the bytes
themselves, length-prefixed, for other decoders such as pq).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, Literal

import click
from google.protobuf import json_format

from aliecs_integration.cli.common import (
    EXIT_CODES_HELP,
    BadInput,
    load_settings,
    parse_pairs,
    settings_option,
)
from aliecs_integration.publish.reader import (
    Decoded,
    Filter,
    assign,
    consume_loop,
    consumer_properties,
    json_line,
    make_consumer,
    message_types,
    parse_time,
    raw_frame,
    text_line,
)

BROKERS_ENV = "ALIECS_KAFKA_BROKERS"
DEFAULT_BROKERS = "localhost:9092"

OutputFormat = Literal["auto", "json", "text", "table"]


class TimeParam(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """A point in time (:func:`aliecs_integration.publish.reader.parse_time`), as ms."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_time(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _properties(values: Sequence[str]) -> dict[str, str]:
    return parse_pairs(values, "-X", "key=value (a librdkafka property)")


# --------------------------------------------------------------------------- terminal output

def _when(ms: int | None) -> str:
    if ms is None:
        return "-" * 23
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}Z"


def _body(item: Decoded) -> tuple[str, str]:
    """(what, fields as compact JSON): the payload name of an Event, else the message type."""
    message: Any = item.message
    if message is None:
        return "UNDECODABLE", f"{len(item.value or b'')} bytes: {item.error}"
    what = item.type_name.rpartition(".")[2]
    if item.type_name == "events.Event" and (payload := message.WhichOneof("Payload")):
        what, message = payload, getattr(message, payload)
    fields = json_format.MessageToDict(message)
    return what, json.dumps(fields, separators=(", ", ": "), ensure_ascii=False)


def table_printer(topics: Sequence[str], colour: bool) -> Callable[[Decoded], str]:
    """A function giving one aligned line per message: time (UTC), topic, partition/offset,
    key, payload or message type, fields; coloured when ``colour``."""
    topic_w = max(len(t) for t in topics)

    def style(text: str, **kw: Any) -> str:
        return click.style(text, **kw) if colour else text

    def line(item: Decoded) -> str:
        what, fields = _body(item)
        key = item.key.decode("utf-8", "replace") if item.key is not None else "-"
        place = f"{item.partition}/{item.offset}"
        return "  ".join((
            style(_when(item.timestamp_ms), dim=True),
            style(f"{item.topic:<{topic_w}}", fg="cyan"),
            f"{place:>8}",
            style(f"{key:<12}", fg="yellow"),
            style(f"{what:<22}", fg="red" if item.message is None else "green", bold=True),
            style(fields, fg="red") if item.message is None else fields,
        ))

    return line


# --------------------------------------------------------------------------- the command

@click.command(epilog=EXIT_CODES_HELP)
@click.argument("topic_names", metavar="TOPIC...", nargs=-1, required=True)
@click.option("--brokers", envvar=BROKERS_ENV, default=None,
              help=f"Bootstrap servers (also ${BROKERS_ENV}; default: kafkaEndpoints of "
                   f"--settings, else {DEFAULT_BROKERS}).")
@settings_option
@click.option("-X", "properties", metavar="KEY=VALUE", multiple=True,
              help="A librdkafka consumer property (repeatable), e.g. -X security.protocol="
                   "SASL_SSL; on top of the consumer-side keys (security.*, sasl.*, ssl.*, "
                   "client/socket keys) of --settings' kafkaProducer.properties.")
@click.option("--from-beginning", is_flag=True,
              help="Start at the oldest message; stop at the end unless --follow.")
@click.option("--follow/--no-follow", default=None,
              help="Keep waiting for new messages (default: on unless --from-beginning "
                   "or --since).")
@click.option("--env", "environments", metavar="ID", multiple=True,
              help="Only messages about this environment id (repeatable).")
@click.option("--run", "run_number", type=click.IntRange(min=1), metavar="N",
              help="Only messages carrying run number N.")
@click.option("--since", type=TimeParam(),
              help="Start at the first message at or after TIME: 15m, 2h, 1d (ago), ISO 8601 "
                   "(UTC unless a zone is given) or ms since the epoch.")
@click.option("--until", type=TimeParam(),
              help="Stop each partition at its first message after TIME (same forms).")
@click.option("--format", "fmt", type=click.Choice(["auto", "json", "text", "table"]),
              default="auto", show_default=True,
              help="auto: aligned columns on a terminal, JSON lines (MessageToDict) otherwise; "
                   "text: protobuf text, one a line.")
@click.option("--color/--no-color", "colour", default=None,
              help="Colour the table (default: when stdout is a terminal).")
@click.option("--raw", is_flag=True,
              help="Write each message's bytes, prefixed by their length as a 4-byte "
                   "big-endian integer (pq --stream i32be, kcat -f '%R%s'), to a pipe or file.")
@click.option("--max", "max_messages", type=click.IntRange(min=1),
              help="Stop after N messages printed.")
@click.option("--timeout", type=click.FloatRange(min=0.1), metavar="SECONDS",
              help="Stop after SECONDS without a message.")
@click.option("--root", default=None,
              help="Topic root (default: kafkaProducer.topicRoot of --settings, else aliecs).")
@click.option("--connect-timeout", type=click.FloatRange(min=0.1), default=10.0,
              show_default=True, help="Seconds to wait for the brokers' metadata.")
def consume(
    topic_names: tuple[str, ...], brokers: str | None, settings_source: str | None,
    properties: tuple[str, ...], from_beginning: bool, follow: bool | None,
    environments: tuple[str, ...], run_number: int | None, since: int | None,
    until: int | None, fmt: OutputFormat, colour: bool | None, raw: bool,
    max_messages: int | None, timeout: float | None, root: str | None,
    connect_timeout: float, consul_token: str | None = None, consul_ca: str | None = None,
    consul_client_cert: str | None = None, consul_client_key: str | None = None,
) -> None:
    """Print the messages of aliecs.* topics, decoded, one per line.

    The message type is the one the message's content-type header names
    (application/x-protobuf; messageType=events.Event), else it follows from the topic name:
    events.Event on core topics (aliecs.environment, aliecs.run, aliecs.integrated_service.dcs,
    ...), kafka.NewStateNotification or kafka.ActiveRunsList on legacy ones
    (aliecs.env_state.RUNNING, aliecs.env_list.RUNNING). A header naming an unknown type makes
    the message undecodable (said on its line). --format json shows the headers.
    A message that does not decode gives a line with topic, partition, offset and a hex prefix,
    and consuming goes on. Stop --follow with Ctrl-C. Times are the messages' Kafka timestamps.

    \b
    aliecs-integration consume aliecs.run aliecs.env_state.RUNNING \\
        --brokers 127.0.0.1:19092 --from-beginning --env 2ahU4wkS3TT
    aliecs-integration consume aliecs.environment --settings consul://consul:8500 --since 1h
    aliecs-integration consume aliecs.run --from-beginning --raw \\
        | FDSET_PATH=./fdset pq --msgtype events.Event --stream i32be
    """
    settings = (load_settings(settings_source, consul_token, consul_ca, consul_client_cert,
                              consul_client_key) if settings_source else None)
    if brokers is None and settings is not None:
        if not settings.kafka_endpoints:
            raise BadInput(f"{settings.source}: kafkaEndpoints is empty: give --brokers")
        brokers = ",".join(settings.kafka_endpoints)
    brokers = brokers or DEFAULT_BROKERS
    if root is None:
        root = settings.producer.topic_root if settings is not None else "aliecs"
    if since is not None and until is not None and until < since:
        raise BadInput("--until is before --since: nothing can match")
    stdout = sys.stdout.buffer
    if raw and stdout.isatty():
        raise BadInput("--raw writes binary frames: send them to a pipe or a file")
    if raw and fmt != "auto":
        raise BadInput(f"--raw and --format {fmt} exclude each other: --raw writes the bytes")
    types = message_types(topic_names, root)
    config = consumer_properties(
        settings.producer.properties if settings is not None else {}, _properties(properties))
    keep = Filter(frozenset(environments), run_number, since, until)
    starts_old = from_beginning or since is not None
    follow = (not starts_old) if follow is None else follow
    emit = _emitter(fmt, colour, raw, topic_names, stdout)
    consumer = make_consumer(brokers, config)
    try:
        assigned = assign(consumer, topic_names, brokers=brokers,
                          start="beginning" if from_beginning else "end",
                          timeout_s=connect_timeout, since_ms=since)
        summary = consume_loop(
            consumer, types, assigned, emit=emit, stop_at_end=not follow,
            max_messages=max_messages, idle_timeout_s=timeout, keep=keep,
        )
    finally:
        consumer.close()
    bad = f", {summary.undecodable} undecodable" if summary.undecodable else ""
    left = f", {summary.skipped} left out by the filters" if summary.skipped else ""
    click.echo(f"consumed {summary.messages} messages{bad}{left}: {summary.reason}", err=True)


def _emitter(fmt: OutputFormat, colour: bool | None, raw: bool, topics: Sequence[str],
             stdout: Any) -> Callable[[Decoded], None]:
    if raw:
        def write(item: Decoded) -> None:
            stdout.write(raw_frame(item))
            stdout.flush()
        return write
    terminal = sys.stdout.isatty()
    if fmt == "auto":
        fmt = "table" if terminal else "json"
    line: Callable[[Decoded], str] = (
        table_printer(topics, terminal if colour is None else colour) if fmt == "table"
        else json_line if fmt == "json" else text_line)
    return lambda item: click.echo(line(item), color=True if colour else None)
