"""The demo and the scenario engine behind ``aliecs-integration demo`` and ``run``.

:func:`run_scenario` is the engine: plugins per the settings, an environment manager, the
scenario's environments in parallel, then the publisher flushed and its per-topic counts read.
The demo adds the local dev stack around it (:mod:`aliecs_integration.devservers`: ``dev/kafka``,
``dev/consul``), seeds Consul from ``examples/settings.yaml``, reads every message back from Kafka
and shows a few of them decoded (:func:`run_demo`).
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from aliecs_integration.devservers import (
    DEV_CONSUL_ADDRESS,
    DEV_KAFKA_BOOTSTRAP,
    REPO_ROOT,
    DevServer,
    dev_servers,
)
from aliecs_integration.engine.run_numbers import RunNumberStore
from aliecs_integration.errors import DevServerError
from aliecs_integration.host import PluginStatus
from aliecs_integration.publish.metrics import MetricsSnapshot
from aliecs_integration.publish.reader import Decoded
from aliecs_integration.scenario.model import Scenario
from aliecs_integration.scenario.runner import (
    Progress,
)
from aliecs_integration.scenario.session import run_scenario
from aliecs_integration.settings.core import Settings

log = logging.getLogger(__name__)

KAFKA_WAIT_S = 60.0
"""How long the demo waits for the broker's first answer (a reused broker may be starting)."""


# --------------------------------------------------------------------------- servers


@attrs.define
class RunningServer:
    """A server the demo cannot start (an installed package has no ``dev/`` scripts): it must
    already answer at ``address``. Same interface as :class:`DevServer`; never started."""

    name: str
    address: str
    started: bool = False

    def ensure_running(self, *, echo: bool = False) -> bool:
        """True when a TCP connection to :attr:`address` succeeds; else raises
        :class:`DevServerError` saying how to get one."""
        host, _, port = self.address.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=2.0):
                return True
        except (OSError, ValueError):
            raise DevServerError(
                f"{self.name} does not answer at {self.address}, and this installation has no "
                f"dev/{self.name} script to start it (a source checkout has): start "
                f"{self.name} there, or use `aliecs-integration run` against your own servers"
            ) from None

    def stop_if_started(self, *, echo: bool = False) -> None:
        """Nothing to do: the demo never starts such a server."""


def demo_servers(
    root: Path = REPO_ROOT, kafka_address: str = DEV_KAFKA_BOOTSTRAP,
    consul_address: str = DEV_CONSUL_ADDRESS,
) -> tuple[DevServer | RunningServer, DevServer | RunningServer]:
    """Kafka and Consul for the demo: the dev servers of the checkout at ``root`` when it has
    ``dev/kafka`` and ``dev/consul``, else servers expected to answer at the addresses."""
    if (root / "dev" / "kafka").is_file() and (root / "dev" / "consul").is_file():
        return dev_servers(root)
    return RunningServer("kafka", kafka_address), RunningServer("consul", consul_address)


# --------------------------------------------------------------------------- engine


# --------------------------------------------------------------------------- output


def format_progress(p: Progress, label_width: int = 10) -> str:
    """One progress line: label, environment id, action, then the new state and run, or why it
    failed; a leading ``!`` marks an outcome that was not the expected one. Notes (errors the
    manager reported without failing the action) follow on indented lines."""
    mark = " " if p.as_expected else "!"
    head = f"{mark} {p.label:<{label_width}}  {p.environment_id or '-':<12}  "
    if not p.ok:
        verdict = "failed as expected" if p.as_expected else "FAILED"
        lines = [f"{head}{p.action:<15} {verdict}: {p.error}"]
    elif isinstance(p.action, str) and ":" in p.action:  # a service operation
        lines = [f"{head}{p.action}  {'; '.join(p.notes)}"]
        return lines[0]
    elif p.action.startswith("sleep"):
        lines = [f"{head}{p.action}"]
    else:
        run = ""
        if p.run_number is not None:
            run = f"  run {p.run_number}"
        elif p.ended_run is not None:
            run = f"  run {p.ended_run} ended"
        unexpected = "" if p.as_expected else "  (was expected to fail)"
        lines = [f"{head}{p.action:<15} -> {p.state}{run}{unexpected}"]
    lines += [f"{'':{len(head)}}  note: {note}" for note in p.notes]
    return "\n".join(lines)


def topic_rows(
    metrics: MetricsSnapshot, read_back: Mapping[str, tuple[int, int]] | None = None
) -> list[tuple[str, ...]]:
    """Table rows per topic: published (offered to the publisher), acknowledged, failed,
    dropped, not acknowledged yet (published minus the three), and with ``read_back``
    (topic -> (decoded, undecodable)) what came back from Kafka."""
    def row(name: str, published: int, sent: int, failed: int, dropped: int) -> list[str]:
        pending = published - sent - failed - dropped
        return [name, str(published), str(sent), str(failed), str(dropped), str(pending)]

    rows = []
    for topic, m in sorted(metrics.topics.items()):
        cells = row(topic, m.published, m.sent, m.failed, m.dropped)
        if read_back is not None:
            decoded, bad = read_back.get(topic, (0, 0))
            cells.append(f"{decoded}" + (f" ({bad} undecodable)" if bad else ""))
        rows.append(tuple(cells))
    total = row("total", metrics.published, metrics.sent, metrics.failed, metrics.dropped)
    if read_back is not None:
        total.append(str(sum(d for d, _ in read_back.values())))
    rows.append(tuple(total))
    return rows


TOPIC_HEADERS = ("TOPIC", "PUBLISHED", "ACKNOWLEDGED", "FAILED", "DROPPED", "PENDING")


# --------------------------------------------------------------------------- the demo


@attrs.frozen
class DemoOptions:
    settings_file: Path
    scenario_file: Path
    run_numbers: Path
    keep_servers: bool = False
    consul: str = DEV_CONSUL_ADDRESS
    brokers: str = DEV_KAFKA_BOOTSTRAP
    root: Path = REPO_ROOT


SAMPLES: tuple[tuple[str, str], ...] = (
    ("environment", "an environment event: the enter_RUNNING step finished"),
    ("run", "a run event: Start of Run done"),
    ("env_state.RUNNING", "a legacy NewStateNotification: Start of Run"),
    ("env_list.RUNNING", "a legacy ActiveRunsList: the runs active at that moment"),
)


def _sample_score(kind: str, item: Decoded, env_ids: set[str]) -> int:
    """How good ``item`` is as the sample of ``kind`` (0: not a candidate)."""
    message: Any = item.message
    if message is None:
        return 0
    if kind == "environment":
        ev = message.environmentEvent
        return int(ev.environmentId in env_ids) * (
            2 if ev.transitionStep == "enter_RUNNING" and ev.message.endswith("finished") else 1)
    if kind == "run":
        ev = message.runEvent
        return int(ev.environmentId in env_ids) * (
            2 if ev.transition == "START_ACTIVITY" and ev.transitionStatus == 3 else 1)
    if kind == "env_state.RUNNING":
        return int(message.envInfo.environmentId in env_ids)
    return 1 + sum(run.environmentId in env_ids for run in message.activeRuns)


def pick_samples(
    items: list[Decoded], env_ids: set[str], topic_root: str = "aliecs"
) -> list[tuple[str, Decoded]]:
    """One decoded message per :data:`SAMPLES` kind (the first best-scoring), with its title."""
    chosen = []
    for kind, title in SAMPLES:
        topic = f"{topic_root}.{kind}"
        best, best_score = None, 0
        for item in items:
            if item.topic == topic and (score := _sample_score(kind, item, env_ids)) > best_score:
                best, best_score = item, score
        if best is not None:
            chosen.append((title, best))
    return chosen


def format_sample(item: Decoded) -> str:
    """Where a message was read (topic, partition, offset, key, type), then its fields as
    indented JSON (``MessageToDict``)."""
    from google.protobuf import json_format

    key = item.key.decode("utf-8", "replace") if item.key is not None else "none"
    head = (f"   {item.topic}  partition {item.partition}  offset {item.offset}  key {key}  "
            f"({item.type_name})")
    if item.message is None:
        return f"{head}\n   undecodable: {item.error}"
    body = json.dumps(json_format.MessageToDict(item.message), indent=2)
    return head + "\n" + "\n".join(f"   {line}" for line in body.splitlines())


def run_demo(opts: DemoOptions, echo: Callable[[str], None]) -> list[str]:
    """The whole demo; returns the problems found (empty: everything as expected).

    Raises ``DevServerError`` (a dev server did not start, or without a source checkout does
    not answer),
    ``SettingsError``, ``ScenarioError`` or ``CliError`` (Kafka unreachable) for what stops it;
    servers it started are stopped unless ``keep_servers``.
    """
    from aliecs_integration.scenario.model import load_scenario
    from aliecs_integration.settings.sources import load_consul, load_file, push_to_consul

    scenario = load_scenario(opts.scenario_file)  # bad input fails before anything starts
    load_file(opts.settings_file)
    kafka, consul = demo_servers(opts.root, opts.brokers, opts.consul)
    try:
        echo("== 1. dev servers (dev/kafka, dev/consul)")
        for server, where in ((kafka, opts.brokers), (consul, opts.consul)):
            reused = server.ensure_running(echo=True)
            echo(f"{server.name}: {'already running, reused' if reused else 'started'} "
                 f"at {where}")
        echo("")
        echo("== 2. settings")
        push_to_consul(opts.consul, opts.settings_file, runtime_vars={"kafka_enabled": "true"})
        settings = load_consul(opts.consul)
        echo(f"seeded Consul from {opts.settings_file} (and o2/runtime/aliecs/vars/kafka_enabled"
             f" = true); loaded settings from {settings.source}")
        echo(f"kafkaEndpoints {', '.join(settings.kafka_endpoints)}; kafkaEndpoint "
             f"{settings.kafka_endpoint}; integrationPlugins {list(settings.integration_plugins)}"
             f"; enableKafka {str(settings.enable_kafka).lower()}")
        return _run_and_report(opts, settings, scenario, echo)
    finally:
        if not opts.keep_servers:
            for server in (consul, kafka):
                if server.started:
                    echo(f"stopping {server.name} (started by the demo; --keep-servers keeps it)")
                    server.stop_if_started(echo=True)


def _run_and_report(
    opts: DemoOptions, settings: Settings, scenario: Scenario, echo: Callable[[str], None]
) -> list[str]:
    from aliecs_integration.cli.common import format_table
    from aliecs_integration.publish.reader import high_watermarks, read_back
    from aliecs_integration.publish.topics import TopicNames

    names = TopicNames(settings.producer.topic_root)
    services = {a.action.service for e in scenario.environments for a in e.steps
                if hasattr(a.action, "service")}
    watched = names.standard_topics() + [names.integrated_service(s) for s in sorted(services)
                                         if names.integrated_service(s) not in
                                         names.standard_topics()]
    start = high_watermarks(opts.brokers, watched, timeout_s=KAFKA_WAIT_S)
    width = max(len(e.label) for e in scenario.environments)
    echo("")
    echo(f"== 3. scenario {opts.scenario_file}: {len(scenario.environments)} environments "
         "in parallel (label, environment id, action -> new state)")
    outcome = run_scenario(
        settings, scenario, run_numbers=RunNumberStore(opts.run_numbers),
        on_progress=lambda p: echo(format_progress(p, width)),
        on_started=lambda plugins: echo(_plugin_line(plugins)), require_plugins=True,
    )
    problems = [f"{p.label}: actions[{p.index}] {p.action}: {p.error or 'did not fail'}"
                for p in outcome.result.failures]
    if outcome.metrics is None:
        return [*problems, "nothing was published (enableKafka false or no kafkaEndpoints)"]
    written = [t for t, m in outcome.metrics.topics.items() if m.sent]
    items = read_back(opts.brokers, written, start, root=names.root, timeout_s=10.0)
    counts: dict[str, tuple[int, int]] = {}
    for item in items:
        ok, bad = counts.get(item.topic, (0, 0))
        counts[item.topic] = (ok + item.ok, bad + (not item.ok))
    echo("")
    echo("== 4. messages per topic: published and acknowledged (publisher metrics), "
         "read back from Kafka and decoded")
    echo(format_table((*TOPIC_HEADERS, "READ BACK"),
                      topic_rows(outcome.metrics, counts)))
    for topic, m in outcome.metrics.topics.items():
        back, bad = counts.get(topic, (0, 0))
        if m.failed or m.dropped or back < m.sent or bad:
            problems.append(f"{topic}: {m.sent} acknowledged, {m.failed} failed, "
                            f"{m.dropped} dropped, {back} read back, {bad} undecodable")
    echo("")
    echo("== 5. a few messages, consumed back and decoded "
         "(`aliecs-integration consume TOPIC --from-beginning` shows them all)")
    for title, item in pick_samples(items, set(outcome.result.environment_ids.values()),
                                    names.root):
        echo(f"-- {title}")
        echo(format_sample(item))
    runs = ", ".join(map(str, outcome.result.run_numbers())) or "none"
    echo("")
    echo("== 6. the control API: `serve` in the background, one environment driven with the "
         "CLI client (env create, control, list, watch, destroy)")
    problems += run_served_environment(opts, echo)
    echo("")
    echo(f"== done in {outcome.elapsed_s:.1f} s: {len(outcome.result.progress)} actions, "
         f"{len(outcome.result.failures)} not as expected; run numbers {runs}; "
         f"{outcome.metrics.sent} messages acknowledged")
    return problems


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_served_environment(opts: DemoOptions, echo: Callable[[str], None]) -> list[str]:
    """Start ``serve`` (settings from the demo's Consul) as a background process, drive one
    environment through it with the ``env`` commands, show their output and a few lines of
    ``env watch``, then stop it with SIGTERM. Returns the problems found."""
    import tempfile

    with tempfile.NamedTemporaryFile("w+", prefix="aliecs-serve-", suffix=".log") as log_file:
        return _served_environment(opts, echo, log_file)


def _served_environment(
    opts: DemoOptions, echo: Callable[[str], None], log_file: Any,
) -> list[str]:
    import signal

    from aliecs_integration.service.client import ControlError, wait_for_server

    address = f"127.0.0.1:{_free_port()}"
    metrics = f"127.0.0.1:{_free_port()}"
    cli = [sys.executable, "-m", "aliecs_integration.cli.main"]
    problems: list[str] = []
    serve = subprocess.Popen(
        [*cli, "serve", "--settings", f"consul://{opts.consul}", "--address", address,
         "--run-numbers", str(opts.run_numbers), "--metrics-address", metrics],
        stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
    echo(f"$ aliecs-integration serve --settings consul://{opts.consul} --address {address} "
         f"--metrics-address {metrics} &")

    def client(*args: str, show: bool = True) -> str:
        echo(f"$ aliecs-integration {' '.join(args)}")
        done = subprocess.run([*cli, *args, "--server", address], capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, check=False, timeout=120)
        out = (done.stdout + done.stderr).rstrip()
        if show and out:
            echo(out)
        if done.returncode != 0:
            problems.append(f"`{' '.join(args)}` exited {done.returncode}: {out}")
        return done.stdout

    watch = None
    try:
        wait_for_server(address, timeout_s=30)
        created = client("env", "create", "-w", "default", "--detectors", "CPV,EMC",
                         "--var", "purpose=demo")
        env_id = created.split()[1] if created.startswith("environment ") else ""
        if not env_id:
            return [*problems, "env create printed no environment id"]
        watch = subprocess.Popen([*cli, "env", "watch", env_id, "--server", address,
                                  "--no-color", "--max", "12"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 stdin=subprocess.DEVNULL)
        time.sleep(1.0)  # let the subscription register
        client("env", "control", env_id, "START_ACTIVITY")
        client("env", "list")
        problems += _scrape(metrics, echo)
        client("env", "control", env_id, "STOP_ACTIVITY")
        client("env", "destroy", env_id)
        watched, _ = watch.communicate(timeout=30)
        echo(f"$ aliecs-integration env watch {env_id}   (first lines)")
        for line in watched.splitlines()[:8]:
            echo(line)
        if len(watched.splitlines()) < 12:
            problems.append(f"env watch showed {len(watched.splitlines())} lines, expected 12")
    except (ControlError, subprocess.TimeoutExpired) as exc:
        problems.append(f"serve: {exc}")
    finally:
        if watch is not None and watch.poll() is None:
            watch.kill()
            watch.wait()
        serve.send_signal(signal.SIGTERM)
        echo("$ kill -TERM <serve>")
        try:
            code = serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            serve.kill()
            code = serve.wait()
        log_file.seek(0)
        for line in log_file.read().splitlines()[-3:]:
            echo(f"  serve: {line}")
        if code != 0:
            problems.append(f"serve exited {code} after SIGTERM")
    return problems


def _scrape(address: str, echo: Callable[[str], None]) -> list[str]:
    """Show a few lines of serve's ``/metrics`` and its ``/healthz`` status; the problems."""
    import urllib.error
    import urllib.request

    wanted = ("aliecs_active_runs ", 'aliecs_environments{state="RUNNING"}',
              'aliecs_plugin_state{plugin="core-kafka",state="READY"}')
    echo(f"$ curl http://{address}/metrics   (some lines)")
    try:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=30) as response:
            text = response.read().decode()
        for line in text.splitlines():
            if line.startswith(wanted):
                echo(line)
        with urllib.request.urlopen(f"http://{address}/healthz", timeout=30) as response:
            echo(f"$ curl http://{address}/healthz   -> HTTP {response.status}")
    except (urllib.error.URLError, OSError) as exc:
        return [f"metrics endpoint http://{address}: {exc}"]
    return []


def _plugin_line(plugins: list[PluginStatus]) -> str:
    parts = [f"{p.name} loaded" if p.loaded else f"{p.name} not loaded ({p.reason})"
             for p in plugins]
    return "plugins: " + "; ".join(parts)
