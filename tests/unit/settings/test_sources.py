"""Unit tests of aliecs_integration.settings.sources: YAML files, source dispatch, and the
Consul reader/writer against an in-process fake of py-consul's client (the real Consul is
exercised in tests/integration/test_settings_consul.py)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
from pathlib import Path
from typing import Any

import consul
import pytest
import requests

from aliecs_integration.errors import SettingsError
from aliecs_integration.settings import sources as settings_sources
from aliecs_integration.settings.consul_access import ConsulAccess
from aliecs_integration.settings.core import Settings
from aliecs_integration.settings.sources import (
    DEFAULT_SETTINGS_KEY,
    DEFAULT_VARS_PREFIX,
    load,
    load_consul,
    load_file,
    parse_yaml,
    push_to_consul,
)
from tests.tls_helpers import make_ca, make_cert

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "settings.yaml"
GOOD = 'kafkaEndpoints: ["b1:9092"]\nenableKafka: false\nmyPlugin: {a: 1}\n'


def write(tmp_path: Path, text: str | bytes, name: str = "settings.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def file_error(path: Path, *fragments: str) -> str:
    with pytest.raises(SettingsError) as info:
        load_file(path)
    message = str(info.value)
    assert info.value.source == os.path.abspath(path)
    assert os.path.abspath(path) in message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- files -------------------------------------------------------------------------------


def test_example_file_loads() -> None:
    settings = load_file(EXAMPLE)
    assert settings.kafka_endpoints == ("127.0.0.1:19092",)
    assert settings.kafka_endpoint == "127.0.0.1:19092"
    assert settings.integration_plugins == ("kafka", "trg", "dcs", "odc")
    assert settings.enable_kafka is True
    assert dict(settings.runtime_vars) == {"kafka_enabled": "true"}
    assert settings.source == str(EXAMPLE)
    assert isinstance(settings.get("kafkaProducer"), dict)


def test_file_values_and_unknown_keys(tmp_path: Path) -> None:
    settings = load_file(write(tmp_path, GOOD))
    assert settings.kafka_endpoints == ("b1:9092",)
    assert settings.enable_kafka is False
    assert settings.get("myPlugin") == {"a": 1}
    assert settings.source == str(tmp_path / "settings.yaml")


def test_relative_path_source_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, GOOD)
    monkeypatch.chdir(tmp_path)
    assert load_file(Path("settings.yaml")).source == str(tmp_path / "settings.yaml")


def test_missing_file(tmp_path: Path) -> None:
    file_error(tmp_path / "absent.yaml", "not found")


def test_directory_is_unreadable(tmp_path: Path) -> None:
    file_error(tmp_path, "a directory, not a regular file")


def test_non_utf8_file(tmp_path: Path) -> None:
    file_error(write(tmp_path, b"kafkaEndpoint: \xff\xfe\n"), "not UTF-8", "byte offset 15")


def test_malformed_yaml_names_line_and_column(tmp_path: Path) -> None:
    text = "enableKafka: true\nkafkaEndpoints:\n  - a:1\n  oops: 2\n"
    message = file_error(write(tmp_path, text),
                         "malformed YAML at line 4, column 3: did not find expected")
    assert "(while parsing a block collection at line 3, column 3)" in message


def test_mapping_value_in_scalar_names_line_and_column(tmp_path: Path) -> None:
    text = "a: 1\nkafkaEndpoint: b: 1\n"
    file_error(write(tmp_path, text), "malformed YAML at line 2, column 17: mapping values")


def test_unclosed_flow_list_names_line(tmp_path: Path) -> None:
    file_error(write(tmp_path, 'a: 1\nkafkaEndpoints: ["b:1"\n'), "malformed YAML at line 3")


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    text = "enableKafka: true\nkafkaEndpoints: [a:1]\nenableKafka: false\n"
    file_error(write(tmp_path, text), "duplicate key 'enableKafka'", "line 3, column 1")


def test_duplicate_keys_nested(tmp_path: Path) -> None:
    text = "kafkaProducer:\n  properties:\n    acks: all\n    acks: 1\n"
    file_error(write(tmp_path, text), "duplicate key 'acks'", "line 4")


def test_merge_key_override_is_not_a_duplicate(tmp_path: Path) -> None:
    text = "base: &b {x: 1, y: 2}\nmine:\n  <<: *b\n  x: 3\n"
    assert load_file(write(tmp_path, text)).get("mine") == {"x": 3, "y": 2}


def test_unsafe_tags_are_refused(tmp_path: Path) -> None:
    file_error(write(tmp_path, "x: !!python/object/apply:os.system ['true']\n"), "malformed YAML")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_document(tmp_path: Path, text: str) -> None:
    file_error(write(tmp_path, text), "empty", "{}")


def test_empty_mapping_gives_defaults(tmp_path: Path) -> None:
    assert load_file(write(tmp_path, "{}\n")).kafka_endpoints == ("localhost:9092",)


def test_top_level_list(tmp_path: Path) -> None:
    file_error(write(tmp_path, "- kafkaEndpoints\n"), "expected a mapping", "got list")


def test_wrong_type_in_file_names_key_and_path(tmp_path: Path) -> None:
    message = file_error(write(tmp_path, 'kafkaEndpoints: "b1:9092"\n'), "expected a list")
    assert "key 'kafkaEndpoints'" in message


def test_yaml_yes_is_boolean_but_quoted_yes_is_not(tmp_path: Path) -> None:
    assert load_file(write(tmp_path, "enableKafka: no\n")).enable_kafka is False
    file_error(write(tmp_path, 'enableKafka: "yes"\n'), "expected a boolean")


def test_runtime_vars_in_file(tmp_path: Path) -> None:
    settings = load_file(write(tmp_path, "runtimeVars:\n  kafka_enabled: true\n  n: 2\n"))
    assert dict(settings.runtime_vars) == {"kafka_enabled": "true", "n": "2"}
    assert settings.get("runtimeVars") == {"kafka_enabled": True, "n": 2}


def test_parse_yaml_multiple_documents() -> None:
    with pytest.raises(SettingsError, match="src: malformed YAML at line 2"):
        parse_yaml("a: 1\n---\nb: 2\n", source="src")


# --- source dispatch ---------------------------------------------------------------------


def test_load_dispatches_file_paths(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    assert load(str(path)).kafka_endpoints == ("b1:9092",)
    assert load(f"file://{path}").kafka_endpoints == ("b1:9092",)


@pytest.mark.parametrize(
    ("source", "address", "key"),
    [
        ("consul://127.0.0.1:18500", "127.0.0.1:18500", DEFAULT_SETTINGS_KEY),
        ("consul://127.0.0.1:18500/", "127.0.0.1:18500", DEFAULT_SETTINGS_KEY),
        ("consul://c:1/my/settings", "c:1", "my/settings"),
    ],
)
def test_load_dispatches_consul(
    monkeypatch: pytest.MonkeyPatch, source: str, address: str, key: str
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    sentinel = Settings(source="sentinel")

    document = settings_sources.Document("{}", "consul://x/y")

    def fake_read_consul(access: ConsulAccess, **kwargs: Any) -> settings_sources.Document:
        calls.append((access.hostport, kwargs))
        assert access.token == "t" and access.token_origin == "--consul-token"
        assert not access.tls and access.ca_file is None
        return document

    def fake_settings_from(got: settings_sources.Document, *, declared_keys: Any) -> Settings:
        assert got is document and declared_keys == ()
        return sentinel

    monkeypatch.setattr(settings_sources, "read_consul", fake_read_consul)
    monkeypatch.setattr(settings_sources, "settings_from", fake_settings_from)
    assert load(source, timeout_s=2.0, token="t") is sentinel
    assert calls == [(address, {"settings_key": key, "timeout_s": 2.0,
                                "vars_prefix": DEFAULT_VARS_PREFIX})]


@pytest.mark.parametrize(
    ("source", "fragment"),
    [("", "no settings source"), ("  ", "no settings source"), ("http://c:1", "'http'")],
)
def test_load_refuses_other_sources(source: str, fragment: str) -> None:
    with pytest.raises(SettingsError, match=fragment):
        load(source)


@pytest.mark.parametrize("address", ["c:notaport", "c:99999", "ftp://c:1", "c:1/path", ":1"])
def test_bad_consul_address(address: str) -> None:
    with pytest.raises(SettingsError, match="bad Consul address"):
        load_consul(address)


# --- Consul, against a fake py-consul client ---------------------------------------------


class FakeKV:
    """The subset of ``consul.Consul().kv`` used, with py-consul's return shapes."""

    def __init__(self, store: dict[str, bytes | None], fail: Exception | None) -> None:
        self.store = store
        self.fail = fail
        self.tokens: list[str | None] = []

    def _item(self, key: str) -> dict[str, Any]:
        return {"Key": key, "Value": self.store[key] or None}

    def get(self, key: str, *, recurse: bool = False, token: str | None = None) -> Any:
        self.tokens.append(token)
        if self.fail is not None:
            raise self.fail
        if recurse:
            items = [self._item(k) for k in sorted(self.store) if k.startswith(key)]
            return "1", items or None
        return "1", self._item(key) if key in self.store else None

    def put(self, key: str, value: str, *, token: str | None = None) -> bool:
        self.tokens.append(token)
        if self.fail is not None:
            raise self.fail
        self.store[key] = value.encode()
        return True


class FakeConsulFactory:
    def __init__(self) -> None:
        self.store: dict[str, bytes | None] = {}
        self.fail: Exception | None = None
        self.kwargs: list[dict[str, Any]] = []
        self.kv = FakeKV(self.store, None)

    def __call__(self, **kwargs: Any) -> Any:
        self.kwargs.append(kwargs)
        self.kv.fail = self.fail
        client = type("FakeConsul", (), {})()
        client.kv = self.kv
        client.http = FakeHTTP(self.kv)
        client.prepare_headers = lambda token: {"X-Consul-Token": token} if token else {}
        return client


class FakeHTTP:
    """``PUT /v1/txn`` of a fake agent: every KV set of the payload, or none."""

    def __init__(self, kv: FakeKV) -> None:
        self.kv = kv

    def put(self, callback: Any, path: str, *, data: str, headers: dict[str, str]) -> Any:
        assert path == "/v1/txn"
        self.kv.tokens.append(headers.get("X-Consul-Token"))
        if self.kv.fail is not None:
            raise self.kv.fail
        for op in json.loads(data):
            self.kv.store[op["KV"]["Key"]] = base64.b64decode(op["KV"]["Value"])
        return True


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeConsulFactory:
    factory = FakeConsulFactory()
    monkeypatch.setattr(consul, "Consul", factory)
    return factory


def consul_error(address: str = "c:8500", **kwargs: Any) -> SettingsError:
    with pytest.raises(SettingsError) as info:
        load_consul(address, **kwargs)
    return info.value


def test_load_consul_reads_settings_and_vars(fake: FakeConsulFactory) -> None:
    fake.store.update(
        {
            DEFAULT_SETTINGS_KEY: b"kafkaEndpoints: [b:1]\nruntimeVars: {a: doc, b: doc}\n",
            DEFAULT_VARS_PREFIX: None,  # folder marker
            f"{DEFAULT_VARS_PREFIX}a": b"consul",
            f"{DEFAULT_VARS_PREFIX}empty": None,
            f"{DEFAULT_VARS_PREFIX}sub/x": "\u00e9".encode(),
        }
    )
    settings = load_consul("https://c:8501", timeout_s=1.5, token="tok")
    assert settings.source == f"consuls://c:8501/{DEFAULT_SETTINGS_KEY}"
    assert settings.kafka_endpoints == ("b:1",)
    assert dict(settings.runtime_vars) == {
        "a": "consul",
        "b": "doc",
        "empty": "",
        "sub/x": "\u00e9",
    }
    assert fake.kwargs == [
        {"host": "c", "port": 8501, "scheme": "https", "token": "tok", "verify": True,
         "cert": None, "connections_timeout": 1.5}
    ]
    assert set(fake.kv.tokens) == {"tok"}


def test_load_consul_default_port_and_custom_keys(fake: FakeConsulFactory) -> None:
    fake.store.update({"t/settings": b"{}", "t/vars/x": b"1", "t/varsX": b"no"})
    settings = load_consul("c", settings_key="/t/settings", vars_prefix="t/vars")
    assert settings.source == "consul://c:8500/t/settings"
    assert dict(settings.runtime_vars) == {"x": "1"}
    assert fake.kwargs[0]["port"] == 8500


def test_missing_settings_key(fake: FakeConsulFactory) -> None:
    error = consul_error()
    assert error.key == DEFAULT_SETTINGS_KEY
    assert error.source == f"consul://c:8500/{DEFAULT_SETTINGS_KEY}"
    assert "not found in Consul at c:8500" in str(error)


def test_malformed_yaml_in_consul(fake: FakeConsulFactory) -> None:
    fake.store[DEFAULT_SETTINGS_KEY] = b"a: 1\nb: [\n"
    error = consul_error()
    assert str(error).startswith(
        f"consul://c:8500/{DEFAULT_SETTINGS_KEY}: malformed YAML at line 3"
    )


def test_wrong_type_in_consul_names_consul_source(fake: FakeConsulFactory) -> None:
    fake.store[DEFAULT_SETTINGS_KEY] = b"integrationPlugins: kafka\n"
    error = consul_error()
    assert error.source == f"consul://c:8500/{DEFAULT_SETTINGS_KEY}"
    assert error.key == "integrationPlugins"


def test_non_utf8_settings_in_consul(fake: FakeConsulFactory) -> None:
    fake.store[DEFAULT_SETTINGS_KEY] = b"a: \xff\n"
    assert "settings document is not UTF-8" in str(consul_error())


def test_non_utf8_runtime_var_names_its_key(fake: FakeConsulFactory) -> None:
    fake.store.update({DEFAULT_SETTINGS_KEY: b"{}", f"{DEFAULT_VARS_PREFIX}bad": b"\xff"})
    error = consul_error()
    assert error.source == f"consul://c:8500/{DEFAULT_VARS_PREFIX}bad"
    assert "runtime variable is not UTF-8" in str(error)


def test_connection_error_is_cannot_reach(fake: FakeConsulFactory) -> None:
    refused = ConnectionRefusedError(111, "Connection refused")
    fail = requests.ConnectionError("pool says no")
    fail.__context__ = refused
    fake.fail = fail
    assert "cannot reach Consul at c:8500: Connection refused" in str(consul_error())


def test_timeout_is_cannot_reach(fake: FakeConsulFactory) -> None:
    fake.fail = requests.ReadTimeout("slow")
    assert "cannot reach Consul at c:8500: timed out" in str(consul_error())


def test_acl_denied_is_a_settings_error(fake: FakeConsulFactory) -> None:
    fake.fail = consul.ACLPermissionDenied("Permission denied")
    message = str(consul_error())
    assert "denied permission to read (ACL): no token was given (anonymous)" in message
    assert "needs key:read on 'o2/components/aliecs/ANY/any/settings'" in message
    assert ("--consul-token TOKEN, ?token-file=PATH on the consul:// URL or $CONSUL_HTTP_TOKEN"
            in message)


def test_push_writes_vars_and_settings_in_one_transaction(
    fake: FakeConsulFactory, tmp_path: Path
) -> None:
    text = "# demo\nkafkaEndpoints: [b:1]\nruntimeVars: {kafka_enabled: true, a: x}\n"
    path = write(tmp_path, text)
    written = push_to_consul("c:1", path, runtime_vars={"a": "arg"}, vars_prefix="v")
    assert fake.store == {
        "v/kafka_enabled": b"true",
        "v/a": b"arg",
        DEFAULT_SETTINGS_KEY: text.encode(),
    }
    assert written == {k: (v or b"").decode() for k, v in fake.store.items()}


@pytest.mark.parametrize("name", ["../../../../evil", "a/b", "..", "x y"])
def test_push_refuses_unsafe_variable_names(
    fake: FakeConsulFactory, tmp_path: Path, name: str
) -> None:
    with pytest.raises(SettingsError, match="variable name"):
        push_to_consul("c:1", write(tmp_path, "{}\n"), runtime_vars={name: "PWNED"})
    with pytest.raises(SettingsError, match="variable name"):
        push_to_consul("c:1", write(tmp_path, f"runtimeVars: {{'{name}': PWNED}}\n"))
    assert fake.store == {} and fake.kwargs == []


@pytest.mark.parametrize(
    ("text", "runtime_vars"),
    [("enableKafka: maybe\n", None), ("a: [\n", None), ("{}\n", {"": "x"})],
)
def test_push_validates_before_writing(
    fake: FakeConsulFactory, tmp_path: Path, text: str, runtime_vars: dict[str, str] | None
) -> None:
    with pytest.raises(SettingsError):
        push_to_consul("c:1", write(tmp_path, text), runtime_vars=runtime_vars)
    assert fake.store == {}
    assert fake.kwargs == []


def test_push_missing_file_writes_nothing(fake: FakeConsulFactory, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not found"):
        push_to_consul("c:1", tmp_path / "absent.yaml")
    assert fake.kwargs == []


def test_push_unreachable(fake: FakeConsulFactory, tmp_path: Path) -> None:
    fake.fail = requests.ConnectionError("down")
    with pytest.raises(SettingsError, match="cannot reach Consul at c:1: down"):
        push_to_consul("c:1", write(tmp_path, "{}\n"))


# --------------------------------------------------------------------------- TLS failures

def ssl_failure(
    reason: str, *, wrapper: type[requests.RequestException] = requests.exceptions.SSLError,
) -> requests.RequestException:
    """A requests failure caused by an SSL error with OpenSSL's ``reason`` (as urllib3 raises
    it, the ssl error inside); ``EOF``: the server closed the connection without an alert."""
    if reason == "EOF":
        return wrapper(ssl.SSLEOFError(8, "EOF occurred in violation of protocol (_ssl.c:2427)"))
    error = ssl.SSLError(1, f"[SSL: {reason}] {reason.replace('_', ' ').lower()}")
    error.reason = reason
    return wrapper(error)


@pytest.fixture
def no_consul_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Consul's TLS environment variables unset (a developer's shell may set them)."""
    for name in ("CONSUL_CACERT", "CONSUL_CLIENT_CERT", "CONSUL_CLIENT_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def client_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl CLI")
    directory = tmp_path_factory.mktemp("client")
    return make_cert(directory, "client", make_ca(directory, "ca"), server=False)


def test_the_client_certificate_is_handed_to_py_consul(
    fake: FakeConsulFactory, client_pair: tuple[Path, Path]
) -> None:
    fake.store[DEFAULT_SETTINGS_KEY] = b"{}"
    load_consul("consuls://c:1", client_cert=client_pair[0], client_key=client_pair[1])
    load(f"consul://c:1?client-cert={client_pair[0]}&client-key={client_pair[1]}")
    pair = (str(client_pair[0]), str(client_pair[1]))
    assert [(k["scheme"], k["cert"]) for k in fake.kwargs] == [("https", pair)] * 2


@pytest.mark.usefixtures("no_consul_env")
@pytest.mark.parametrize("wrapper", [requests.exceptions.SSLError, requests.ConnectionError])
def test_no_client_certificate_sent_to_an_agent_that_requires_one(
    fake: FakeConsulFactory, wrapper: type[requests.RequestException]
) -> None:
    fake.fail = ssl_failure("TLSV13_ALERT_CERTIFICATE_REQUIRED", wrapper=wrapper)
    error = consul_error("consuls://c:1")
    assert str(error) == (
        f"consuls://c:1/{DEFAULT_SETTINGS_KEY}: Consul at c:1 refused the TLS connection "
        "(tlsv13 alert certificate required): it requires a client certificate "
        "(verify_incoming) and none was sent; pass one with --consul-client-cert PATH and "
        "--consul-client-key PATH, ?client-cert=PATH&client-key=PATH on the consuls:// URL or "
        "$CONSUL_CLIENT_CERT and $CONSUL_CLIENT_KEY")


@pytest.mark.usefixtures("no_consul_env")
def test_an_agent_closing_the_connection_without_an_alert(fake: FakeConsulFactory) -> None:
    """The request was written after the agent's alert: only the closed connection is seen."""
    fake.fail = ssl_failure("EOF")
    error = consul_error("consuls://c:1")
    assert ("Consul at c:1 closed the TLS connection (EOF occurred in violation of protocol): "
            "it probably requires a client certificate (verify_incoming) and none was sent; "
            "pass one with --consul-client-cert PATH") in str(error)


@pytest.mark.parametrize(("reason", "said"), [
    ("TLSV1_ALERT_UNKNOWN_CA", "refused the TLS connection (tlsv1 alert unknown ca): it did"),
    ("EOF", "closed the TLS connection (EOF occurred in violation of protocol): it probably "
            "did"),
])
def test_a_client_certificate_the_agent_refuses(
    fake: FakeConsulFactory, client_pair: tuple[Path, Path], reason: str, said: str,
) -> None:
    fake.fail = ssl_failure(reason)
    error = consul_error("consuls://c:1", client_cert=client_pair[0], client_key=client_pair[1])
    assert (f"Consul at c:1 {said} not accept the client certificate {client_pair[0]} (given "
            "by --consul-client-cert); is it signed by a CA the agent trusts") in str(error)
    assert "Pass the right one with --consul-client-cert PATH and --consul-client-key PATH" in (
        str(error))


@pytest.mark.usefixtures("no_consul_env")
def test_a_server_certificate_that_does_not_verify_is_not_blamed_on_the_client(
    fake: FakeConsulFactory, client_pair: tuple[Path, Path]
) -> None:
    fake.fail = ssl_failure("CERTIFICATE_VERIFY_FAILED")
    error = consul_error("consuls://c:1", client_cert=client_pair[0], client_key=client_pair[1])
    assert "TLS to Consul at c:1 failed: certificate verify failed" in str(error)
    assert "server certificate checked against the system's CA bundle" in str(error)
