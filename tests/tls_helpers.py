"""Throwaway certificates (made with the openssl CLI), a private HTTPS-only Consul dev agent
for the TLS tests (its own free ports and data, started and stopped by the caller's fixture),
the CLI runner those tests share, and what any private agent needs (free ports, the binary)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner, Result

from aliecs_integration.cli.main import cli
from aliecs_integration.devservers import REPO_ROOT

Pair = tuple[Path, Path]
"""(certificate, key) PEM files."""

NEEDS_OPENSSL = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
"""The mark of a test that makes certificates (every helper here that makes one needs it)."""

NO_CONSUL_ENV = {name: "" for name in ("CONSUL_HTTP_TOKEN", "CONSUL_CACERT",
                                       "CONSUL_CLIENT_CERT", "CONSUL_CLIENT_KEY")}
"""Consul's client environment variables, emptied (a developer's shell may set them)."""


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """The CLI run in-process with ``args``, Consul's client variables emptied, then ``env``."""
    return CliRunner().invoke(cli, list(args), env={**NO_CONSUL_ENV, **(env or {})})


def one_error(result: Result) -> str:
    """The one ``error:`` line of a failed command (asserting there is exactly one)."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_key(directory: Path, name: str) -> Path:
    """An unencrypted EC private key (PKCS#8 PEM)."""
    key = directory / f"{name}.key"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-out", str(key), cwd=directory)
    return key


def make_ca(directory: Path, name: str) -> Pair:
    """A self-signed CA: (certificate, key)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", f"/CN={name}", cwd=directory)
    return cert, key


def make_cert(directory: Path, name: str, ca: Pair, *, server: bool) -> Pair:
    """A certificate signed by ``ca``: for a server at 127.0.0.1 and localhost, or for a
    client (``clientAuth``): (certificate, key)."""
    cert, key, csr = (directory / f"{name}.pem", directory / f"{name}.key",
                      directory / f"{name}.csr")
    ext = directory / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n" if server
                   else "extendedKeyUsage=clientAuth\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}", cwd=directory)
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
            "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext),
            cwd=directory)
    return cert, key


def make_client_cert_until(directory: Path, name: str, ca: Pair, not_after: datetime) -> Pair:
    """A client certificate (``clientAuth``) signed by ``ca``, valid from a minute ago until
    ``not_after`` (to the second; ``openssl ca -enddate``, as ``x509 -days`` counts whole
    days): (certificate, key)."""
    cert, key, csr = (directory / f"{name}.pem", directory / f"{name}.key",
                      directory / f"{name}.csr")
    database, serial, config = (directory / f"{name}.index", directory / f"{name}.serial",
                                directory / f"{name}.cnf")
    database.write_text("")
    serial.write_text("01\n")
    config.write_text(
        f"[ca]\ndefault_ca = short\n[short]\ndatabase = {database}\n"
        f"new_certs_dir = {directory}\nserial = {serial}\ndefault_md = sha256\n"
        "policy = any\nunique_subject = no\nx509_extensions = client\n"
        "[any]\ncommonName = supplied\n[client]\nextendedKeyUsage = clientAuth\n"
    )
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}", cwd=directory)
    stamp = "%y%m%d%H%M%SZ"
    start = datetime.now(UTC) - timedelta(minutes=1)
    openssl("ca", "-batch", "-config", str(config), "-cert", str(ca[0]), "-keyfile", str(ca[1]),
            "-in", str(csr), "-out", str(cert), "-notext",
            "-startdate", start.strftime(stamp),
            "-enddate", not_after.astimezone(UTC).strftime(stamp), cwd=directory)
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


def consul_binary() -> str:
    """The dev cache's consul binary (built when missing, e.g. when ALIECS_TEST_CONSUL named
    an external agent)."""
    script = str(REPO_ROOT / "dev" / "consul")
    binary = subprocess.run([script, "path"], check=True, capture_output=True,
                            text=True).stdout.strip()
    if not os.access(binary, os.X_OK):
        subprocess.run([script, "build"], check=True, capture_output=True, timeout=3600)
    return binary


@contextmanager
def https_agent(directory: Path, ca: Path, server: Pair, *, verify_incoming: bool,
                client: Pair | None = None) -> Iterator[str]:
    """A private Consul dev agent serving its API over HTTPS only (certificate ``server``,
    clients verified against ``ca`` when ``verify_incoming``); yields ``127.0.0.1:PORT`` once
    it has a leader. ``client``: the certificate the readiness check sends."""
    https, serf_lan, serf_wan, server_port = free_ports(4)
    hcl = (f"ports {{ http = -1, https = {https}, dns = -1, grpc = -1, grpc_tls = -1, "
           f"serf_lan = {serf_lan}, serf_wan = {serf_wan}, server = {server_port} }} "
           f'tls {{ defaults {{ ca_file = "{ca}", cert_file = "{server[0]}", '
           f'key_file = "{server[1]}", verify_incoming = {str(verify_incoming).lower()} }} }}')
    log_path = directory / "consul.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [consul_binary(), "agent", "-dev", "-client", "127.0.0.1", "-bind", "127.0.0.1",
         "-advertise", "127.0.0.1", "-node", f"aliecs-tls-test-{https}", "-log-level", "warn",
         "-hcl", hcl],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{https}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                leader = requests.get(f"https://{address}/v1/status/leader", verify=str(ca),
                                      cert=client and (str(client[0]), str(client[1])),
                                      timeout=2)
                if leader.ok and leader.json():
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.3)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
