"""``settings/consul_access.py``: address forms, token and CA precedence, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from aliecs_integration.errors import SettingsError
from aliecs_integration.settings.consul_access import parse

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    token = tmp_path / "token"
    token.write_text("  from-file \n")
    ca = tmp_path / "ca.pem"
    ca.write_text(PEM)
    return {"token": token, "ca": ca}


@pytest.mark.parametrize(("address", "tls", "hostport", "key"), [
    ("c", False, "c:8500", ""),
    ("c:1", False, "c:1", ""),
    ("consul://c:1/a/b", False, "c:1", "a/b"),
    ("http://c:1", False, "c:1", ""),
    ("consuls://c:1/k", True, "c:1", "k"),
    ("https://c", True, "c:8500", ""),
    ("CONSULS://c:2", True, "c:2", ""),
])
def test_address_forms(address: str, tls: bool, hostport: str, key: str) -> None:
    access, path = parse(address, environ={})
    assert (access.tls, access.hostport, path) == (tls, hostport, key)
    assert access.url("x") == f"{'consuls' if tls else 'consul'}://{hostport}/x"
    assert access.token is None and access.token_origin == "" and access.ca_file is None


def test_token_precedence_option_then_url_then_environment(files: dict[str, Path]) -> None:
    env = {"CONSUL_HTTP_TOKEN": "from-env"}
    url = f"consul://c:1/k?token-file={files['token']}"
    by_option, _ = parse(url, token="from-option", environ=env)
    assert (by_option.token, by_option.token_origin) == ("from-option", "--consul-token")
    by_url, _ = parse(url, environ=env)
    assert (by_url.token, by_url.token_origin) == ("from-file", f"token-file {files['token']}")
    by_env, _ = parse("consul://c:1/k", environ=env)
    assert (by_env.token, by_env.token_origin) == ("from-env", "$CONSUL_HTTP_TOKEN")
    anonymous, _ = parse("consul://c:1/k", environ={"CONSUL_HTTP_TOKEN": ""})
    assert anonymous.token is None and anonymous.who == "no token was given (anonymous)"


def test_the_token_is_not_in_repr_or_urls(files: dict[str, Path]) -> None:
    access, _ = parse(f"consul://c:1/k?token-file={files['token']}", environ={})
    assert "from-file" not in repr(access) and "from-file" not in access.url("k")
    assert access.who == f"the token given (token-file {files['token']})"


def test_ca_precedence_and_https(files: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    other.write_text(PEM)
    by_url, _ = parse(f"consul://c:1?ca-file={files['ca']}", environ={})
    assert by_url.tls and by_url.ca_file == str(files["ca"])
    by_option, _ = parse(f"consuls://c:1?ca-file={files['ca']}", ca_file=other, environ={})
    assert by_option.ca_file == str(other)


@pytest.mark.parametrize(("address", "fragment"), [
    ("consul://c:1/k?token=s3cr3t-value", "a token in the URL would be shown"),
    ("consul://c:1/k?tokenfile=/x", "unknown parameter 'tokenfile'"),
    ("consul://c:1/k?token-file=/a&token-file=/b", "token-file given twice"),
    ("consul://c:1/k?token-file=", "token-file is empty"),
    ("consul://c:1/k?x", "malformed query"),
    ("ftp://c:1", "unknown scheme 'ftp'"),
    ("consul://:1", "no host"),
    ("c:99999", "port in 0..65535"),
])
def test_bad_addresses(address: str, fragment: str) -> None:
    with pytest.raises(SettingsError, match="bad Consul address") as info:
        parse(address, environ={})
    assert fragment in str(info.value)
    assert "s3cr3t-value" not in str(info.value)


def test_http_with_a_ca_is_refused(files: dict[str, Path]) -> None:
    with pytest.raises(SettingsError, match=r"is for HTTPS; write https:// or consuls://"):
        parse("http://c:1", ca_file=files["ca"], environ={})


@pytest.mark.parametrize(("content", "fragment"), [
    (None, "cannot read the Consul token file {path}: No such file or directory"),
    ("", "Consul token file {path} is empty"),
    ("a b", "Consul token file {path} holds more than one word"),
    (b"\xff\xfe", "Consul token file {path} is not UTF-8 text"),
    ("x" * 5000, "Consul token file {path} is larger than 4096 bytes"),
])
def test_bad_token_files(tmp_path: Path, content: str | bytes | None, fragment: str) -> None:
    path = tmp_path / "t"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(SettingsError) as info:
        parse(f"consul://c:1?token-file={path}", environ={})
    assert fragment.format(path=path) in str(info.value)
    assert info.value.source == f"token-file {path}"


@pytest.mark.parametrize(("content", "fragment"), [
    (None, "cannot read the Consul CA bundle {path}"),
    ("junk", "Consul CA bundle {path} holds no PEM certificate"),
])
def test_bad_ca_files(tmp_path: Path, content: str | None, fragment: str) -> None:
    path = tmp_path / "ca"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SettingsError) as info:
        parse("consuls://c:1", ca_file=path, environ={})
    assert fragment.format(path=path) in str(info.value)


@pytest.mark.parametrize("option", ["token-file", "ca-file"])
def test_a_fifo_in_place_of_a_file_is_refused_at_once(tmp_path: Path, option: str) -> None:
    """Opening a FIFO for reading would wait for a writer: it is refused without waiting."""
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(SettingsError, match=f"{fifo} is not a regular file"):
        parse(f"consul://c:1/k?{option}={fifo}")
