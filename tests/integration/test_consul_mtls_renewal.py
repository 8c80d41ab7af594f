"""A client certificate renewed while ``serve`` runs: against a private Consul agent requiring
client certificates (``verify_incoming``), ``serve`` starts with one that expires within
seconds (made with ``openssl ca -enddate``); its files are overwritten in place with a new pair
from the same CA before it expires, as a renewal agent does. After the old one has expired (and
every blocking query was opened again), a change of the settings key is still applied and no
failed read is logged: each request reads the files again. The control: without the renewal,
the first read after the expiry fails, logged once, naming the certificate."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.integration.test_consul_mtls import _lines, _wait_for_line
from tests.tls_helpers import (
    NEEDS_OPENSSL,
    NO_CONSUL_ENV,
    Pair,
    https_agent,
    make_ca,
    make_cert,
    make_client_cert_until,
)

pytestmark = [pytest.mark.consul, pytest.mark.slow, NEEDS_OPENSSL]

DOCUMENT = b"kafkaEndpoints: [renewal-test-broker:9092]\nenableKafka: false\n"
CHANGED = DOCUMENT.replace(b"renewal-test-broker", b"renewed-broker")
WATCH_WAIT_S = 30.0
"""How long the watch's blocking queries wait (``SettingsWatcher``'s default, used by serve);
Consul adds up to 1/16 of it."""


@dataclass
class Agent:
    address: str
    directory: Path
    ca: Pair
    client: Pair
    """A long-valid client certificate, for the test's own requests."""

    def put(self, key: str, data: bytes) -> None:
        requests.put(f"https://{self.address}/v1/kv/{key}", data=data, verify=str(self.ca[0]),
                     cert=(str(self.client[0]), str(self.client[1])), timeout=10
                     ).raise_for_status()


@pytest.fixture(scope="module")
def agent(consul_address: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    """A private HTTPS-only Consul dev agent requiring client certificates
    (``consul_address`` only makes sure the binary is built)."""
    directory = tmp_path_factory.mktemp("consul-renewal")
    ca = make_ca(directory, "test-ca")
    server = make_cert(directory, "server", ca, server=True)
    client = make_cert(directory, "client", ca, server=False)
    with https_agent(directory, ca[0], server, verify_incoming=True, client=client) as address:
        yield Agent(address, directory, ca, client)


class Served:
    """``serve`` watching ``source`` with the client certificate ``pair``; its stderr lines."""

    def __init__(self, agent: Agent, source: str, pair: Pair, tmp_path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aliecs_integration", "serve", "--settings", source,
             "--consul-ca", str(agent.ca[0]), "--consul-client-cert", str(pair[0]),
             "--consul-client-key", str(pair[1]), "--address", "127.0.0.1:0",
             "--metrics-address", "", "--run-numbers", str(tmp_path / "run_number")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **NO_CONSUL_ENV},
        )
        self.lines = _lines(self.proc)
        self.seen: list[str] = []

    def wait_for(self, fragment: str, timeout: float = 60.0) -> str:
        return _wait_for_line(self.proc, self.lines, fragment, self.seen, timeout)

    def stop(self) -> str:
        """SIGTERM, then everything it logged."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        time.sleep(0.2)  # the reader thread has the last lines
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(self.seen)


def _connections(pid: int, port: int) -> set[int]:
    """The local ports of process ``pid``'s established TCP connections to 127.0.0.1:``port``
    (Linux: its socket descriptors matched to /proc/PID/net/tcp)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
        if state == "01" and remote == f"0100007F:{port:04X}" and inode in inodes:
            ports.add(int(local.split(":")[1], 16))
    return ports


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def _start(agent: Agent, tmp_path: Path, lifetime_s: float) -> tuple[str, Pair, float, Served]:
    """A settings key holding DOCUMENT, a client certificate expiring ``lifetime_s`` from now,
    and serve started with it (serving): (key, pair, expiry on the monotonic clock, served)."""
    key = f"t{uuid.uuid4().hex[:10]}/settings"
    agent.put(key, DOCUMENT)
    not_after = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=lifetime_s)
    pair = make_client_cert_until(tmp_path, "short-lived", agent.ca, not_after)
    expiry = time.monotonic() + (not_after - datetime.now(UTC)).total_seconds()
    source = f"consuls://{agent.address}/{key}"
    served = Served(agent, source, pair, tmp_path)
    first = served.wait_for("serving o2control.Control", timeout=120)
    assert f"settings {source} (watched);" in first, first
    return key, pair, expiry, served


def test_serve_reads_on_with_a_client_certificate_renewed_in_place(agent: Agent,
                                                                   tmp_path: Path) -> None:
    # 30 s: the margin for a slow start of serve (it must renew before the expiry); the
    # wait below is about as long either way (the blocking queries must end first)
    key, pair, expiry, served = _start(agent, tmp_path, lifetime_s=30)
    port = int(agent.address.rsplit(":", 1)[1])
    try:
        serving = time.monotonic()
        time.sleep(1.0)  # the blocking queries are open
        opened_before = _connections(served.proc.pid, port)
        assert opened_before, "no connection of serve to the agent: nothing would be tested"
        renewed = make_cert(tmp_path, "renewed", agent.ca, server=False)
        expired = (tmp_path / "expired.pem", tmp_path / "expired.key")
        shutil.copyfile(pair[0], expired[0])
        shutil.copyfile(pair[1], expired[1])
        # the renewal: the same paths rewritten in place (not renamed), key then certificate
        pair[1].write_bytes(renewed[1].read_bytes())
        pair[0].write_bytes(renewed[0].read_bytes())
        assert time.monotonic() < expiry - 2, "serve started too slowly: renewed after expiry"
        # the old certificate has expired, and every blocking query opened with it has ended
        # (after at most WATCH_WAIT_S + 1/16) and was opened again, after the expiry
        _sleep_until(max(expiry + 3, serving + WATCH_WAIT_S * 17 / 16 + 2))
        with pytest.raises(requests.exceptions.SSLError):  # the premise: renewal was needed
            requests.get(f"https://{agent.address}/v1/kv/{key}", verify=str(agent.ca[0]),
                         cert=(str(expired[0]), str(expired[1])), timeout=10)
        agent.put(key, CHANGED)
        applied = served.wait_for(" applied: ", timeout=30)
        assert "renewed-broker:9092" in applied, applied
        # the premise of "applied": it needed new handshakes after the expiry. A connection
        # opened with the old certificate and kept alive would still work (TLS checks
        # certificates only at the handshake); none of those is still open
        assert not opened_before & _connections(served.proc.pid, port)
    finally:
        log = served.stop()
    assert served.proc.returncode == 0, log
    assert "cannot be read" not in log and "Traceback" not in log, log


def test_control_without_the_renewal_the_read_after_expiry_fails(agent: Agent,
                                                                 tmp_path: Path) -> None:
    """The same sequence, the certificate left to expire: the change is not applied; one
    warning says the source cannot be read and why."""
    key, pair, expiry, served = _start(agent, tmp_path, lifetime_s=20)
    try:
        _sleep_until(expiry + 2)
        agent.put(key, CHANGED)  # the blocking queries (opened before expiry) see it
        failed = served.wait_for("cannot be read", timeout=30)
        time.sleep(1.0)  # an "applied" (there must be none) would follow at once
    finally:
        log = served.stop()
    print(failed.rstrip())
    assert served.proc.returncode == 0, log
    assert " applied: " not in log and "Traceback" not in log, log
    assert log.count("cannot be read") == 1, log
    assert f"did not accept the client certificate {pair[0]} (given by --consul-client-cert)" \
        in failed, failed
    assert "is it still valid?" in failed, failed
    assert "certificate expired" in failed, failed
