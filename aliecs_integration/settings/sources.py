"""Where settings come from: a local YAML file or Consul's KV store (py-consul).

Consul layout (as the reference system): the YAML settings document at
``o2/components/aliecs/ANY/any/settings`` and one runtime variable per key under
``o2/runtime/aliecs/vars/<name>``. A settings file may hold the same runtime variables in a
top-level ``runtimeVars`` mapping; variables read from Consul's prefix override those of the
document. Every failure raises ``SettingsError`` naming the file path or ``consul://`` key.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import attrs
import consul
import requests

from aliecs_integration import names, safe_yaml
from aliecs_integration.errors import SettingsError
from aliecs_integration.settings import consul_access
from aliecs_integration.settings.consul_access import (
    CLIENT_CERT_HINT,
    TOKEN_HINT,
    ConsulAccess,
)
from aliecs_integration.settings.core import Settings

DEFAULT_SETTINGS_KEY = "o2/components/aliecs/ANY/any/settings"
DEFAULT_VARS_PREFIX = "o2/runtime/aliecs/vars/"
DEFAULT_TIMEOUT_S = 5.0

_T = TypeVar("_T")


def parse_yaml(text: str, *, source: str) -> Any:
    """Parse one YAML document with :mod:`aliecs_integration.safe_yaml`'s limits (safe tags
    only, duplicate keys refused, size, depth and alias limits).

    Raises ``SettingsError`` naming ``source`` and the line and column of the problem, or
    saying the document is empty.
    """
    try:
        data = safe_yaml.parse(text)
    except safe_yaml.YamlInputError as exc:
        raise SettingsError(str(exc), source=source) from None
    if data is None:
        raise SettingsError(
            "the settings document is empty; expected a mapping of settings keys "
            "(write {} for all defaults)",
            source=source,
        )
    return data


def _read_file(path: Path) -> tuple[str, str]:
    source = os.path.abspath(path)
    try:
        return safe_yaml.read_text(path), source
    except safe_yaml.YamlInputError as exc:
        text = str(exc)
        what = f"settings {text}" if text.startswith("file ") else f"settings file: {text}"
        raise SettingsError(what, source=source) from None


def load_file(path: Path, *, declared_keys: Collection[str] = ()) -> Settings:
    """Read and validate a YAML settings file (source: its absolute path).

    Runtime variables come from the file's optional top-level ``runtimeVars`` mapping (it also
    stays in ``raw``). Raises ``SettingsError`` when the file is missing or unreadable, the
    YAML is malformed (with line and column) or a key has a wrong type.
    """
    text, source = _read_file(path)
    return Settings.from_dict(parse_yaml(text, source=source), source=source,
                              declared_keys=declared_keys)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception inside it (causes, contexts, exception arguments, a
    ``reason`` that is an exception), each once, depth first."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        todo.extend(a for a in current.args if isinstance(a, BaseException))
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)


def _reason(exc: BaseException) -> str:
    """The innermost OS-level reason of a requests failure (e.g. ``Connection refused``)."""
    if isinstance(exc, requests.Timeout):
        return "timed out"
    found: str | None = None
    for current in _causes(exc):
        if isinstance(current, OSError) and current.strerror:
            found = current.strerror
    return found or str(exc)


def _tls_reason(exc: BaseException) -> str:
    """The certificate check's own words from an SSL failure (e.g. ``self-signed certificate
    in certificate chain``), else its innermost reason."""
    for current in _causes(exc):
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {current.verify_message}"
        if isinstance(current, ssl.SSLError) and current.reason:
            return str(current.reason).replace("_", " ").lower()
    return _reason(exc)


_CLIENT_CERT_ALERTS = frozenset((
    "CERTIFICATE_REQUIRED", "BAD_CERTIFICATE", "UNKNOWN_CA", "CERTIFICATE_UNKNOWN",
    "CERTIFICATE_EXPIRED", "CERTIFICATE_REVOKED", "UNSUPPORTED_CERTIFICATE", "ACCESS_DENIED",
))
"""TLS alerts a server sends when it does not accept the client's certificate (or its lack)."""


def _peer_alert(exc: BaseException) -> str | None:
    """The server's TLS alert about the client certificate in an SSL failure (e.g. ``tlsv13
    alert certificate required``), else None."""
    for current in _causes(exc):
        reason = getattr(current, "reason", None)
        if (isinstance(current, ssl.SSLError) and isinstance(reason, str)
                and reason.partition("_ALERT_")[2] in _CLIENT_CERT_ALERTS):
            return reason.replace("_", " ").lower()
    return None


def _tls_eof(exc: BaseException) -> str | None:
    """The words of an SSL failure where the server closed the connection without a TLS alert
    (e.g. ``EOF occurred in violation of protocol``), else None. An agent refusing a client
    certificate does this when the request was written after its alert was sent (TLS 1.3:
    the client certificate is checked after the client finished its handshake)."""
    for current in _causes(exc):
        if isinstance(current, ssl.SSLEOFError):
            return str(current.strerror or "EOF").split(" (_ssl.c:")[0]
    return None


class _ConsulKV:
    """A py-consul client bound to one address; every failure becomes ``SettingsError``.

    Every request ends within ``timeout_s`` in total, even against a server that answers one
    byte at a time (the per-read timeout of the HTTP client alone would not end it).
    """

    def __init__(self, access: ConsulAccess, *, timeout_s: float) -> None:
        self.access = access
        self.hostport = access.hostport
        self.token = access.token
        self.timeout_s = timeout_s
        verify: bool | str = access.ca_file or True
        self.client = consul.Consul(
            host=access.host, port=access.port, scheme=access.scheme, token=self.token,
            verify=verify, cert=access.client_pair, connections_timeout=timeout_s,
        )

    def __repr__(self) -> str:
        return f"_ConsulKV({self.access!r})"

    def url(self, key: str) -> str:
        return self.access.url(key)

    def _denied(self, what: str, key: str, permission: str, answer: str) -> SettingsError:
        if "acl not found" in answer.lower():  # Consul's answer for a token it does not know
            return SettingsError(
                f"Consul at {self.hostport} does not know {self.access.who}: ACL not found "
                f"(a wrong, deleted or expired token); {TOKEN_HINT}",
                source=self.url(key),
            )
        return SettingsError(
            f"Consul at {self.hostport} denied permission to {what} (ACL): {self.access.who}; "
            f"it needs {permission} on {key!r}; {TOKEN_HINT}",
            source=self.url(key),
        )

    def _tls_failed(self, key: str, exc: BaseException) -> SettingsError:
        alert = _peer_alert(exc)
        eof = None if alert else _tls_eof(exc)
        if alert or eof:
            what = (f"refused the TLS connection ({alert})" if alert
                    else f"closed the TLS connection ({eof})")
            maybe = "" if alert else "probably "
            if self.access.client_pair is None:
                return SettingsError(
                    f"Consul at {self.hostport} {what}: it {maybe}requires a client "
                    f"certificate (verify_incoming) and none was sent; {CLIENT_CERT_HINT}",
                    source=self.url(key),
                )
            return SettingsError(
                f"Consul at {self.hostport} {what}: it {maybe}did not accept the client "
                f"certificate {self.access.client_cert} (given by {self.access.client_origin}); "
                "is it signed by a CA the agent trusts (its tls ca_file), and is it still "
                "valid? Pass the right one with --consul-client-cert PATH and "
                "--consul-client-key PATH",
                source=self.url(key),
            )
        ca = (f"the CA bundle {self.access.ca_file}, given by {self.access.ca_origin}"
              if self.access.ca_file else "the system's CA bundle")
        return SettingsError(
            f"TLS to Consul at {self.hostport} failed: {_tls_reason(exc)} (server certificate "
            f"checked against {ca}); is it serving HTTPS there, and is --consul-ca PATH the "
            "CA that signed its certificate?",
            source=self.url(key),
        )

    def call(self, what: str, key: str, fn: Callable[[], _T], *, permission: str = "") -> _T:
        """``fn()`` within the total deadline; its failures as ``SettingsError``."""
        result: list[_T] = []
        failure: list[BaseException] = []

        def target() -> None:
            try:
                result.append(fn())
            except BaseException as exc:  # handed to the calling thread
                failure.append(exc)

        worker = threading.Thread(target=target, name="consul-request", daemon=True)
        worker.start()
        worker.join(self.timeout_s)
        if worker.is_alive():
            self.close()
            raise SettingsError(
                f"Consul at {self.hostport} did not answer within {self.timeout_s:g} s "
                f"(to {what})",
                source=self.url(key),
            )
        if not failure:
            return result[0]
        exc = failure[0]
        if isinstance(exc, requests.exceptions.SSLError) or (
                isinstance(exc, requests.RequestException) and _peer_alert(exc)):
            raise self._tls_failed(key, exc) from exc
        if isinstance(exc, requests.RequestException):
            raise SettingsError(
                f"cannot reach Consul at {self.hostport}: {_reason(exc)}", source=self.url(key)
            ) from exc
        if isinstance(exc, consul.ACLPermissionDenied):
            raise self._denied(what, key, permission or what, str(exc)) from exc
        if isinstance(exc, consul.ConsulException) and "to an HTTPS server" in str(exc):
            raise SettingsError(
                f"Consul at {self.hostport} serves HTTPS, not plain HTTP: write "
                f"consuls://{self.hostport} (with --consul-ca PATH when a private CA signed "
                "its certificate)",
                source=self.url(key),
            ) from exc
        if isinstance(exc, consul.ConsulException):
            raise SettingsError(
                f"Consul at {self.hostport} refused to {what}: {type(exc).__name__} "
                f"{' '.join(str(exc).split())[:300]}",
                source=self.url(key),
            ) from exc
        if isinstance(exc, Exception):  # e.g. JSON of an unexpected shape
            raise SettingsError(
                f"unexpected answer from Consul at {self.hostport} (to {what}): "
                f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}",
                source=self.url(key),
            ) from exc
        raise exc

    def get(self, key: str) -> bytes | None:
        """The value of ``key`` (``b""`` when empty), ``None`` when the key does not exist."""
        _, item = self.call("read", key, lambda: self.client.kv.get(key, token=self.token),
                            permission="key:read")
        if item is None:
            return None
        if not isinstance(item, Mapping):
            raise SettingsError(f"unexpected answer from Consul at {self.hostport}: "
                                f"expected a key entry, got {type(item).__name__}",
                                source=self.url(key))
        value = item.get("Value")
        return value if isinstance(value, bytes) else b""

    def get_prefix(self, prefix: str) -> dict[str, bytes]:
        """Every key under ``prefix`` (folder markers skipped) → its value."""
        _, items = self.call(
            "read", prefix, lambda: self.client.kv.get(prefix, recurse=True, token=self.token),
            permission="key_prefix:read",
        )
        if items is not None and not isinstance(items, list):
            raise SettingsError(f"unexpected answer from Consul at {self.hostport}: "
                                f"expected a list of keys, got {type(items).__name__}",
                                source=self.url(prefix))
        result: dict[str, bytes] = {}
        for item in items or ():
            key = item.get("Key") if isinstance(item, Mapping) else None
            if not isinstance(key, str):
                raise SettingsError(f"unexpected answer from Consul at {self.hostport}: "
                                    "a key entry without a key", source=self.url(prefix))
            value = item.get("Value")
            if key.endswith("/") and value is None:
                continue
            result[key] = value if isinstance(value, bytes) else b""
        return result

    def put_all(self, entries: Mapping[str, str], *, first: str) -> None:
        """Write every ``key: value`` of ``entries`` in one KV transaction: all or nothing.
        ``first`` names the key shown in errors."""
        payload = [
            {"KV": {"Verb": "set", "Key": key,
                    "Value": base64.b64encode(value.encode("utf-8")).decode("ascii")}}
            for key, value in entries.items()
        ]
        headers = self.client.prepare_headers(self.token)
        body = json.dumps(payload)
        answer = self.call(
            "write", first,
            lambda: self.client.http.put(_txn_callback, "/v1/txn", data=body, headers=headers),
            permission="key:write",
        )
        if answer is not True:
            denied = "permission denied" in str(answer).lower()
            raise SettingsError(
                f"Consul at {self.hostport} rolled the transaction back, nothing was written: "
                f"{answer}" + (f" ({self.access.who}; {TOKEN_HINT})" if denied else ""),
                source=self.url(first),
            )

    def close(self) -> None:
        session = getattr(self.client.http, "session", None)
        if session is not None:
            session.close()


def _txn_callback(response: Any) -> Any:
    """py-consul's response of ``PUT /v1/txn``: True when committed; the errors of a rolled
    back transaction (HTTP 409) as text; ACL and other failures raised as py-consul does."""
    if response.code == 409:
        try:
            errors = json.loads(response.body).get("Errors") or []
            return "; ".join(f"{e.get('What', '?')}" for e in errors) or response.body
        except (ValueError, AttributeError):
            return str(response.body)[:300]
    consul.callback.CB._status(response)
    return True


@contextmanager
def _consul(access: ConsulAccess, *, timeout_s: float) -> Iterator[_ConsulKV]:
    kv = _ConsulKV(access, timeout_s=timeout_s)
    try:
        yield kv
    finally:
        kv.close()


def _normalise_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def _decode(value: bytes, *, source: str, what: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{what} is not UTF-8 text (byte {exc.start})", source=source) from exc


@attrs.frozen
class Document:
    """A settings document as read from its source, not validated yet: the YAML ``text``
    (None: the Consul key does not exist), the runtime variables read from Consul's prefix
    (raw bytes by name), and ``source`` (the file path or ``consul[s]://`` key)."""

    text: bytes | str | None
    source: str
    runtime_vars: Mapping[str, bytes] = attrs.field(factory=dict)
    vars_source: str = ""
    """The ``consul[s]://`` URL of the runtime variables' prefix (empty for a file)."""


def read_consul(
    access: ConsulAccess,
    *,
    settings_key: str = DEFAULT_SETTINGS_KEY,
    vars_prefix: str = DEFAULT_VARS_PREFIX,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Document:
    """Read (not validate) the settings document at ``settings_key`` and the runtime variables
    under ``vars_prefix``. Raises ``SettingsError`` only when Consul cannot be reached within
    ``timeout_s``, TLS fails or it refuses the read (see :func:`settings_from` for the
    document)."""
    settings_key = settings_key.strip("/")
    prefix = _normalise_prefix(vars_prefix)
    with _consul(access, timeout_s=timeout_s) as kv:
        source = kv.url(settings_key)
        value = kv.get(settings_key)
        variables = {
            key[len(prefix):]: raw for key, raw in kv.get_prefix(prefix).items() if key != prefix
        }
        vars_url = kv.url(prefix)
        return Document(value, source, variables,
                        vars_url if vars_url.endswith("/") else f"{vars_url}/")


def read_file(path: Path) -> Document:
    """Read (not validate) a settings file. Raises ``SettingsError`` when the file is missing,
    unreadable, not UTF-8 or too large."""
    text, source = _read_file(path)
    return Document(text, source)


def settings_from(document: Document, *, declared_keys: Collection[str] = ()) -> Settings:
    """Validate a document read by :func:`read_consul` or :func:`read_file`: the same checks
    as at start (YAML, :class:`Settings`, ``kafkaProducer``, the keys plugins declare).
    Raises ``SettingsError`` naming the source and key and what was expected."""
    source = document.source
    if document.text is None:
        hostport, _, key = source.split("://", 1)[-1].partition("/")
        raise SettingsError(
            f"settings key not found in Consul at {hostport}; expected a YAML settings "
            "document there (write one with `settings push`)",
            source=source,
            key=key,
        )
    text = document.text
    if isinstance(text, bytes):
        text = _decode(text, source=source, what="settings document")
    variables = {
        name: _decode(raw, source=f"{document.vars_source}{name}", what="runtime variable")
        for name, raw in document.runtime_vars.items()
    }
    return Settings.from_dict(parse_yaml(text, source=source), source=source,
                              runtime_vars=variables, declared_keys=declared_keys)


def wait_for_change(
    access: ConsulAccess,
    key: str,
    *,
    index: int,
    wait_s: float,
    recurse: bool = False,
) -> int:
    """A Consul blocking query on ``key`` (a prefix with ``recurse``): returns Consul's index
    once something under it changed since ``index`` or ``wait_s`` passed (then the index may
    be unchanged); ``index`` 0 returns at once. Raises ``SettingsError`` when Consul cannot be
    reached, TLS fails or it refuses the read."""
    key = key.strip("/") if not recurse else _normalise_prefix(key)
    with _consul(access, timeout_s=wait_s + DEFAULT_TIMEOUT_S) as kv:
        wait = f"{max(1, int(wait_s))}s"
        new_index, _ = kv.call(
            "read", key,
            lambda: kv.client.kv.get(key, index=index or None, wait=wait, recurse=recurse,
                                     token=kv.token, keys=recurse),
            permission="key_prefix:read" if recurse else "key:read")
    try:
        return int(new_index)
    except (TypeError, ValueError):
        raise SettingsError(f"unexpected answer from Consul at {kv.hostport}: no index",
                            source=kv.url(key)) from None


def load_consul(
    address: str,
    *,
    settings_key: str = DEFAULT_SETTINGS_KEY,
    vars_prefix: str = DEFAULT_VARS_PREFIX,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    token: str | None = None,
    ca_file: str | Path | None = None,
    client_cert: str | Path | None = None,
    client_key: str | Path | None = None,
    declared_keys: Collection[str] = (),
) -> Settings:
    """Read the settings document at ``settings_key`` and the runtime variables under
    ``vars_prefix`` (name = key minus prefix, value = UTF-8 text) from Consul at ``address``
    (``[consul[s]://]host[:port][?token-file=PATH&ca-file=PATH&client-cert=PATH&
    client-key=PATH]``, see :mod:`aliecs_integration.settings.consul_access` for the token, CA
    and client certificate precedence).

    Source: ``consul[s]://host:port/<settings_key>``. Raises ``SettingsError`` when Consul
    cannot be reached within ``timeout_s``, TLS fails, it refuses the read (naming the
    permission), the key is missing, a value is not UTF-8, the YAML is malformed (with line)
    or a key has a wrong type.
    """
    access = _address(address, token=token, ca_file=ca_file, client_cert=client_cert,
                      client_key=client_key)
    document = read_consul(access, settings_key=settings_key, vars_prefix=vars_prefix,
                           timeout_s=timeout_s)
    return settings_from(document, declared_keys=declared_keys)


def _address(address: str, *, token: str | None, ca_file: str | Path | None,
             client_cert: str | Path | None, client_key: str | Path | None) -> ConsulAccess:
    """:func:`consul_access.parse` of an address that must not name a key."""
    access, path = consul_access.parse(address, token=token, ca_file=ca_file,
                                       client_cert=client_cert, client_key=client_key)
    if path:
        what = consul_access.shown(address)
        raise SettingsError(f"bad Consul address {what!r}: expected "
                            "[consul[s]://]host[:port] without a key path", source=what)
    return access


@attrs.frozen
class SourceSpec:
    """A settings source parsed: a YAML ``path``, or Consul (``access``: address, TLS, token)
    with the settings document at ``key``. ``shown``: the source with secrets left out."""

    shown: str
    path: Path | None = None
    access: ConsulAccess | None = None
    key: str = DEFAULT_SETTINGS_KEY


def parse_source(
    source: str, *, token: str | None = None, ca_file: str | Path | None = None,
    client_cert: str | Path | None = None, client_key: str | Path | None = None,
) -> SourceSpec:
    """Parse ``consul[s]://host:port[/settings/key][?token-file=PATH&ca-file=PATH&
    client-cert=PATH&client-key=PATH]``, ``file:///path`` or a YAML file path; ``token``,
    ``ca_file``, ``client_cert`` and ``client_key`` (the CLI's ``--consul-token``,
    ``--consul-ca``, ``--consul-client-cert`` and ``--consul-client-key``) take precedence over
    the URL's, the URL's over the environment's (:mod:`~aliecs_integration.settings.
    consul_access`). Raises ``SettingsError`` for an empty source, an unknown URL scheme or a
    bad Consul address, token file, CA file, client certificate or key."""
    text = source.strip()
    if not text:
        raise SettingsError(
            "no settings source given: expected consul://host:port[/key] or a YAML file path"
        )
    if "://" in text:
        scheme = text.partition("://")[0].lower()
        if scheme in ("consul", "consuls"):
            access, key = consul_access.parse(text, token=token, ca_file=ca_file,
                                              client_cert=client_cert, client_key=client_key)
            return SourceSpec(access.url(key or DEFAULT_SETTINGS_KEY), access=access,
                              key=key or DEFAULT_SETTINGS_KEY)
        if scheme == "file":
            return SourceSpec(consul_access.shown(text),
                              path=Path(text.partition("://")[2]))
        shown = consul_access.shown(source)
        raise SettingsError(
            f"unknown settings source scheme {shown.partition('://')[0]!r}: "
            "expected consul://host:port[/key], consuls://host:port[/key], file:///path or a "
            "YAML file path",
            source=shown,
        )
    return SourceSpec(text, path=Path(text))


def load(
    source: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    token: str | None = None,
    ca_file: str | Path | None = None,
    client_cert: str | Path | None = None,
    client_key: str | Path | None = None,
    declared_keys: Collection[str] = (),
) -> Settings:
    """Load settings from ``source`` (see :func:`parse_source` for its forms and the token, CA
    and client certificate precedence).

    Raises ``SettingsError`` for an empty source or an unknown URL scheme, or whatever
    :func:`load_consul` / :func:`load_file` raise.
    """
    spec = parse_source(source, token=token, ca_file=ca_file, client_cert=client_cert,
                        client_key=client_key)
    if spec.path is not None:
        return load_file(spec.path, declared_keys=declared_keys)
    assert spec.access is not None
    document = read_consul(spec.access, settings_key=spec.key, vars_prefix=DEFAULT_VARS_PREFIX,
                           timeout_s=timeout_s)
    return settings_from(document, declared_keys=declared_keys)


def push_to_consul(
    address: str,
    settings_file: Path,
    *,
    runtime_vars: Mapping[str, str] | None = None,
    settings_key: str = DEFAULT_SETTINGS_KEY,
    vars_prefix: str = DEFAULT_VARS_PREFIX,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    token: str | None = None,
    ca_file: str | Path | None = None,
    client_cert: str | Path | None = None,
    client_key: str | Path | None = None,
    declared_keys: Collection[str] = (),
) -> dict[str, str]:
    """Validate ``settings_file`` and write it to Consul at ``address``, all or nothing.

    Nothing is written unless the file (and ``runtime_vars``) validate; variable names must
    be safe key components (:func:`aliecs_integration.names.variable_name`: no ``/``, no
    ``..``). Then one KV transaction writes each runtime variable (the file's
    ``runtimeVars``, overridden by ``runtime_vars``) under ``vars_prefix`` and the file's YAML
    text, unchanged, at ``settings_key``: Consul applies all of them or none. Existing
    variables not named are left alone. Returns the keys written with their values. Raises
    ``SettingsError`` as :func:`load_file` does, or when Consul cannot be reached, denies
    the write (naming the permission needed) or rolls the transaction back.
    """
    access = _address(address, token=token, ca_file=ca_file, client_cert=client_cert,
                      client_key=client_key)
    text, source = _read_file(settings_file)
    for name in (runtime_vars or {}):
        _safe_variable(name, source="--var")
    settings = Settings.from_dict(
        parse_yaml(text, source=source), source=source, runtime_vars=runtime_vars,
        declared_keys=declared_keys,
    )
    settings_key = settings_key.strip("/")
    prefix = _normalise_prefix(vars_prefix)
    entries = {f"{prefix}{name}": value for name, value in settings.runtime_vars.items()}
    entries[settings_key] = text
    if len(entries) > MAX_TXN_OPERATIONS:
        raise SettingsError(
            f"{len(entries) - 1} runtime variables: more than the "
            f"{MAX_TXN_OPERATIONS - 1} one Consul transaction can write",
            source=source,
            key="runtimeVars",
        )
    with _consul(access, timeout_s=timeout_s) as kv:
        kv.put_all(entries, first=settings_key)
    return entries


MAX_TXN_OPERATIONS = 64
"""Consul's limit on the operations of one transaction."""


def _safe_variable(name: str, *, source: str) -> None:
    try:
        names.variable_name(name)
    except names.InvalidName as exc:
        raise SettingsError(str(exc), source=source) from None
