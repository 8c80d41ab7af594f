"""HTTPS to Consul (issue 15): a private Consul agent serving its API over HTTPS only, with a
throwaway CA and server certificate made here with the openssl CLI, started and stopped by this
module on its own free ports. The right CA (``--consul-ca``, ``?ca-file=``) works with
``consuls://``; a wrong CA, the system's bundle and plain HTTP each give one clear error."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.tls_helpers import NEEDS_OPENSSL, https_agent, invoke, make_ca, make_cert, one_error

pytestmark = [pytest.mark.consul, NEEDS_OPENSSL]

DOCUMENT = b"kafkaEndpoints: [tls-test-broker:9092]\nenableKafka: false\n"


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
    directory = tmp_path_factory.mktemp("consul-tls")
    ca = make_ca(directory, "test-ca")
    wrong = make_ca(directory, "other-ca")
    server = make_cert(directory, "server", ca, server=True)
    with https_agent(directory, ca[0], server, verify_incoming=False) as address:
        settings_key = f"t{uuid.uuid4().hex[:10]}/settings"
        requests.put(f"https://{address}/v1/kv/{settings_key}", data=DOCUMENT,
                     verify=str(ca[0]), timeout=10).raise_for_status()
        yield TlsConsul(address, ca[0], wrong[0], settings_key)


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
