"""The settings watch through a Consul outage, against a PRIVATE Consul agent (its own ports,
data dir and process, started and stopped by the test; the shared agent is never touched):
the last good settings stay, the outage is said once (not once per retry), retries back off,
and once the agent is back the watch says so and applies the next change."""

from __future__ import annotations

import logging
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import consul
import pytest
import requests
import yaml

from aliecs_integration.settings.core import Settings
from aliecs_integration.settings.sources import load_consul, push_to_consul
from aliecs_integration.settings.watch import Backoff, SettingsWatcher
from tests.integration.test_live_settings import wait_for
from tests.tls_helpers import consul_binary, free_ports

pytestmark = [pytest.mark.consul, pytest.mark.slow]

PORT_NAMES = ("http", "dns", "grpc", "serf_lan", "serf_wan", "server")


class PrivateConsul:
    """One ``consul agent -dev`` of this test only (in-memory: a restart starts empty)."""

    def __init__(self, data_dir: Path) -> None:
        self.ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
        self.data_dir = data_dir
        self.address = f"127.0.0.1:{self.ports['http']}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        hcl = "ports { " + ", ".join(f"{k} = {v}" for k, v in self.ports.items()) \
            + ", grpc_tls = -1 }"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "consul.log", "ab")  # noqa: SIM115 (closed with the process)
        self.process = subprocess.Popen(
            [consul_binary(), "agent", "-dev", "-client", "127.0.0.1", "-bind", "127.0.0.1",
             "-advertise", "127.0.0.1", "-node", f"private-{self.ports['http']}",
             "-log-level", "warn", "-hcl", hcl],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir)
        log.close()

        def leader() -> bool:
            assert self.process is not None and self.process.poll() is None, \
                (self.data_dir / "consul.log").read_text()[-2000:]
            try:
                answer = requests.get(f"http://{self.address}/v1/status/leader", timeout=2)
                return answer.ok and answer.json() not in ("", None)
            except requests.RequestException:
                return False

        wait_for(leader, "the private Consul agent to elect itself leader")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def client(self) -> consul.Consul:
        return consul.Consul(host="127.0.0.1", port=self.ports["http"])


@pytest.fixture
def private_consul(tmp_path: Path) -> Iterator[PrivateConsul]:
    agent = PrivateConsul(tmp_path / "consul")
    agent.start()
    try:
        yield agent
    finally:
        agent.stop()


KEY = "o2/components/aliecs/ANY/any/settings"
VARS = "o2/runtime/aliecs/vars/"


def test_consul_stopped_and_restarted_during_the_watch(
        private_consul: PrivateConsul, caplog: pytest.LogCaptureFixture,
        tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG, logger="aliecs_integration.settings.watch")
    first = {"enableKafka": False, "integrationPlugins": []}
    private_consul.client().kv.put(KEY, yaml.safe_dump(first))
    private_consul.client().kv.put(f"{VARS}kafka_enabled", "false")
    start = load_consul(private_consul.address)
    applied: list[Settings] = []
    watcher = SettingsWatcher(f"consul://{private_consul.address}", start, applied.append,
                              wait_s=2.0, timeout_s=2.0, backoff=Backoff(0.1, 1.0))
    watcher.start()
    try:
        wait_for(lambda: watcher.status().reachable and watcher.status().watch_errors == 0,
                 "the watch to be up")

        private_consul.stop()
        wait_for(lambda: watcher.status().watch_errors >= 6, "several failed retries")
        down = watcher.status()
        assert not down.reachable and down.last_error and "Consul" in down.last_error
        assert watcher.current is start and applied == []
        said = [r for r in caplog.records
                if r.levelno >= logging.WARNING and "cannot be read" in r.getMessage()]
        assert len(said) == 1, [r.getMessage() for r in said]
        retries = [r for r in caplog.records if "still cannot be read" in r.getMessage()]
        assert len(retries) >= 5 and all(r.levelno == logging.DEBUG for r in retries)
        assert "keeping the last good settings" in said[0].getMessage()

        private_consul.start()  # in-memory agent: empty again, with a lower index
        client = private_consul.client()
        changed = tmp_path / "changed.yaml"
        changed.write_text(yaml.safe_dump({**first, "integrationPlugins": ["kafka"],
                                           "kafkaEndpoint": "127.0.0.1:9"}))
        # document and variable in one transaction, as `settings push` writes them
        push_to_consul(private_consul.address, changed, runtime_vars={"kafka_enabled": "true"})
        wait_for(lambda: watcher.status().reachable, "the watch to see Consul back")
        wait_for(lambda: len(applied) == 1, "the change made during the restart applied")
        assert applied[0].runtime_vars["kafka_enabled"] == "true"
        assert applied[0].integration_plugins == ("kafka",)
        # (the empty agent may have been read before the key was written: refused, kept old)
        assert watcher.status().applied == 1 and watcher.status().refused <= 1
        back = [r for r in caplog.records if "reachable again" in r.getMessage()]
        assert len(back) == 1, [r.getMessage() for r in back]
        said_again = [r for r in caplog.records
                      if r.levelno >= logging.WARNING and "cannot be read" in r.getMessage()]
        # a restart can fail a few reads (no leader yet / empty agent), never said twice
        # within one outage: at most once per outage, and this test had one or two outages
        assert 1 <= len(said_again) <= 2

        # and the watch keeps following changes after the outage
        client.kv.put(f"{VARS}kafka_enabled", "false")
        wait_for(lambda: len(applied) == 2, "a change after the outage applied")
        assert applied[1].runtime_vars["kafka_enabled"] == "false"
    finally:
        watcher.stop()
