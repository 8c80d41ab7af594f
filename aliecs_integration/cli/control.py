"""The control API client commands: ``env list|show|create|control|destroy|watch``,
``templates`` and ``tasks``, talking to ``serve`` at ``--server`` (default the local one).

Failures are ``error: ...`` lines: exit code 2 when the server calls the request bad (unknown
environment or template, malformed request), 1 otherwise (refused transition, server not
reachable, ...).
"""

from __future__ import annotations

import datetime
import sys
import time
from typing import Any

import click

from aliecs_integration.cli.common import EXIT_CODES_HELP, format_table, parse_pairs
from aliecs_integration.pb import events_pb2
from aliecs_integration.service.client import (
    DEFAULT_SERVER,
    SERVER_ENV,
    TRANSITIONS,
    ControlClient,
)

server_option = click.option(
    "--server", envvar=SERVER_ENV, default=DEFAULT_SERVER, show_default=True,
    help=f"HOST:PORT of `aliecs-integration serve` (also ${SERVER_ENV}).")
user_option = click.option("--user", default="", help="Name of the requesting user.")

_STATUS = {v: k for k, v in events_pb2.OpStatus.items()}
_COLOURS = {"DONE_OK": "green", "DONE_ERROR": "red", "DONE_TIMEOUT": "red", "STARTED": "cyan",
            "ONGOING": "", "NULL": ""}


def _age(created_ms: int) -> str:
    if not created_ms:
        return "-"
    seconds = max(0, int(time.time() - created_ms / 1000))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


def _when(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000).strftime("%H:%M:%S.%f")[:-3]


def describe_event(event: events_pb2.Event) -> tuple[str, str, str, str]:
    """(environment id, kind, text, status name) of one event, for ``watch``."""
    which = event.WhichOneof("Payload") or "empty"
    p: Any = getattr(event, which) if which != "empty" else None
    env = str(getattr(p, "environmentId", "")) if p is not None else ""
    if which == "environmentEvent":
        step = f" {p.transitionStep}" if p.transitionStep else ""
        text = (f"{p.transition or '-'}{step}: {p.message}  state={p.state}"
                + (f" run={p.runNumber}" if p.runNumber else "")
                + (f"  error: {p.error}" if p.error else ""))
        return env, "environment", text, _STATUS.get(p.transitionStatus, "")
    if which == "runEvent":
        text = f"run {p.runNumber} {p.transition}  state={p.state}" + (
            f"  error: {p.error}" if p.error else "")
        return env, "run", text, _STATUS.get(p.transitionStatus, "")
    if which == "callEvent":
        text = f"{p.func} at {p.traits.trigger}" + (f"  error: {p.error}" if p.error else "")
        return env, "call", text, _STATUS.get(p.callStatus, "")
    if which == "roleEvent":
        changed = [f"{k}={v}" for k, v in (("status", p.status), ("state", p.state)) if v]
        return env, "role", " ".join([p.rolePath, *changed]), ""
    if which == "taskEvent":
        return env, "task", f"{p.name} state={p.state} status={p.status}", ""
    if which == "integratedServiceEvent":
        text = f"{p.name} {p.operationName} {p.operationStep}".rstrip() + (
            f"  error: {p.error}" if p.error else "")
        return env, "service", text, _STATUS.get(p.operationStatus, "")
    if which in ("coreStartEvent", "frameworkEvent"):
        return "", "core", f"{which} {getattr(p, 'frameworkId', '')}".rstrip(), ""
    return env, which, "", ""


@click.group(epilog=EXIT_CODES_HELP)
def env() -> None:
    """Environments of a running `aliecs-integration serve` (its control API)."""


@env.command(name="list", epilog=EXIT_CODES_HELP)
@server_option
def env_list(server: str) -> None:
    """Every environment: id, workflow, state, run number, detectors, age, transition."""
    with ControlClient(server) as client:
        envs = client.environments()
    rows = [(e.id, e.rootRole, e.state, e.currentRunNumber or "-",
             ",".join(e.includedDetectors) or "-", _age(e.createdWhen),
             e.currentTransition or "-") for e in envs]
    click.echo(format_table(("ID", "WORKFLOW", "STATE", "RUN", "DETECTORS", "AGE",
                             "TRANSITION"), rows))


@env.command(name="show", epilog=EXIT_CODES_HELP)
@server_option
@click.argument("env_id", metavar="ID")
def env_show(server: str, env_id: str) -> None:
    """One environment in detail, with its variables."""
    with ControlClient(server) as client:
        reply = client.environment(env_id, tree=True)
    e = reply.environment
    for label, value in (("id", e.id), ("workflow", e.rootRole), ("description", e.description),
                         ("state", e.state), ("run number", e.currentRunNumber or "-"),
                         ("detectors", ",".join(e.includedDetectors) or "-"),
                         ("created", _when(e.createdWhen) if e.createdWhen else "-"),
                         ("transition", e.currentTransition or "-"),
                         ("root role", f"{reply.workflow.fullPath} {reply.workflow.status}")):
        click.echo(f"{label + ':':13}{value}")
    click.echo("user vars:")
    for key in sorted(e.userVars):
        click.echo(f"  {key} = {e.userVars[key]}")
    click.echo("vars:")
    for key in sorted(e.vars):
        click.echo(f"  {key} = {e.vars[key]}")


def _parse_vars(items: tuple[str, ...]) -> dict[str, str]:
    return parse_pairs(items, "--var", "NAME=VALUE")


@env.command(name="create", epilog=EXIT_CODES_HELP)
@server_option
@user_option
@click.option("-w", "--workflow", required=True, help="Workflow template (see `templates`).")
@click.option("--detectors", default="", help="Comma-separated detectors, e.g. ITS,TPC.")
@click.option("--var", "var_items", multiple=True, metavar="NAME=VALUE",
              help="Environment variable (repeatable).")
@click.option("--async", "asynchronous", is_flag=True,
              help="Reply once created; DEPLOY and CONFIGURE go on in the background.")
@click.option("--auto-start", is_flag=True, help="Start a run once CONFIGURED.")
def env_create(server: str, user: str, workflow: str, detectors: str,
               var_items: tuple[str, ...], asynchronous: bool, auto_start: bool) -> None:
    """Create an environment: CREATE, DEPLOY and CONFIGURE (NewEnvironment)."""
    names = [d.strip() for d in detectors.split(",") if d.strip()]
    with ControlClient(server) as client:
        info = client.create(workflow, detectors=names, variables=_parse_vars(var_items),
                             asynchronous=asynchronous, auto_transition=auto_start, user=user)
    click.echo(f"environment {info.id} created: {info.state} (workflow {info.rootRole}, "
               f"detectors {','.join(info.includedDetectors) or '-'})")


@env.command(name="control", epilog=EXIT_CODES_HELP)
@server_option
@user_option
@click.argument("env_id", metavar="ID")
@click.argument("transition", type=click.Choice(list(TRANSITIONS), case_sensitive=False))
def env_control(server: str, user: str, env_id: str, transition: str) -> None:
    """Run one TRANSITION on environment ID (ControlEnvironment)."""
    with ControlClient(server) as client:
        reply = client.control(env_id, transition, user=user)
    run = f", run {reply.currentRunNumber}" if reply.currentRunNumber else ""
    click.echo(f"environment {reply.id}: {transition.upper()} -> {reply.state}{run} "
               f"({reply.transitionDuration} ms)")


@env.command(name="destroy", epilog=EXIT_CODES_HELP)
@server_option
@user_option
@click.argument("env_id", metavar="ID")
@click.option("--force", is_flag=True, help="Destroy whatever the state and failures.")
@click.option("--allow-running", is_flag=True, help="Stop a running run first.")
def env_destroy(server: str, user: str, env_id: str, force: bool, allow_running: bool) -> None:
    """Tear environment ID down (DestroyEnvironment)."""
    with ControlClient(server) as client:
        client.destroy(env_id, force=force, allow_running=allow_running, user=user)
    click.echo(f"environment {env_id} destroyed")


@env.command(name="watch", epilog=EXIT_CODES_HELP)
@server_option
@click.argument("env_id", metavar="[ID]", required=False, default="")
@click.option("--max", "max_events", type=click.IntRange(min=1), help="Stop after N events.")
@click.option("--color/--no-color", default=None, help="Colour (default: on a terminal).")
def env_watch(server: str, env_id: str, max_events: int | None, color: bool | None) -> None:
    """Stream the events of environment ID (or of every environment) as they are published
    (Subscribe), one decoded line each. Stop with Ctrl-C (exit 0); ends when the server
    stops."""
    colour = sys.stdout.isatty() if color is None else color
    count = 0
    with ControlClient(server) as client:
        stream = client.subscribe(env_id)
        try:
            for event in stream:
                env_of, kind, text, status = describe_event(event)
                line = f"{_when(event.timestamp)}  {env_of or '-':12}  {kind:11}  {text}"
                if status:
                    line += f"  [{status}]"
                fg = _COLOURS.get(status) or None
                click.echo(click.style(line, fg=fg) if colour and fg else line)
                count += 1
                if max_events is not None and count >= max_events:
                    break
        except KeyboardInterrupt:
            pass  # Ctrl-C is the way to stop watching: exit 0
        finally:
            stream.close()


@click.command(epilog=EXIT_CODES_HELP)
@server_option
def templates(server: str) -> None:
    """The workflow templates `serve` can create environments from."""
    with ControlClient(server) as client:
        found = client.templates()
    click.echo(format_table(("TEMPLATE", "REPO", "DESCRIPTION"),
                            [(t.template, t.repo, t.description or "-") for t in found]))


@click.command(epilog=EXIT_CODES_HELP)
@server_option
@click.argument("env_id", metavar="ID")
def tasks(server: str, env_id: str) -> None:
    """The roles (as a tree) and tasks of environment ID."""
    with ControlClient(server) as client:
        found = list(client.environment(env_id).environment.tasks)  # NOT_FOUND if unknown
        roles = client.roles(env_id)
    rows: list[tuple[str, ...]] = []

    def walk(role: Any, depth: int) -> None:
        rows.append(("  " * depth + (role.name or role.fullPath), role.status, role.state,
                     ",".join(role.taskIds) or "-"))
        for child in role.roles:
            walk(child, depth + 1)

    for root in roles:
        walk(root, 0)
    click.echo(format_table(("ROLE", "STATUS", "STATE", "TASK"), rows))
    if found:
        click.echo(format_table(("TASK", "NAME", "STATE", "STATUS", "HOST"),
                                [(t.taskId, t.name, t.state, t.status,
                                  t.deploymentInfo.hostname) for t in found]))
    else:
        click.echo("no tasks")
