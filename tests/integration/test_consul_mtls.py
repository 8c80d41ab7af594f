"""Mutual TLS to Consul: a private Consul agent serving HTTPS only with ``verify_incoming =
true`` (a client certificate signed by its CA is required), with throwaway certificates made
by the openssl CLI, started and stopped by this module on its own free ports. The right client
certificate works through the options, the URL and Consul's environment variables
(``CONSUL_CACERT``, ``CONSUL_CLIENT_CERT``, ``CONSUL_CLIENT_KEY``), for reading, pushing and
``serve``'s live watch; no client certificate and one signed by another CA each give one clear
error."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.tls_helpers import (
    NEEDS_OPENSSL,
    NO_CONSUL_ENV,
    Pair,
    https_agent,
    invoke,
    make_ca,
    make_cert,
    one_error,
)

pytestmark = [pytest.mark.consul, NEEDS_OPENSSL]

DOCUMENT = b"kafkaEndpoints: [mtls-test-broker:9092]\nenableKafka: false\n"


@dataclass
class MtlsConsul:
    address: str
    ca: Path
    client: Pair
    foreign: Pair
    """A client certificate signed by a CA the agent does not trust."""
    key: str

    @property
    def source(self) -> str:
        return f"consuls://{self.address}/{self.key}"

    def options(self, client: Pair | None = None) -> list[str]:
        cert, key = client or self.client
        return ["--consul-ca", str(self.ca), "--consul-client-cert", str(cert),
                "--consul-client-key", str(key)]

    def put(self, key: str, data: bytes) -> None:
        requests.put(f"https://{self.address}/v1/kv/{key}", data=data, verify=str(self.ca),
                     cert=(str(self.client[0]), str(self.client[1])), timeout=10
                     ).raise_for_status()

    def get(self, key: str) -> bytes:
        answer = requests.get(f"https://{self.address}/v1/kv/{key}?raw", verify=str(self.ca),
                              cert=(str(self.client[0]), str(self.client[1])), timeout=10)
        answer.raise_for_status()
        return answer.content


@pytest.fixture(scope="module")
def mtls_consul(consul_address: str, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[MtlsConsul]:
    """A private HTTPS-only Consul dev agent requiring client certificates
    (``consul_address`` only makes sure the binary is built)."""
    directory = tmp_path_factory.mktemp("consul-mtls")
    ca = make_ca(directory, "test-ca")
    other = make_ca(directory, "other-ca")
    server = make_cert(directory, "server", ca, server=True)
    client = make_cert(directory, "client", ca, server=False)
    foreign = make_cert(directory, "foreign-client", other, server=False)
    with https_agent(directory, ca[0], server, verify_incoming=True, client=client) as address:
        mtls = MtlsConsul(address, ca[0], client, foreign, f"t{uuid.uuid4().hex[:10]}/settings")
        mtls.put(mtls.key, DOCUMENT)
        yield mtls


def test_the_agent_requires_a_client_certificate(mtls_consul: MtlsConsul) -> None:
    """The premise: without a client certificate the agent refuses the connection."""
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"https://{mtls_consul.address}/v1/kv/{mtls_consul.key}",
                     verify=str(mtls_consul.ca), timeout=10)


def test_options_with_the_right_client_certificate(mtls_consul: MtlsConsul) -> None:
    result = invoke("settings", "show", "--source", mtls_consul.source, *mtls_consul.options())
    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"settings: {mtls_consul.source}" in result.stdout
    assert "mtls-test-broker:9092" in result.stdout


def test_the_url_query_with_the_right_client_certificate(mtls_consul: MtlsConsul) -> None:
    """consul:// with client-cert (and ca-file) on the URL is HTTPS; the URL is shown without
    its query."""
    cert, key = mtls_consul.client
    source = (f"consul://{mtls_consul.address}/{mtls_consul.key}?ca-file={mtls_consul.ca}"
              f"&client-cert={cert}&client-key={key}")
    result = invoke("plugins", "--wait", "0", "--settings", source)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"settings: {mtls_consul.source}" in result.stdout


def test_consul_environment_variables(mtls_consul: MtlsConsul) -> None:
    cert, key = mtls_consul.client
    env = {"CONSUL_CACERT": str(mtls_consul.ca), "CONSUL_CLIENT_CERT": str(cert),
           "CONSUL_CLIENT_KEY": str(key)}
    result = invoke("settings", "show", "--source", mtls_consul.source, env=env)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "mtls-test-broker:9092" in result.stdout


def test_the_options_win_over_the_environment(mtls_consul: MtlsConsul) -> None:
    foreign_cert, foreign_key = mtls_consul.foreign
    env = {"CONSUL_CLIENT_CERT": str(foreign_cert), "CONSUL_CLIENT_KEY": str(foreign_key)}
    result = invoke("settings", "show", "--source", mtls_consul.source, *mtls_consul.options(),
                    env=env)
    assert result.exit_code == 0, result.stdout + result.stderr


def test_no_client_certificate_one_clear_error(mtls_consul: MtlsConsul) -> None:
    result = invoke("settings", "show", "--source", mtls_consul.source,
                    "--consul-ca", str(mtls_consul.ca))
    assert result.exit_code == 1, result.stdout + result.stderr
    line = one_error(result)
    assert line.startswith(f"error: {mtls_consul.source}: Consul at {mtls_consul.address} "), line
    # the agent's alert (refused ...) or, when the request was already written, its closing
    # the connection (closed ... probably ...): both say why
    assert "requires a client certificate (verify_incoming) and none was sent" in line, line
    assert "--consul-client-cert PATH and --consul-client-key PATH" in line, line


def test_a_client_certificate_from_another_ca_one_clear_error(mtls_consul: MtlsConsul) -> None:
    result = invoke("settings", "show", "--source", mtls_consul.source,
                    *mtls_consul.options(mtls_consul.foreign))
    assert result.exit_code == 1, result.stdout + result.stderr
    line = one_error(result)
    assert line.startswith(f"error: {mtls_consul.source}: Consul at {mtls_consul.address} "), line
    assert (f"did not accept the client certificate {mtls_consul.foreign[0]} (given by "
            "--consul-client-cert); is it signed by a CA the agent trusts") in line, line


def test_push_with_a_client_certificate(mtls_consul: MtlsConsul, tmp_path: Path) -> None:
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text("kafkaEndpoints: [pushed:9092]\n")
    key = f"t{uuid.uuid4().hex[:10]}/settings"
    result = invoke("settings", "push", str(settings_file), "--consul",
                    f"consuls://{mtls_consul.address}", *mtls_consul.options(), "--key", key)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"wrote consuls://{mtls_consul.address}/{key}" in result.stdout
    assert mtls_consul.get(key) == settings_file.read_bytes()


def _lines(stream: subprocess.Popen[str]) -> queue.Queue[str]:
    """``serve``'s stderr, line by line, read on a thread."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert stream.stderr is not None
        for line in stream.stderr:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_for_line(served: subprocess.Popen[str], lines: queue.Queue[str], fragment: str,
                   seen: list[str], timeout: float = 60.0) -> str:
    """The next line of ``lines`` holding ``fragment`` (every line read goes to ``seen``);
    fails after ``timeout`` or once ``served`` ended and said nothing more."""
    deadline = time.monotonic() + timeout
    ended = False
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if ended:  # ended, and its last lines (read by then) were taken
                break
            ended = served.poll() is not None
            continue
        seen.append(line)
        if fragment in line:
            return line
    raise AssertionError(f"no line with {fragment!r}: {''.join(seen)}")


def test_serve_watches_the_settings_over_mutual_tls(mtls_consul: MtlsConsul,
                                                    tmp_path: Path) -> None:
    """serve's live watch (blocking queries, then reads) sends the client certificate given by
    the options: a changed document is applied, no watch error is logged."""
    key = f"t{uuid.uuid4().hex[:10]}/settings"
    mtls_consul.put(key, DOCUMENT)
    source = f"consuls://{mtls_consul.address}/{key}"
    served = subprocess.Popen(
        [sys.executable, "-m", "aliecs_integration", "serve", "--settings", source,
         *mtls_consul.options(), "--address", "127.0.0.1:0", "--metrics-address", "",
         "--run-numbers", str(tmp_path / "run_number")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **NO_CONSUL_ENV},
    )
    seen: list[str] = []
    try:
        lines = _lines(served)
        first = _wait_for_line(served, lines, "serving o2control.Control", seen,
                               timeout=120)
        assert f"settings {source} (watched);" in first
        time.sleep(1.0)  # the blocking queries are established
        mtls_consul.put(key, DOCUMENT.replace(b"mtls-test-broker", b"mtls-other-broker"))
        applied = _wait_for_line(served, lines, "applied", seen)
        assert "mtls-other-broker:9092" in applied, applied
        served.send_signal(signal.SIGTERM)
        served.wait(120)
    finally:
        if served.poll() is None:
            served.kill()
            served.wait(10)
    time.sleep(0.2)  # the reader thread has the last lines
    while not lines.empty():
        seen.append(lines.get())
    log = "".join(seen)
    assert served.returncode == 0, log
    assert "cannot be read" not in log and "Traceback" not in log, log
