"""``settings/consul_access.py``: address forms, token, CA and client certificate
precedence, refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aliecs_integration.errors import SettingsError
from aliecs_integration.settings.consul_access import parse
from tests.tls_helpers import NEEDS_OPENSSL, make_ca, make_cert, openssl

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


# --------------------------------------------------------------------------- client certificates


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, two client certificates with their keys, an encrypted key (openssl CLI)."""
    directory = tmp_path_factory.mktemp("client-certs")
    ca = make_ca(directory, "ca")
    one = make_cert(directory, "one", ca, server=False)
    two = make_cert(directory, "two", ca, server=False)
    encrypted = directory / "encrypted.key"
    openssl("pkcs8", "-topk8", "-in", str(one[1]), "-passout", "pass:secret", "-out",
            str(encrypted), cwd=directory)
    return {"ca": ca[0], "cert": one[0], "key": one[1], "cert2": two[0], "key2": two[1],
            "encrypted": encrypted}


def env_pair(tls: dict[str, Path], n: str = "") -> dict[str, str]:
    return {"CONSUL_CLIENT_CERT": str(tls[f"cert{n}"]), "CONSUL_CLIENT_KEY": str(tls[f"key{n}"])}


@NEEDS_OPENSSL
def test_client_pair_precedence_option_then_url_then_environment(tls: dict[str, Path]) -> None:
    url = f"consuls://c:1/k?client-cert={tls['cert2']}&client-key={tls['key2']}"
    by_option, _ = parse(url, client_cert=tls["cert"], client_key=tls["key"],
                         environ=env_pair(tls, "2"))
    assert by_option.client_pair == (str(tls["cert"]), str(tls["key"]))
    assert by_option.client_origin == "--consul-client-cert"
    by_url, _ = parse(url, environ=env_pair(tls))
    assert by_url.client_pair == (str(tls["cert2"]), str(tls["key2"]))
    assert by_url.client_origin == "the URL's client-cert"
    by_env, _ = parse("consuls://c:1/k", environ=env_pair(tls))
    assert by_env.client_pair == (str(tls["cert"]), str(tls["key"]))
    assert by_env.client_origin == "$CONSUL_CLIENT_CERT"
    assert parse("consuls://c:1/k", environ={})[0].client_pair is None


@NEEDS_OPENSSL
def test_a_client_pair_given_explicitly_implies_https(tls: dict[str, Path]) -> None:
    by_url, _ = parse(f"consul://c:1?client-cert={tls['cert']}&client-key={tls['key']}",
                      environ={})
    by_option, _ = parse("c:1", client_cert=tls["cert"], client_key=tls["key"], environ={})
    assert by_url.tls and by_option.tls and by_option.scheme == "https"


@NEEDS_OPENSSL
def test_the_environment_applies_to_https_only(tls: dict[str, Path]) -> None:
    """As with Consul's own CLI: $CONSUL_CACERT and the client pair neither switch a plain
    consul:// address to HTTPS nor are they checked for it."""
    env = {**env_pair(tls), "CONSUL_CACERT": str(tls["ca"])}
    plain, _ = parse("consul://c:1/k", environ=env)
    assert not plain.tls and plain.ca_file is None and plain.client_pair is None
    broken = {"CONSUL_CACERT": "/nonexistent", "CONSUL_CLIENT_CERT": "/nonexistent"}
    assert not parse("http://c:1", environ=broken)[0].tls
    secured, _ = parse("consuls://c:1/k", environ=env)
    assert (secured.ca_file, secured.ca_origin) == (str(tls["ca"]), "$CONSUL_CACERT")


@NEEDS_OPENSSL
def test_ca_precedence_over_the_environment(files: dict[str, Path], tls: dict[str, Path]
                                            ) -> None:
    env = {"CONSUL_CACERT": str(tls["ca"])}
    by_url, _ = parse(f"consuls://c:1?ca-file={files['ca']}", environ=env)
    assert (by_url.ca_file, by_url.ca_origin) == (str(files["ca"]), "the URL's ca-file")
    by_option, _ = parse("consuls://c:1", ca_file=files["ca"], environ=env)
    assert (by_option.ca_file, by_option.ca_origin) == (str(files["ca"]), "--consul-ca")


@NEEDS_OPENSSL
@pytest.mark.parametrize(("way", "given", "missing"), [
    ("option-cert", "--consul-client-cert", "--consul-client-key"),
    ("option-key", "--consul-client-key", "--consul-client-cert"),
    ("url-cert", "the URL's client-cert", "the URL's client-key"),
    ("url-key", "the URL's client-key", "the URL's client-cert"),
    ("env-cert", "$CONSUL_CLIENT_CERT", "$CONSUL_CLIENT_KEY"),
    ("env-key", "$CONSUL_CLIENT_KEY", "$CONSUL_CLIENT_CERT"),
])
def test_a_certificate_without_its_key_and_the_reverse(tls: dict[str, Path], way: str,
                                                       given: str, missing: str) -> None:
    source, half = way.split("-")
    path = str(tls[half])
    kwargs: dict[str, Any] = {"environ": {}}
    address = "consuls://c:1/k"
    if source == "option":
        kwargs[f"client_{half}"] = path
    elif source == "url":
        address += f"?client-{half}={path}"
    else:
        kwargs["environ"] = {f"CONSUL_CLIENT_{half.upper()}": path}
    with pytest.raises(SettingsError) as info:
        parse(address, **kwargs)
    assert f"{given} ({path}) is given without {missing}" in str(info.value)


@NEEDS_OPENSSL
def test_a_lower_level_does_not_complete_a_half_pair(tls: dict[str, Path]) -> None:
    """The pair comes from one place: --consul-client-cert with only $CONSUL_CLIENT_KEY is a
    certificate without its key, not a mix of the two."""
    with pytest.raises(SettingsError, match=r"--consul-client-cert \(.*\) is given without "
                                            r"--consul-client-key"):
        parse("consuls://c:1", client_cert=tls["cert"],
              environ={"CONSUL_CLIENT_KEY": str(tls["key"])})


@NEEDS_OPENSSL
@pytest.mark.parametrize("way", ["--consul-client-cert", "the URL's client-cert"])
def test_http_with_a_client_certificate_is_refused(tls: dict[str, Path], way: str) -> None:
    """It would not be sent (as a CA bundle would not be used): refused, not ignored."""
    call: dict[str, Any] = {}
    address = "http://c:1"
    if way.startswith("--"):
        call.update(client_cert=tls["cert"], client_key=tls["key"])
    else:
        address += f"?client-cert={tls['cert']}&client-key={tls['key']}"
    with pytest.raises(SettingsError) as info:
        parse(address, environ={}, **call)
    assert (f"a client certificate ({tls['cert']}, given by {way}) is for HTTPS; write "
            "https:// or consuls://") in str(info.value)


@NEEDS_OPENSSL
@pytest.mark.parametrize(("case", "fragment"), [
    ("missing cert", "cannot read the Consul client certificate {cert}: No such file or "
                     "directory; given by {cert_from}"),
    ("missing key", "cannot read the Consul client key {key}: No such file or directory; "
                    "given by {key_from}"),
    ("key as cert", "Consul client certificate {cert} holds no PEM certificate "
                    "(-----BEGIN CERTIFICATE-----); given by {cert_from}"),
    ("cert as key", "Consul client key {key} holds no PEM private key "
                    "(-----BEGIN ... PRIVATE KEY-----); given by {key_from}"),
    ("encrypted key", "Consul client key {key} is encrypted: expected an unencrypted PEM "
                      "private key (no passphrase can be given); given by {key_from}"),
    ("mismatched", "Consul client certificate {cert} and key {key} cannot be used together: "
                   "key values mismatch; given by {cert_from} and {key_from}"),
])
@pytest.mark.parametrize("way", ["option", "url", "env"])
def test_unusable_client_files_one_error_naming_where_and_the_path(
    tls: dict[str, Path], tmp_path: Path, case: str, fragment: str, way: str,
) -> None:
    cert, key = {
        "missing cert": (tmp_path / "none.pem", tls["key"]),
        "missing key": (tls["cert"], tmp_path / "none.key"),
        "key as cert": (tls["key"], tls["key"]),
        "cert as key": (tls["cert"], tls["cert"]),
        "encrypted key": (tls["cert"], tls["encrypted"]),
        "mismatched": (tls["cert"], tls["key2"]),
    }[case]
    origins = {"option": ("--consul-client-cert", "--consul-client-key"),
               "url": ("the URL's client-cert", "the URL's client-key"),
               "env": ("$CONSUL_CLIENT_CERT", "$CONSUL_CLIENT_KEY")}[way]
    kwargs: dict[str, Any] = {"environ": {}}
    address = "consuls://c:1/k"
    if way == "option":
        kwargs.update(client_cert=cert, client_key=key)
    elif way == "url":
        address += f"?client-cert={cert}&client-key={key}"
    else:
        kwargs["environ"] = {"CONSUL_CLIENT_CERT": str(cert), "CONSUL_CLIENT_KEY": str(key)}
    with pytest.raises(SettingsError) as info:
        parse(address, **kwargs)
    assert fragment.format(cert=cert, key=key, cert_from=origins[0],
                           key_from=origins[1]) in str(info.value)
    assert "secret" not in str(info.value)


def test_a_bad_ca_from_the_environment_names_it(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("junk")
    with pytest.raises(SettingsError) as info:
        parse("consuls://c:1", environ={"CONSUL_CACERT": str(bogus)})
    assert (f"Consul CA bundle {bogus} holds no PEM certificate (-----BEGIN CERTIFICATE-----); "
            "given by $CONSUL_CACERT") in str(info.value)


def test_the_query_names_the_client_parameters() -> None:
    with pytest.raises(SettingsError) as info:
        parse("consuls://c:1?client-crt=/x", environ={})
    assert "expected token-file, ca-file, client-cert, client-key" in str(info.value)
