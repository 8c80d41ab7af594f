"""HTTPS to Consul (issue 15): a private Consul agent serving its API over HTTPS only, with a
throwaway CA and server certificate made here with the openssl CLI, started and stopped by this
module on its own free ports. The right CA (``--consul-ca``, ``?ca-file=``) works with
``consuls://``; a wrong CA, the system's bundle and plain HTTP each give one clear error."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner, Result

from aliecs_integration.cli.main import cli
from aliecs_integration.devservers import REPO_ROOT

pytestmark = [pytest.mark.consul, pytest.mark.skipif(shutil.which("openssl") is None,
                                                     reason="needs the openssl CLI")]

DOCUMENT = b"kafkaEndpoints: [tls-test-broker:9092]\nenableKafka: false\n"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"CONSUL_HTTP_TOKEN": ""})


def one_error(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: (certificate, key)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
             "-subj", f"/CN={name}", cwd=directory)
    return cert, key


def make_server_cert(directory: Path, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    """A server certificate for 127.0.0.1 and localhost signed by ``ca``: (certificate, key)."""
    cert, key, csr = directory / "server.pem", directory / "server.key", directory / "server.csr"
    ext = directory / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1", cwd=directory)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext),
             cwd=directory)
    return cert, key


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class TlsConsul:
    address: str
    ca: Path
    wrong_ca: Path
    key: str

    @property
    def source(self) -> str:
        return f"consuls://{self.address}/{self.key}"


@pytest.fixture(scope="module")
def tls_consul(consul_address: str, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[TlsConsul]:
    """A private HTTPS-only Consul dev agent (``consul_address`` only makes sure the binary
    is built)."""
    script = str(REPO_ROOT / "dev" / "consul")
    binary = subprocess.run([script, "path"], check=True, capture_output=True,
                            text=True).stdout.strip()
    if not os.access(binary, os.X_OK):  # e.g. ALIECS_TEST_CONSUL named an external agent
        subprocess.run([script, "build"], check=True, capture_output=True, timeout=3600)
    directory = tmp_path_factory.mktemp("consul-tls")
    ca = make_ca(directory, "test-ca")
    wrong = make_ca(directory, "other-ca")
    cert, key = make_server_cert(directory, ca)
    https, serf_lan, serf_wan, server = free_ports(4)
    hcl = (f"ports {{ http = -1, https = {https}, dns = -1, grpc = -1, grpc_tls = -1, "
           f"serf_lan = {serf_lan}, serf_wan = {serf_wan}, server = {server} }} "
           f'tls {{ defaults {{ ca_file = "{ca[0]}", cert_file = "{cert}", '
           f'key_file = "{key}", verify_incoming = false }} }}')
    log = (directory / "consul.log").open("w")
    proc = subprocess.Popen(
        [binary, "agent", "-dev", "-client", "127.0.0.1", "-bind", "127.0.0.1",
         "-advertise", "127.0.0.1", "-node", "aliecs-tls-test", "-log-level", "warn",
         "-hcl", hcl],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{https}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (directory / "consul.log").read_text()
            try:
                leader = requests.get(f"https://{address}/v1/status/leader", verify=str(ca[0]),
                                      timeout=2)
                if leader.ok and leader.json():
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, (directory / "consul.log").read_text()
            time.sleep(0.3)
        settings_key = f"t{uuid.uuid4().hex[:10]}/settings"
        requests.put(f"https://{address}/v1/kv/{settings_key}", data=DOCUMENT,
                     verify=str(ca[0]), timeout=10).raise_for_status()
        yield TlsConsul(address, ca[0], wrong[0], settings_key)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def test_consuls_with_the_right_ca(tls_consul: TlsConsul) -> None:
    result = invoke("settings", "show", "--source", tls_consul.source,
                    "--consul-ca", str(tls_consul.ca))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"settings: {tls_consul.source}" in result.stdout
    assert "tls-test-broker:9092" in result.stdout


def test_ca_file_in_the_url_implies_https(tls_consul: TlsConsul) -> None:
    source = f"consul://{tls_consul.address}/{tls_consul.key}?ca-file={tls_consul.ca}"
    result = invoke("plugins", "--wait", "0", "--settings", source)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"settings: {tls_consul.source}" in result.stdout


def test_wrong_ca_one_clear_error(tls_consul: TlsConsul) -> None:
    result = invoke("settings", "show", "--source", tls_consul.source,
                    "--consul-ca", str(tls_consul.wrong_ca))
    assert result.exit_code == 1, result.stdout + result.stderr
    line = one_error(result)
    assert f"TLS to Consul at {tls_consul.address} failed: certificate verify failed" in line
    assert f"checked against the CA bundle {tls_consul.wrong_ca}" in line, line
    assert "--consul-ca PATH" in line, line


def test_system_bundle_does_not_trust_a_private_ca(tls_consul: TlsConsul) -> None:
    line = one_error(invoke("settings", "show", "--source", tls_consul.source))
    assert "certificate verify failed" in line and "the system's CA bundle" in line, line


def test_plain_http_to_the_https_port(tls_consul: TlsConsul) -> None:
    line = one_error(invoke("settings", "show", "--source",
                            f"consul://{tls_consul.address}/{tls_consul.key}"))
    assert f"serves HTTPS, not plain HTTP: write consuls://{tls_consul.address}" in line, line


def test_a_file_that_is_no_ca_bundle(tls_consul: TlsConsul, tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-ca.pem"
    bogus.write_text("hello\n")
    result = invoke("settings", "show", "--source", tls_consul.source, "--consul-ca", str(bogus))
    assert result.exit_code == 2
    assert f"Consul CA bundle {bogus} holds no PEM certificate" in one_error(result)


def test_push_over_https(tls_consul: TlsConsul, tmp_path: Path) -> None:
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text("kafkaEndpoints: [pushed:9092]\n")
    key = f"t{uuid.uuid4().hex[:10]}/settings"
    result = invoke("settings", "push", str(settings_file), "--consul",
                    f"consuls://{tls_consul.address}", "--consul-ca", str(tls_consul.ca),
                    "--key", key)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"wrote consuls://{tls_consul.address}/{key}" in result.stdout
    stored = requests.get(f"https://{tls_consul.address}/v1/kv/{key}?raw", timeout=10,
                          verify=str(tls_consul.ca))
    assert stored.content == settings_file.read_bytes()
