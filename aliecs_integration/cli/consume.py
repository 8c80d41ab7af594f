"""``aliecs-integration consume``: read ``aliecs.*`` topics and print each message decoded.

The message type comes from the topic name (``topics.message_type_for_topic``):
``events.Event`` on core topics, ``kafka.NewStateNotification`` or ``kafka.ActiveRunsList`` on
legacy ones. Output is one line per message: JSON (``MessageToDict``) or protobuf text. Bytes
that do not decode give a line naming topic, partition, offset and a hex prefix, and consuming
goes on. The reading and decoding functions are reused by the demo.
"""

from __future__ import annotations

import click

from aliecs_integration.cli.common import (
    EXIT_CODES_HELP,
)
from aliecs_integration.publish.reader import (
    Format,
    assign,
    consume_loop,
    json_line,
    make_consumer,
    message_types,
    text_line,
)

BROKERS_ENV = "ALIECS_KAFKA_BROKERS"


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("topic_names", metavar="TOPIC...", nargs=-1, required=True)
@click.option("--brokers", envvar=BROKERS_ENV, default="localhost:9092", show_default=True,
              help=f"Bootstrap servers (also ${BROKERS_ENV}).")
@click.option("--from-beginning", is_flag=True,
              help="Start at the oldest message; stop at the end unless --follow.")
@click.option("--follow/--no-follow", default=None,
              help="Keep waiting for new messages (default: on unless --from-beginning).")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="json",
              show_default=True, help="JSON lines (MessageToDict) or protobuf text, one a line.")
@click.option("--max", "max_messages", type=click.IntRange(min=1), help="Stop after N messages.")
@click.option("--timeout", type=click.FloatRange(min=0.1), metavar="SECONDS",
              help="Stop after SECONDS without a message.")
@click.option("--root", default="aliecs", show_default=True,
              help="Topic root (settings kafkaProducer.topicRoot).")
@click.option("--connect-timeout", type=click.FloatRange(min=0.1), default=10.0,
              show_default=True, help="Seconds to wait for the brokers' metadata.")
def consume(
    topic_names: tuple[str, ...], brokers: str, from_beginning: bool, follow: bool | None,
    fmt: Format, max_messages: int | None, timeout: float | None, root: str,
    connect_timeout: float,
) -> None:
    """Print the messages of aliecs.* topics, decoded, one per line.

    The message type follows from the topic name: events.Event on core topics
    (aliecs.environment, aliecs.run, aliecs.integrated_service.dcs, ...), kafka.NewStateNotification
    or kafka.ActiveRunsList on legacy ones (aliecs.env_state.RUNNING, aliecs.env_list.RUNNING).
    A message that does not decode gives a line with topic, partition, offset and a hex prefix,
    and consuming goes on. Stop --follow with Ctrl-C.

    \b
    aliecs-integration consume aliecs.run aliecs.env_state.RUNNING \\
        --brokers 127.0.0.1:19092 --from-beginning
    """
    types = message_types(topic_names, root)
    follow = (not from_beginning) if follow is None else follow
    consumer = make_consumer(brokers)
    line = json_line if fmt == "json" else text_line
    try:
        assigned = assign(consumer, topic_names, brokers=brokers,
                          start="beginning" if from_beginning else "end", timeout_s=connect_timeout)
        summary = consume_loop(
            consumer, types, assigned, emit=lambda item: click.echo(line(item)),
            stop_at_end=not follow, max_messages=max_messages, idle_timeout_s=timeout,
        )
    finally:
        consumer.close()
    bad = f", {summary.undecodable} undecodable" if summary.undecodable else ""
    click.echo(f"consumed {summary.messages} messages{bad}: {summary.reason}", err=True)
