"""How to reach Consul: address, scheme (HTTP or HTTPS), CA bundle, client certificate and
ACL token.

A Consul address is ``[scheme://]host[:port][/key][?token-file=PATH&ca-file=PATH&
client-cert=PATH&client-key=PATH]`` with scheme ``consul`` or ``http`` (plain HTTP) or
``consuls`` or ``https`` (HTTPS, the server's certificate verified). The token is taken, first
found wins, from: the explicit ``token`` (``--consul-token``), the URL's ``token-file`` (the
file's text, surrounding whitespace stripped), ``$CONSUL_HTTP_TOKEN``; else requests are
anonymous. The CA bundle comes from the explicit ``ca_file`` (``--consul-ca``), else the URL's
``ca-file``, else ``$CONSUL_CACERT``, else the system's bundle. The client certificate and its
key (mutual TLS, for an agent with ``verify_incoming``) come as a pair from the explicit
``client_cert``/``client_key`` (``--consul-client-cert``/``--consul-client-key``), else the
URL's ``client-cert``/``client-key``, else ``$CONSUL_CLIENT_CERT``/``$CONSUL_CLIENT_KEY``;
else none is sent. A CA bundle or client certificate given explicitly or in the URL implies
HTTPS (``http://`` with one is refused); the environment variables only apply to HTTPS, as
with Consul's own CLI. A token is never part of a ``repr``, an error or a shown URL; a token
written into the URL itself (``?token=``) is refused, since URLs are shown.
"""

from __future__ import annotations

import os
import ssl
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple
from urllib.parse import SplitResult, parse_qsl, urlsplit

import attrs

from aliecs_integration.errors import SettingsError
from aliecs_integration.settings.secrets import masked_text, redact_url

DEFAULT_CONSUL_PORT = 8500
TOKEN_ENV = "CONSUL_HTTP_TOKEN"
"""The environment variable holding a Consul ACL token (Consul's own convention)."""
TOKEN_HINT = (
    f"pass a token with --consul-token TOKEN, ?token-file=PATH on the consul:// URL or "
    f"${TOKEN_ENV}"
)
MAX_TOKEN_FILE_BYTES = 4096
"""A token file larger than this is refused (a token is a UUID, 36 characters)."""
MAX_CA_FILE_BYTES = 1 << 20
"""A CA bundle, client certificate or client key file larger than this is refused."""
CA_ENV = "CONSUL_CACERT"
"""The environment variable naming the CA bundle (Consul's own convention; HTTPS only)."""
CLIENT_CERT_ENV = "CONSUL_CLIENT_CERT"
CLIENT_KEY_ENV = "CONSUL_CLIENT_KEY"
"""The environment variables naming the client certificate and its key (Consul's own
convention; HTTPS only)."""
CLIENT_CERT_HINT = (
    "pass one with --consul-client-cert PATH and --consul-client-key PATH, "
    "?client-cert=PATH&client-key=PATH on the consuls:// URL or "
    f"${CLIENT_CERT_ENV} and ${CLIENT_KEY_ENV}"
)

_PLAIN_SCHEMES = ("consul", "http")
_TLS_SCHEMES = ("consuls", "https")
_QUERY_KEYS = ("token-file", "ca-file", "client-cert", "client-key")
_EXPECTED = "[consul://|consuls://|http://|https://]host[:port]"


def shown(text: str) -> str:
    """``text`` as it may be printed: URL password and secret ``name=value`` pairs masked."""
    return masked_text(redact_url(text))


def _split(url: str, *, what: str) -> SplitResult:
    try:
        return urlsplit(url)
    except ValueError as exc:
        raise SettingsError(f"bad Consul address {what!r}: {exc}; expected {_EXPECTED}",
                            source=what) from None


def _read_head(path: str, limit: int, *, what: str, where: str) -> bytes:
    """At most ``limit`` bytes of the regular file ``path``; ``SettingsError`` naming ``what``
    and the path when it cannot be read or is not a regular file."""
    try:
        # O_NONBLOCK: a FIFO in its place is refused instead of waiting for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SettingsError(f"{what} {path} is not a regular file", source=where)
            return handle.read(limit)
    except OSError as exc:
        raise SettingsError(f"cannot read the {what} {path}: {exc.strerror or exc}",
                            source=where) from None


def read_token_file(path: str) -> str:
    """The token in the file at ``path`` (whitespace around it stripped).

    Raises ``SettingsError`` naming the path when it cannot be read, is not a regular file, is
    larger than :data:`MAX_TOKEN_FILE_BYTES`, is not UTF-8 or holds no token.
    """
    where = f"token-file {path}"
    data = _read_head(path, MAX_TOKEN_FILE_BYTES + 1, what="Consul token file", where=where)
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise SettingsError(f"Consul token file {path} is larger than {MAX_TOKEN_FILE_BYTES} "
                            "bytes; expected one ACL token", source=where)
    try:
        token = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SettingsError(f"Consul token file {path} is not UTF-8 text; expected one ACL "
                            "token", source=where) from None
    if not token:
        raise SettingsError(f"Consul token file {path} is empty; expected one ACL token",
                            source=where)
    if any(c.isspace() or not c.isprintable() for c in token):
        raise SettingsError(f"Consul token file {path} holds more than one word; expected "
                            "one ACL token", source=where)
    return token


def check_ca_file(path: str, *, origin: str = "") -> str:
    """``path`` when it is a readable file holding at least one PEM certificate; ``origin``
    says where it was given (e.g. ``--consul-ca``).

    Raises ``SettingsError`` naming the path (and the origin) otherwise.
    """
    _check_pem_file(path, origin, "CA bundle", "certificate (-----BEGIN CERTIFICATE-----)",
                    b"-----BEGIN CERTIFICATE-----")
    return path


def _check_pem_file(path: str, origin: str, what: str, pem: str, marker: bytes) -> None:
    """Nothing when ``path`` is a readable file of at most ``MAX_CA_FILE_BYTES`` holding a PEM
    block with ``marker`` (``pem`` names it in the error); raises ``SettingsError`` naming the
    Consul ``what``, the path and ``origin`` (where it was given, when known) otherwise."""
    where = f"{what} {path}"
    given = f"; given by {origin}" if origin else ""
    try:
        data = _read_head(path, MAX_CA_FILE_BYTES + 1, what=f"Consul {what}", where=where)
    except SettingsError as exc:
        raise SettingsError(f"{_message(exc)}{given}", source=where) from None
    if len(data) > MAX_CA_FILE_BYTES:
        raise SettingsError(f"Consul {what} {path} is larger than {MAX_CA_FILE_BYTES} "
                            f"bytes{given}", source=where)
    if marker not in data or b"-----BEGIN " not in data:
        raise SettingsError(f"Consul {what} {path} holds no PEM {pem}{given}", source=where)


def _message(exc: SettingsError) -> str:
    """``exc``'s message without its ``source: `` prefix."""
    text = str(exc)
    prefix = f"{exc.source}: " if exc.source else ""
    return text[len(prefix):] if text.startswith(prefix) else text


class _Encrypted(Exception):
    """The client key asked for a passphrase (never prompted for)."""


def _no_passphrase() -> bytes:
    raise _Encrypted


def check_client_pair(cert: str, key: str, *, cert_from: str, key_from: str) -> None:
    """Nothing when ``cert`` is a readable PEM certificate file and ``key`` a readable,
    unencrypted PEM private key file that belongs to it; ``cert_from``/``key_from`` say where
    each path was given (e.g. ``--consul-client-cert``).

    Raises ``SettingsError`` naming that origin and the path otherwise.
    """
    _check_pem_file(cert, cert_from, "client certificate",
                    "certificate (-----BEGIN CERTIFICATE-----)", b"-----BEGIN CERTIFICATE-----")
    _check_pem_file(key, key_from, "client key",
                    "private key (-----BEGIN ... PRIVATE KEY-----)", b"PRIVATE KEY-----")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(cert, key,
                                                                password=_no_passphrase)
    except _Encrypted:
        raise SettingsError(f"Consul client key {key} is encrypted: expected an unencrypted "
                            f"PEM private key (no passphrase can be given); given by {key_from}",
                            source=f"client key {key}") from None
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
        raise SettingsError(
            f"Consul client certificate {cert} and key {key} cannot be used together: "
            f"{str(reason).replace('_', ' ').lower()}; given by {cert_from} and {key_from}",
            source=f"client certificate {cert}",
        ) from None


@attrs.frozen
class ConsulAccess:
    """One Consul agent and how to talk to it. ``token`` is kept out of ``repr``;
    ``token_origin`` says where it came from (``--consul-token``, ``token-file PATH``,
    ``$CONSUL_HTTP_TOKEN``) or is ``""`` when requests are anonymous; ``token_file`` is the
    file the token was read from, if it was (see :meth:`refreshed`). ``ca_origin`` and
    ``client_origin`` say where ``ca_file`` and the ``client_cert``/``client_key`` pair were
    given (``""`` when not given)."""

    host: str
    port: int
    tls: bool = False
    ca_file: str | None = None
    token: str | None = attrs.field(default=None, repr=False)
    token_origin: str = ""
    token_file: str | None = None
    ca_origin: str = ""
    client_cert: str | None = None
    client_key: str | None = None
    client_origin: str = ""

    def refreshed(self) -> ConsulAccess:
        """This access with its token read again from its token file, so a token rotated in
        the file applies; itself when the token did not come from a file. Raises
        ``SettingsError`` as :func:`read_token_file` does."""
        if self.token_file is None:
            return self
        return attrs.evolve(self, token=read_token_file(self.token_file))

    @property
    def hostport(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def scheme(self) -> str:
        """``https`` or ``http``: the HTTP client's scheme."""
        return "https" if self.tls else "http"

    def url(self, key: str) -> str:
        """``consul[s]://host:port/key``: how a key is shown (never with a token)."""
        return f"{'consuls' if self.tls else 'consul'}://{self.hostport}/{key.strip('/')}"

    @property
    def client_pair(self) -> tuple[str, str] | None:
        """``(certificate, key)`` paths sent to the agent, or None."""
        if self.client_cert and self.client_key:
            return self.client_cert, self.client_key
        return None

    @property
    def who(self) -> str:
        """Whose request it was, for errors: the token's origin (never the token)."""
        if self.token:
            return f"the token given ({self.token_origin})"
        return "no token was given (anonymous)"


def parse(
    address: str, *, token: str | None = None, ca_file: str | Path | None = None,
    client_cert: str | Path | None = None, client_key: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[ConsulAccess, str]:
    """``address`` (see the module docstring) → its :class:`ConsulAccess` and the key path
    (``""`` when none).

    Raises ``SettingsError`` for a malformed address, an unknown scheme or query parameter, a
    token in the URL, ``http://`` with a CA bundle or client certificate, a client certificate
    without its key (or a key without its certificate), or a token file, CA bundle, client
    certificate or key that cannot be used (naming where it was given and its path).
    """
    env = os.environ if environ is None else environ
    text = address.strip()
    what = shown(address)
    if "://" not in text:
        text = f"consul://{text}"
    parts = _split(text, what=what)
    scheme = parts.scheme.lower()
    if scheme not in _PLAIN_SCHEMES + _TLS_SCHEMES:
        raise SettingsError(f"bad Consul address {what!r}: unknown scheme {parts.scheme!r}; "
                            f"expected {_EXPECTED}", source=what)
    try:
        port = parts.port or DEFAULT_CONSUL_PORT
    except ValueError as exc:
        raise SettingsError(f"bad Consul address {what!r}: expected host:port with a port in "
                            "0..65535", source=what) from exc
    if not parts.hostname:
        raise SettingsError(f"bad Consul address {what!r}: no host; expected {_EXPECTED}",
                            source=what)
    query = _query(parts.query, what=what)
    url_token = None
    origin = ""
    token_file = None
    if token:
        origin = "--consul-token"
    elif "token-file" in query:
        token_file = query["token-file"]
        url_token = read_token_file(token_file)
        origin = f"token-file {token_file}"
    elif env.get(TOKEN_ENV):
        origin = f"${TOKEN_ENV}"
    chosen = token or url_token or env.get(TOKEN_ENV) or None
    ca, ca_origin = _first(("--consul-ca", str(ca_file) if ca_file else None),
                           ("the URL's ca-file", query.get("ca-file")))
    pair = _client_pair(what, (("--consul-client-cert", "--consul-client-key"),
                               (client_cert, client_key)),
                        (("the URL's client-cert", "the URL's client-key"),
                         (query.get("client-cert"), query.get("client-key"))))
    if scheme == "http" and ca:
        raise SettingsError(f"bad Consul address {what!r}: a CA bundle ({ca}) is for HTTPS; "
                            "write https:// or consuls://", source=what)
    if scheme == "http" and pair is not None:
        raise SettingsError(f"bad Consul address {what!r}: a client certificate ({pair.cert}, "
                            f"given by {pair.cert_from}) is for HTTPS; write https:// or "
                            "consuls://", source=what)
    tls = scheme in _TLS_SCHEMES or bool(ca) or pair is not None
    if tls and not ca:  # the environment applies to HTTPS only, as with Consul's CLI
        ca, ca_origin = _first((f"${CA_ENV}", env.get(CA_ENV)))
    if tls and pair is None:
        pair = _client_pair(what, ((f"${CLIENT_CERT_ENV}", f"${CLIENT_KEY_ENV}"),
                                   (env.get(CLIENT_CERT_ENV), env.get(CLIENT_KEY_ENV))))
    if ca:
        check_ca_file(ca, origin=ca_origin)
    if pair is not None:
        check_client_pair(pair.cert, pair.key, cert_from=pair.cert_from, key_from=pair.key_from)
    access = ConsulAccess(
        host=parts.hostname, port=port, tls=tls, ca_file=ca, token=chosen,
        token_origin=origin if chosen else "", token_file=token_file,
        ca_origin=ca_origin if ca else "",
        client_cert=pair.cert if pair else None, client_key=pair.key if pair else None,
        client_origin=pair.cert_from if pair else "",
    )
    return access, parts.path.strip("/")


def _first(*candidates: tuple[str, str | None]) -> tuple[str | None, str]:
    """The first ``(origin, value)`` with a non-empty value, as ``(value, origin)``."""
    for origin, value in candidates:
        if value:
            return value, origin
    return None, ""


class _ClientPair(NamedTuple):
    """A client certificate and its key, each with where it was given."""

    cert_from: str
    key_from: str
    cert: str
    key: str


_Level = tuple[tuple[str, str], tuple[str | Path | None, str | Path | None]]


def _client_pair(what: str, *levels: _Level) -> _ClientPair | None:
    """The pair of the first level (``((cert origin, key origin), (cert, key))``) that gives
    a client certificate or key; None when none does. Raises ``SettingsError`` when that
    level gives only one of the two."""
    for (cert_from, key_from), (cert, key) in levels:
        if not cert and not key:
            continue
        if not cert or not key:
            given, missing = (cert_from, key_from) if cert else (key_from, cert_from)
            raise SettingsError(
                f"{given} ({cert or key}) is given without {missing}: a client certificate "
                "and its private key go together", source=what)
        return _ClientPair(cert_from, key_from, str(cert), str(key))
    return None


def _query(query: str, *, what: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise SettingsError(f"bad Consul address {what!r}: malformed query; expected "
                            "?token-file=PATH&ca-file=PATH&client-cert=PATH&client-key=PATH",
                            source=what) from None
    result: dict[str, str] = {}
    for name, value in pairs:
        if name == "token":
            raise SettingsError(
                f"bad Consul address {what!r}: a token in the URL would be shown wherever the "
                "source is; write it to a file and use ?token-file=PATH (or --consul-token, "
                f"${TOKEN_ENV})", source=what)
        if name not in _QUERY_KEYS:
            raise SettingsError(f"bad Consul address {what!r}: unknown parameter {name!r}; "
                                f"expected {', '.join(_QUERY_KEYS)}", source=what)
        if name in result:
            raise SettingsError(f"bad Consul address {what!r}: {name} given twice", source=what)
        if not value:
            raise SettingsError(f"bad Consul address {what!r}: {name} is empty; expected a "
                                "file path", source=what)
        result[name] = value
    return result
