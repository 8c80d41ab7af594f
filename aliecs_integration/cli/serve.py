"""``aliecs-integration serve``: run the environment manager as the control API service.

SIGTERM and SIGINT start the orderly shutdown of :meth:`ControlServer.shutdown`; a second signal
during it is ignored (the drain and flush have their own timeouts). Exit code 0 after a clean
shutdown, 1 when operations were cut short or events were not delivered.

Live settings (unless ``--no-watch``): a :class:`~aliecs_integration.settings.watch.SettingsWatcher`
follows the settings source and applies each new valid document through
:meth:`ControlServer.apply_settings`; SIGHUP reads the source again at once.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import click

from aliecs_integration.cli.common import (
    EXIT_CODES_HELP,
    CliError,
    load_settings,
    metrics_address_option,
    metrics_error,
    settings_option,
)
from aliecs_integration.host import declared_settings_keys
from aliecs_integration.monitoring.endpoint import DEFAULT_ADDRESS as METRICS_ADDRESS
from aliecs_integration.monitoring.endpoint import EndpointError
from aliecs_integration.service.server import DEFAULT_ADDRESS, ControlServer
from aliecs_integration.service.servicer import ALICE_DETECTORS
from aliecs_integration.settings.watch import SettingsWatcher

WATCH_LOGGER = "aliecs_integration.settings.watch"
"""Says what each applied or refused settings change was; INFO while ``serve`` watches."""


def _wait_for_signal(ready: Callable[[], None],
                     on_hangup: Callable[[], None] | None = None) -> int:
    """Install the signal handlers, call ``ready`` (which announces the service: a SIGTERM
    sent as soon as it is seen must find the handlers in place), then block until SIGTERM or
    SIGINT; returns the signal number. SIGHUP calls ``on_hangup`` (when given) and goes on
    waiting. Handlers are left ignoring these signals after."""
    received: list[int] = []
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()

    def hangup(signum: int, frame: FrameType | None) -> None:
        if on_hangup is not None:
            on_hangup()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, hangup)
    try:
        ready()
        while not stop.wait(0.5):
            pass
    finally:
        for signum in previous:
            signal.signal(signum, signal.SIG_IGN)  # ignored while we shut down
    return received[0]


@click.command(epilog=EXIT_CODES_HELP)
@settings_option
@click.option("--address", default=DEFAULT_ADDRESS, show_default=True,
              help="HOST:PORT to serve the control API (o2control.Control) on.")
@click.option("--run-numbers", type=click.Path(dir_okay=False, path_type=Path),
              help="Run-number file (default: $ALIECS_STATE_DIR/run_number or "
                   "~/.local/state/aliecs-integration/run_number). One serve per file.")
@click.option("--workflows", "workflow_dirs", multiple=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory of workflow template YAML files (repeatable); the built-in "
                   "'default' template is always there.")
@click.option("--detectors", default=",".join(ALICE_DETECTORS), show_default=True,
              help="Comma-separated detectors of this instance (GetAvailableDetectors).")
@click.option("--drain-timeout", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds to let operations in progress finish at shutdown.")
@click.option("--flush-timeout", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Seconds to wait at shutdown for the broker to acknowledge everything.")
@click.option("--no-watch", is_flag=True,
              help="Read the settings once at start: do not follow Consul or the file for "
                   "changes (SIGHUP then does nothing).")
@metrics_address_option(METRICS_ADDRESS)
def serve(settings_source: str | None, consul_token: str | None, consul_ca: str | None,
          consul_client_cert: str | None, consul_client_key: str | None,
          address: str,
          run_numbers: Path | None,
          workflow_dirs: tuple[Path, ...], detectors: str, drain_timeout: float,
          flush_timeout: float, no_watch: bool, metrics_address: str) -> None:
    """Serve the control API of the environment manager until SIGTERM or Ctrl-C.

    Clients of the reference's o2control.Control (its CLI and GUI), and our own `env`,
    `templates` and `tasks` commands, create and drive environments through it; Subscribe
    streams the events published to Kafka. At SIGTERM: refuse new requests, let the ones in
    progress finish, flush, report, exit.

    Live settings: a change of the settings in Consul (the settings key or a runtime variable
    under o2/runtime/aliecs/vars/) or of the settings file (or SIGHUP) is validated and, when
    valid, applied without stopping environments; an invalid one is logged and refused, the
    running settings stay (see docs/settings.md, "Live settings").

    \b
    aliecs-integration serve --settings consul://127.0.0.1:18500 --address 127.0.0.1:32102

    Prometheus metrics and the health check are served on --metrics-address (docs/metrics.md).
    """
    settings = load_settings(settings_source, consul_token, consul_ca, consul_client_cert,
                             consul_client_key)
    names = tuple(d.strip() for d in detectors.split(",") if d.strip())
    watcher: SettingsWatcher | None = None
    if settings_source and settings_source.strip() and not no_watch:
        watcher = SettingsWatcher(  # started once the server runs (it applies the changes)
            settings_source, settings,
            lambda new: server.apply_settings(new, flush_timeout_s=flush_timeout),
            token=consul_token, ca_file=consul_ca, client_cert=consul_client_cert,
            client_key=consul_client_key, declared_keys=declared_settings_keys())
    server = ControlServer(settings, address=address, run_numbers=run_numbers,
                           template_dirs=workflow_dirs, detectors=names,
                           metrics_address=metrics_address,
                           watch_status=watcher.status if watcher is not None else None)
    try:
        server.start()
    except EndpointError as exc:
        raise metrics_error(exc) from None
    if server.monitoring is not None:
        click.echo(f"metrics on {server.monitoring.url}/metrics, health on "
                   f"{server.monitoring.url}/healthz", err=True)
    watch_log = logging.getLogger(WATCH_LOGGER)
    watch_level = watch_log.level
    if watcher is not None:
        if not watch_log.isEnabledFor(logging.INFO):
            watch_log.setLevel(logging.INFO)  # every applied change is said, even without -v
        watcher.start()

    def ready() -> None:
        click.echo(f"serving o2control.Control on {address} (port {server.port}); framework id "
                   f"{server.framework_id}; settings {settings.source}"
                   f"{' (watched)' if watcher is not None else ''}; run numbers "
                   f"{server.run_number_store}", err=True)

    try:
        signum = _wait_for_signal(ready, watcher.trigger if watcher is not None else None)
    finally:
        if watcher is not None:  # a change being applied finishes before the shutdown
            watcher.stop(timeout_s=2 * flush_timeout + 5)
        watch_log.setLevel(watch_level)
    click.echo(f"{signal.Signals(signum).name}: shutting down (refusing new requests, "
               f"finishing {len(server.busy_operations())} operation(s) in progress)", err=True)
    report = server.shutdown(drain_timeout_s=drain_timeout, flush_timeout_s=flush_timeout)
    for name, r in sorted(report.host.deliveries.items()):
        click.echo(f"{name}: {r.delivered} delivered, {r.failed} failed, {r.dropped} dropped, "
                   f"{r.undelivered} undelivered", err=True)
    problems = [f"still running after {drain_timeout:g} s: {op}" for op in report.unfinished]
    problems += [str(f) for f in report.host.failures]
    if report.undelivered:
        problems.append(f"{report.undelivered} event(s) not delivered")
    if problems or not report.clean:
        raise CliError("shutdown was not clean: " + ("; ".join(problems) or
                                                     "delivery failures (see above)"))
    click.echo(f"stopped cleanly; {server.environment_count()} environment(s) were left as "
               "they were", err=True)
