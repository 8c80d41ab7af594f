"""How to reach Consul: address, scheme (HTTP or HTTPS), CA bundle and ACL token.

A Consul address is ``[scheme://]host[:port][/key][?token-file=PATH&ca-file=PATH]`` with
scheme ``consul`` or ``http`` (plain HTTP) or ``consuls`` or ``https`` (HTTPS, the server's
certificate verified). The token is taken, first found wins, from: the explicit ``token``
(``--consul-token``), the URL's ``token-file`` (the file's text, surrounding whitespace
stripped), ``$CONSUL_HTTP_TOKEN``; else requests are anonymous. The CA bundle comes from the
explicit ``ca_file`` (``--consul-ca``), else the URL's ``ca-file``, else the system's bundle; a
CA bundle implies HTTPS. A token is never part of a ``repr``, an error or a shown URL; a token
written into the URL itself (``?token=``) is refused, since URLs are shown.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
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
"""A CA bundle larger than this is refused."""

_PLAIN_SCHEMES = ("consul", "http")
_TLS_SCHEMES = ("consuls", "https")
_QUERY_KEYS = ("token-file", "ca-file")
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


def check_ca_file(path: str) -> str:
    """``path`` when it is a readable file holding at least one PEM certificate.

    Raises ``SettingsError`` naming the path otherwise.
    """
    where = f"CA bundle {path}"
    data = _read_head(path, MAX_CA_FILE_BYTES + 1, what="Consul CA bundle", where=where)
    if len(data) > MAX_CA_FILE_BYTES:
        raise SettingsError(f"Consul CA bundle {path} is larger than {MAX_CA_FILE_BYTES} bytes",
                            source=where)
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise SettingsError(f"Consul CA bundle {path} holds no PEM certificate "
                            "(-----BEGIN CERTIFICATE-----)", source=where)
    return path


@attrs.frozen
class ConsulAccess:
    """One Consul agent and how to talk to it. ``token`` is kept out of ``repr``;
    ``token_origin`` says where it came from (``--consul-token``, ``token-file PATH``,
    ``$CONSUL_HTTP_TOKEN``) or is ``""`` when requests are anonymous; ``token_file`` is the
    file the token was read from, if it was (see :meth:`refreshed`)."""

    host: str
    port: int
    tls: bool = False
    ca_file: str | None = None
    token: str | None = attrs.field(default=None, repr=False)
    token_origin: str = ""
    token_file: str | None = None

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
    def who(self) -> str:
        """Whose request it was, for errors: the token's origin (never the token)."""
        if self.token:
            return f"the token given ({self.token_origin})"
        return "no token was given (anonymous)"


def parse(
    address: str, *, token: str | None = None, ca_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[ConsulAccess, str]:
    """``address`` (see the module docstring) → its :class:`ConsulAccess` and the key path
    (``""`` when none).

    Raises ``SettingsError`` for a malformed address, an unknown scheme or query parameter, a
    token in the URL, ``http://`` with a CA bundle, or a token file or CA bundle that cannot
    be used (naming its path).
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
    ca = str(ca_file) if ca_file else query.get("ca-file")
    if ca:
        check_ca_file(ca)
    tls = scheme in _TLS_SCHEMES or bool(ca)
    if ca and scheme == "http":
        raise SettingsError(f"bad Consul address {what!r}: a CA bundle ({ca}) is for HTTPS; "
                            "write https:// or consuls://", source=what)
    access = ConsulAccess(host=parts.hostname, port=port, tls=tls, ca_file=ca, token=chosen,
                          token_origin=origin if chosen else "", token_file=token_file)
    return access, parts.path.strip("/")


def _query(query: str, *, what: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise SettingsError(f"bad Consul address {what!r}: malformed query; expected "
                            "?token-file=PATH&ca-file=PATH", source=what) from None
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
