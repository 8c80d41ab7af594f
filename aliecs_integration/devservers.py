"""The development Kafka and Consul, controlled through the ``dev/`` scripts of a source checkout.

``dev/kafka`` and ``dev/consul`` (described in ``dev/README.md``) start, stop and report the local
servers that the demo and the test suite use; a :class:`DevServer` runs one of them. Every script
answers ``status`` (exit 0: running), ``start`` (returns once the server answers) and ``stop``;
``dev/kafka`` also takes ``--cluster`` (the 3-node cluster), ``--sasl`` (a single node whose
clients must log in with SASL/PLAIN) and ``kill-node N`` / ``start-node N``. Failures raise
:class:`~aliecs_integration.errors.DevServerError` naming the script, the command and, when
captured, the script's own output.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs

from aliecs_integration.errors import DevServerError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The source checkout this package was installed from (editable install), when it is one."""

DEV_KAFKA_BOOTSTRAP = "127.0.0.1:19092"
"""The single dev broker (``dev/kafka start``)."""
DEV_KAFKA_CLUSTER_NODES = {1: "127.0.0.1:29092", 2: "127.0.0.1:29094", 3: "127.0.0.1:29096"}
"""Node id (= broker id) -> client address of the 3-node dev cluster (``--cluster``)."""
DEV_KAFKA_CLUSTER_BOOTSTRAP = ",".join(DEV_KAFKA_CLUSTER_NODES.values())
DEV_KAFKA_SASL_BOOTSTRAP = "127.0.0.1:19094"
"""The SASL_PLAINTEXT dev broker (``dev/kafka start --sasl``; mechanism PLAIN)."""
DEV_KAFKA_SASL_USER, DEV_KAFKA_SASL_PASSWORD = "aliecs", "aliecs-secret"
"""Its client account (dev only, written in ``dev/kafka``; not a secret)."""
DEV_CONSUL_ADDRESS = "127.0.0.1:18500"
"""HTTP API of the dev Consul agent (``dev/consul start``)."""

STATUS_TIMEOUT_S = 60.0
START_TIMEOUT_S = 1800.0
"""Generous: a first ``start`` may fetch Kafka or build Consul before starting."""
STOP_TIMEOUT_S = 300.0


@attrs.define
class DevServer:
    """A server run by a ``dev/<name>`` script; ``mode_args`` (e.g. ``("--cluster",)``) follow
    every ``status``, ``start`` and ``stop``.

    :meth:`ensure_running` reuses a running server and records in :attr:`started` whether it
    started it; :meth:`stop_if_started` stops only such a server. With ``echo=True`` the script's
    output goes to stderr (a person watches); otherwise it is captured and quoted in errors.
    """

    name: str
    script: Path
    mode_args: tuple[str, ...] = ()
    started: bool = False

    def run(
        self, *args: str, timeout: float | None = None, echo: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run the script with ``args`` as is (no ``mode_args`` added); its exit code is the
        caller's to judge. Raises :class:`DevServerError` when it cannot run or times out."""
        out: Any = sys.stderr if echo and _has_fileno(sys.stderr) else subprocess.PIPE
        try:
            res = subprocess.run([str(self.script), *args], stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=out, text=True, timeout=timeout,
                                 check=False)
        except OSError as exc:
            raise DevServerError(f"cannot run {self.script}: {exc.strerror or exc}") from exc
        except subprocess.TimeoutExpired as exc:
            raise DevServerError(
                f"{self._describe(args)} did not finish within {timeout:g} s") from exc
        if echo and out is subprocess.PIPE:
            # stderr is not a file (e.g. captured by a test runner): echo what was captured
            sys.stderr.write(f"{res.stdout or ''}{res.stderr or ''}")
        return res

    def check(self, *args: str, timeout: float | None = None, echo: bool = False) -> None:
        """Run the script with ``args``; raises :class:`DevServerError` unless it exits 0."""
        res = self.run(*args, timeout=timeout, echo=echo)
        if res.returncode != 0:
            raise DevServerError(self._failed(args, res))

    def running(self) -> bool:
        """``status``: True when every node of the server runs."""
        return self.run("status", *self.mode_args, timeout=STATUS_TIMEOUT_S).returncode == 0

    def status(self) -> str:
        """What ``status`` prints (one line per node)."""
        return self.run("status", *self.mode_args, timeout=STATUS_TIMEOUT_S).stdout or ""

    def start(self, *start_args: str, echo: bool = False,
              timeout: float | None = START_TIMEOUT_S) -> None:
        """``start`` (with ``start_args``, e.g. ``--fresh``); returns once the server answers.
        Starting a running server is not an error. Does not change :attr:`started`."""
        self.check("start", *self.mode_args, *start_args, timeout=timeout, echo=echo)

    def stop(self, *, echo: bool = False, timeout: float | None = STOP_TIMEOUT_S) -> None:
        """``stop`` (SIGTERM, then SIGKILL after the script's grace period)."""
        self.check("stop", *self.mode_args, timeout=timeout, echo=echo)

    def ensure_running(self, *start_args: str, echo: bool = False) -> bool:
        """Start the server unless it runs; returns True when it was already running.

        Raises :class:`DevServerError` when ``start`` fails (its output says why).
        """
        if self.running():
            return True
        self.start(*start_args, echo=echo)
        self.started = True
        return False

    def stop_if_started(self, *, echo: bool = False) -> None:
        """Stop the server if :meth:`ensure_running` started it; a failed stop is logged (the
        caller is usually cleaning up after something else)."""
        if self.started:
            try:
                self.stop(echo=echo)
            except DevServerError as exc:
                log.warning("%s; stop it by hand", exc)
        self.started = False

    def _describe(self, args: tuple[str, ...]) -> str:
        return " ".join([str(self.script), *args])

    def _failed(self, args: tuple[str, ...], res: subprocess.CompletedProcess[str]) -> str:
        what = f"{self._describe(args)} failed (exit {res.returncode})"
        output = f"{res.stdout or ''}{res.stderr or ''}"
        if output:
            return f"{what}:\n{output.rstrip()}"
        return f"{what}; see its output above or run `{self.script} logs`"


def _script(root: Path, name: str) -> Path:
    script = root / "dev" / name
    if not script.is_file():
        raise DevServerError(f"controlling the dev servers needs a source checkout: {script} "
                             "not found (against your own servers, use `aliecs-integration run`)")
    return script


def dev_kafka(root: Path = REPO_ROOT, *, cluster: bool = False, sasl: bool = False) -> DevServer:
    """The single dev broker of the checkout at ``root`` (the 3-node cluster with ``cluster``,
    the SASL/PLAIN node with ``sasl``).

    Raises :class:`DevServerError` when ``dev/kafka`` is not there (an installed package).
    """
    mode = ("--cluster",) if cluster else ("--sasl",) if sasl else ()
    return DevServer("kafka", _script(root, "kafka"), mode)


def dev_consul(root: Path = REPO_ROOT) -> DevServer:
    """The dev Consul agent of the checkout at ``root``; raises like :func:`dev_kafka`."""
    return DevServer("consul", _script(root, "consul"))


def dev_servers(root: Path = REPO_ROOT) -> tuple[DevServer, DevServer]:
    """The single Kafka broker and the Consul agent of the checkout at ``root``.

    Raises :class:`DevServerError` when a script is not there (an installed package, not a clone).
    """
    return dev_kafka(root), dev_consul(root)


def _has_fileno(stream: Any) -> bool:
    """Whether ``stream`` is backed by a real file descriptor a child process can write to."""
    try:
        stream.fileno()
    except (OSError, ValueError, AttributeError):
        return False
    return True
