"""The ``aliecs-integration`` command line (click).

Commands: ``demo``, ``run``, ``consume``, ``fdset``, ``plugins``, ``settings show|push``,
``topics create``, ``hooks``, ``serve`` and its clients ``env``, ``templates``, ``tasks``.
Every expected failure ends as one ``error: …`` line on stderr and
a meaningful exit code (see :mod:`aliecs_integration.cli.common`); the conversion happens in one
place, :meth:`AliecsGroup.invoke`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from aliecs_integration import __version__
from aliecs_integration.cli.common import (
    EXIT_CODES_HELP,
    SETTINGS_ENV,
    BadInput,
    CliError,
    Options,
    consul_token_option,
    convert,
    format_table,
    load_settings,
    metrics_address_option,
    metrics_error,
    options,
    settings_option,
    unexpected,
)
from aliecs_integration.cli.consume import consume
from aliecs_integration.cli.control import env, tasks, templates
from aliecs_integration.cli.serve import serve
from aliecs_integration.cli.settings import settings as settings_group
from aliecs_integration.cli.shutdown import Terminated, sigterm_raises
from aliecs_integration.publish.reader import CLIENT_LOGGER as LIBRDKAFKA_LOGGER

REPO_EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PACKAGED_EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
"""The demo's settings and scenario as installed from a wheel (``aliecs_integration.examples``)."""
DEMO_EXAMPLES = REPO_EXAMPLES if (REPO_EXAMPLES / "scenario.yaml").is_file() else PACKAGED_EXAMPLES
DEMO_RUN_NUMBERS = Path(
    os.environ.get("ALIECS_RUN") or Path.home() / ".cache" / "aliecs-integration" / "run"
) / "demo" / "run_number"


class AliecsGroup(click.Group):
    """A click group that turns every failure of its commands into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        handler = _StderrHandler()
        ctx.meta[_HANDLER_KEY] = handler
        root = logging.getLogger()
        touched = [root, *(logging.getLogger(n) for n in _ADJUSTED_LOGGERS)]
        levels = [logger.level for logger in touched]
        root.addHandler(handler)
        try:
            with sigterm_raises():
                return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Terminated as terminated:
            click.echo(f"error: {terminated}; {terminated.outcome()}", err=True)
            ctx.exit(terminated.exit_code)
        except KeyboardInterrupt:
            raise click.Abort() from None
        except Exception as exc:
            converted = convert(exc)
            verbose = isinstance(ctx.obj, Options) and ctx.obj.verbose > 0
            if converted is not None:
                if verbose:
                    logging.getLogger(__name__).debug("failure", exc_info=exc)
                raise converted from exc
            raise unexpected(exc, verbose=verbose) from exc
        finally:
            root.removeHandler(handler)
            for logger, level in zip(touched, levels, strict=True):
                logger.setLevel(level)


class _StderrHandler(logging.Handler):
    """Writes log records to whatever ``sys.stderr`` is when the record is emitted; tracebacks
    attached to records are shown only in verbose mode."""

    def __init__(self) -> None:
        super().__init__()
        self.verbose = False
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def format(self, record: logging.LogRecord) -> str:
        if self.verbose or not (record.exc_info or record.exc_text):
            return super().format(record)
        plain = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        return super().format(plain) + " (-v for the traceback)"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


_HANDLER_KEY = "aliecs_integration.cli.main.handler"
PUBLISHER_CLIENT_LOGGER = "aliecs_integration.publish.publisher.librdkafka"
PROGRESS_DUPLICATES = ("aliecs_integration.engine.manager",)
"""Loggers whose warnings the progress lines of ``run`` and ``demo`` already show."""
_ADJUSTED_LOGGERS = (LIBRDKAFKA_LOGGER, PUBLISHER_CLIENT_LOGGER, *PROGRESS_DUPLICATES)
"""Loggers whose level a command may change; the group restores them when it ends."""


def configure_logging(ctx: click.Context, verbose: int) -> None:
    """WARNING by default, INFO with ``-v``, DEBUG with ``-vv``; Kafka client logs and
    tracebacks only with -v."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.getLogger().setLevel(level)
    logging.getLogger(LIBRDKAFKA_LOGGER).setLevel(level if verbose else logging.CRITICAL)
    # the publisher's own logger reports what matters (rate-limited); its Kafka client's
    # messages (every failed connection attempt, retries on a fresh broker) only with -v
    logging.getLogger(PUBLISHER_CLIENT_LOGGER).setLevel(level if verbose else logging.CRITICAL)
    handler = ctx.meta.get(_HANDLER_KEY)
    if isinstance(handler, _StderrHandler):
        handler.verbose = verbose > 0


def quiet_progress_duplicates(ctx: click.Context) -> None:
    """Unless verbose, raise :data:`PROGRESS_DUPLICATES` to ERROR for the rest of the command
    (the group restores the levels)."""
    if options(ctx).verbose:
        return
    for name in PROGRESS_DUPLICATES:
        logging.getLogger(name).setLevel(logging.ERROR)


@click.group(cls=AliecsGroup, epilog=EXIT_CODES_HELP,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True,
              help="More logging (-vv: debug); tracebacks of unexpected errors.")
@click.version_option(__version__, prog_name="aliecs-integration")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Publish environment and run events of an experiment control system to Kafka.

    Start with `aliecs-integration demo`: it brings up a local Kafka and Consul, runs
    environments in parallel through their lifecycle and shows what was published.
    """
    ctx.obj = Options(verbose=verbose)
    configure_logging(ctx, verbose)


# ---------------------------------------------------------------------------- small commands


@cli.command(epilog=EXIT_CODES_HELP)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True, metavar="DIR|FILE.fdset",
    help="A directory (created if missing) to write events.fdset into, or a file name with a "
         "suffix (its directory must exist).",
)
def fdset(output: Path) -> None:
    """Write the wire schema as a protobuf FileDescriptorSet, for tools such as pq.

    All three schema files, dependencies first, with their import paths (protos/...). pq reads
    every *.fdset of the directory FDSET_PATH names; its own Kafka client does not speak to
    Kafka 4, so feed its decoder from `consume --raw`:

    \b
    aliecs-integration fdset -o ./fdset
    aliecs-integration consume aliecs.run --from-beginning --raw \\
        --brokers HOST:9092 | FDSET_PATH=./fdset pq --msgtype events.Event --stream i32be
    """
    from aliecs_integration.schema import write_fdset

    written, size = write_fdset(output)
    click.echo(f"wrote {written} ({size} bytes: common.proto, events.proto, kafka.proto)")


@cli.command(epilog=EXIT_CODES_HELP)
def hooks() -> None:
    """Print the hook reference for plugin authors (generated from the hook specs)."""
    from aliecs_integration import hookdoc

    lines = [
        line for line in hookdoc.render().splitlines()
        if line not in (hookdoc.BEGIN, hookdoc.END)
    ]
    click.echo("\n".join(lines).strip())


@cli.command(name="plugins", epilog=EXIT_CODES_HELP)
@settings_option
@click.option(
    "--wait", type=click.FloatRange(min=0), default=3.0, show_default=True,
    help="Seconds to wait for loaded plugins to leave the CONNECTING state before listing.",
)
def plugins_command(settings_source: str | None, consul_token: str | None,
                    consul_ca: str | None, consul_client_cert: str | None,
                    consul_client_key: str | None, wait: float) -> None:
    """List discovered and requested plugins: loaded or not (and why), endpoint, connection."""
    from aliecs_integration.host import PluginHost

    settings = load_settings(settings_source, consul_token, consul_ca, consul_client_cert,
                             consul_client_key)
    host = PluginHost(settings)
    host.start(listing=True)  # plugins connect but publish nothing (no start event, no list)
    try:
        deadline = time.monotonic() + wait
        statuses = host.list_plugins()
        while any(s.loaded and s.state == "CONNECTING" for s in statuses) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.1)
            statuses = host.list_plugins()
    finally:
        host.stop(timeout_s=2.0)
    rows = [
        (s.name, s.pretty_name, "yes" if s.loaded else "no", s.endpoint or "-",
         s.state if s.loaded else "-", s.origin if s.loaded else s.reason)
        for s in statuses
    ]
    click.echo(f"settings: {settings.source}")
    click.echo(format_table(
        ("NAME", "PRETTY NAME", "LOADED", "ENDPOINT", "STATE", "ORIGIN / WHY NOT LOADED"), rows
    ))


@cli.group(epilog=EXIT_CODES_HELP)
def topics() -> None:
    """Kafka topics of both producers."""


@topics.command(name="create", epilog=EXIT_CODES_HELP)
@settings_option
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds to wait for the broker and the topics.")
def topics_create(settings_source: str | None, consul_token: str | None,
                  consul_ca: str | None, consul_client_cert: str | None,
                  consul_client_key: str | None, timeout: float) -> None:
    """Create every standard topic (core and legacy) with the configured partitions and
    replication (kafkaProducer.topics; replication clamped to the number of brokers).

    Existing topics are left as they are. The publisher itself creates topics before their
    first message; this is for operators who want them in place (and checked) in advance.
    Exit code 1 when a topic could not be created.
    """
    from aliecs_integration.publish.topic_admin import ensure_topics
    from aliecs_integration.publish.topics import TopicNames

    settings = load_settings(settings_source, consul_token, consul_ca, consul_client_cert,
                             consul_client_key)
    if not settings.kafka_endpoints:
        raise BadInput(f"{settings.source}: kafkaEndpoints is empty: no broker to create "
                       "topics on")
    wanted = TopicNames(settings.producer.topic_root).standard_topics()
    created, metadata = ensure_topics(settings.kafka_endpoints, settings.producer, wanted,
                                      timeout_s=timeout,
                                      logger=logging.getLogger(LIBRDKAFKA_LOGGER))
    rows: list[tuple[object, ...]] = []
    for topic in wanted:
        meta = metadata.get(topic)
        if topic in created.failed:
            rows.append((topic, "-", "-", f"FAILED: {created.failed[topic]}"))
        else:
            rows.append((topic, len(meta.partitions) if meta else "?",
                         _replicas(meta) if meta else "?",
                         "created" if topic in created.created else "existed"))
    click.echo(f"brokers: {','.join(settings.kafka_endpoints)}")
    click.echo(format_table(("TOPIC", "PARTITIONS", "REPLICAS", "STATUS"), rows))
    if created.failed:
        raise CliError(f"{len(created.failed)} topic(s) could not be created: "
                       + ", ".join(sorted(created.failed)))


def _replicas(meta: Any) -> int:
    return min((len(p.replicas) for p in meta.partitions.values()), default=0)


class _LastError(logging.Handler):
    """Keeps the last warning or error the publisher logged (a refused message, an
    authentication failure, a refused connection), to name the cause in the final line."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.text = ""

    def emit(self, record: logging.LogRecord) -> None:
        if record.funcName == "close":  # the final count, not a cause
            return
        try:
            text = " ".join(record.getMessage().split())
        except Exception:  # a bad log call must not break the command
            return
        self.text = text if len(text) <= 300 else text[:300] + "..."


def _progress_printer(width: int) -> Callable[[Any], None]:
    from aliecs_integration.cli.demo import format_progress

    return lambda p: click.echo(format_progress(p, width))


@cli.command(epilog=EXIT_CODES_HELP)
@click.option("--settings", "settings_source", metavar="SOURCE", envvar=SETTINGS_ENV,
              required=True, help="consul://HOST:PORT[/KEY] or a YAML settings file.")
@click.option("--scenario", "scenario_file", required=True,
              type=click.Path(path_type=Path), help="Scenario YAML file.")
@click.option("--run-numbers", type=click.Path(dir_okay=False, path_type=Path),
              help="Run-number file (default: $ALIECS_STATE_DIR/run_number or "
                   "~/.local/state/aliecs-integration/run_number).")
@click.option("--flush-timeout", type=click.FloatRange(min=0), default=None,
              help="Seconds to wait at the end (or after SIGTERM) for the broker to acknowledge "
                   "everything, all plugins together [default: kafkaProducer."
                   "flushTimeoutSeconds, 10].")
@consul_token_option
@metrics_address_option("")
@click.pass_context
def run(ctx: click.Context, settings_source: str, scenario_file: Path, run_numbers: Path | None,
        flush_timeout: float | None, consul_token: str | None, consul_ca: str | None,
        consul_client_cert: str | None, consul_client_key: str | None,
        metrics_address: str) -> None:
    """Run a scenario with the configured plugins, against your own Kafka and Consul.

    The engine of `demo` without the dev stack: progress while it runs, then the messages
    published and acknowledged per topic. Exit code 1 when an action did not go as expected
    or a message was not acknowledged.
    """
    from aliecs_integration.cli.demo import TOPIC_HEADERS, topic_rows
    from aliecs_integration.engine.run_numbers import RunNumberStore
    from aliecs_integration.monitoring.endpoint import EndpointError
    from aliecs_integration.scenario.model import load_scenario
    from aliecs_integration.scenario.session import run_scenario

    scenario = load_scenario(scenario_file)
    settings = load_settings(settings_source, consul_token, consul_ca, consul_client_cert,
                             consul_client_key)
    if flush_timeout is None:
        flush_timeout = settings.producer.flush_timeout_s
    quiet_progress_duplicates(ctx)
    count = len(scenario.environments)
    click.echo(f"settings: {settings.source}; scenario: {scenario_file} ({count} "
               f"environment{'s' if count > 1 else ''}{' in parallel' if count > 1 else ''})")
    width = max(len(e.label) for e in scenario.environments)
    last_error = _LastError()
    publish_log = logging.getLogger("aliecs_integration.publish")
    publish_log.addHandler(last_error)
    try:
        outcome = run_scenario(settings, scenario, run_numbers=RunNumberStore(run_numbers),
                               on_progress=_progress_printer(width),
                               flush_timeout_s=flush_timeout, metrics_address=metrics_address,
                               on_monitoring=lambda where: click.echo(
                                   f"metrics on http://{where}/metrics, health on "
                                   f"http://{where}/healthz"))
    except EndpointError as exc:
        raise metrics_error(exc) from None
    finally:
        publish_log.removeHandler(last_error)
    problems = [f"{p.label} actions[{p.index}] {p.action}" for p in outcome.result.failures]
    problems += [f"plugin {m}" for m in outcome.missing_plugins(settings)]
    problems += list(outcome.hook_failures)
    if outcome.metrics is not None:
        click.echo(format_table(TOPIC_HEADERS,
                                topic_rows(outcome.metrics)))
        m = outcome.metrics
        if m.queued:  # not acknowledged: the broker (or the way to it) is the likely cause
            problems.append(f"{m.queued} message(s) not acknowledged within {flush_timeout:g} s,"
                            f" {m.failed} failed, {m.dropped} dropped (is Kafka at "
                            f"{','.join(settings.kafka_endpoints)} reachable?"
                            + (f" the last error: {last_error.text}" if last_error.text else "")
                            + ")")
        elif m.failed or m.dropped:  # refused: say by what, not "is Kafka reachable?"
            problems.append(f"{m.failed} message(s) failed, {m.dropped} dropped"
                            + (f" (the last error: {last_error.text})" if last_error.text
                               else " (the errors above say why)"))
    else:
        click.echo("nothing was published (enableKafka false, kafkaEndpoints empty or "
                   "core-kafka not loaded)")
    if problems:
        raise CliError("; ".join(problems))


@cli.command(epilog=EXIT_CODES_HELP)
@click.option("--keep-servers", is_flag=True,
              help="Leave Kafka and Consul running at the end (when the demo started them).")
@click.option("--settings-file", type=click.Path(path_type=Path),
              default=DEMO_EXAMPLES / "settings.yaml",
              show_default="examples/settings.yaml of the checkout, else the installed copy",
              help="Settings pushed to Consul before the run.")
@click.option("--scenario", "scenario_file", type=click.Path(path_type=Path),
              default=DEMO_EXAMPLES / "scenario.yaml",
              show_default="examples/scenario.yaml of the checkout, else the installed copy")
@click.option("--run-numbers", type=click.Path(dir_okay=False, path_type=Path),
              default=DEMO_RUN_NUMBERS,
              show_default="$ALIECS_RUN/demo/run_number, ALIECS_RUN defaulting to "
                           "~/.cache/aliecs-integration/run",
              help="Run-number file of the demo.")
@click.pass_context
def demo(ctx: click.Context, keep_servers: bool, settings_file: Path, scenario_file: Path,
         run_numbers: Path) -> None:
    """Bring up a local Kafka and Consul and run the example scenario end to end.

    \b
    1. starts (or reuses) the broker on 127.0.0.1:19092 and Consul on 127.0.0.1:18500
       with dev/kafka and dev/consul;
    2. seeds Consul from examples/settings.yaml (legacy kafka plugin on, kafka_enabled true)
       and loads the settings back from Consul;
    3. runs examples/scenario.yaml: three environments in parallel, full SOR/EOR, an error
       and a recover, integrated-service operations, a failing call; progress as it goes;
    4. prints what was published and acknowledged per topic, reads it all back from Kafka,
    5. and shows a few messages decoded; stops the servers it started.
    """
    from aliecs_integration.cli.demo import DemoOptions, run_demo

    quiet_progress_duplicates(ctx)
    problems = run_demo(
        DemoOptions(settings_file, scenario_file, run_numbers, keep_servers=keep_servers),
        click.echo,
    )
    if problems:
        raise CliError(f"{len(problems)} problem(s): " + "; ".join(problems))


cli.add_command(consume)
cli.add_command(settings_group)
cli.add_command(serve)
cli.add_command(env)
cli.add_command(templates)
cli.add_command(tasks)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``aliecs-integration``); exits with the command's code."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="aliecs-integration")


__all__ = ["cli", "main"]


if __name__ == "__main__":
    main()
