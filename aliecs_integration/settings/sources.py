"""Where settings come from: a local YAML file or Consul's KV store (py-consul).

Consul layout (as the reference system): the YAML settings document at
``o2/components/aliecs/ANY/any/settings`` and one runtime variable per key under
``o2/runtime/aliecs/vars/<name>``. A settings file may hold the same runtime variables in a
top-level ``runtimeVars`` mapping; variables read from Consul's prefix override those of the
document. Every failure raises ``SettingsError`` naming the file path or ``consul://`` key.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import consul
import requests

from aliecs_integration import safe_yaml
from aliecs_integration.errors import SettingsError
from aliecs_integration.settings.core import Settings

DEFAULT_SETTINGS_KEY = "o2/components/aliecs/ANY/any/settings"
DEFAULT_VARS_PREFIX = "o2/runtime/aliecs/vars/"
DEFAULT_CONSUL_PORT = 8500
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


def load_file(path: Path) -> Settings:
    """Read and validate a YAML settings file (source: its absolute path).

    Runtime variables come from the file's optional top-level ``runtimeVars`` mapping (it also
    stays in ``raw``). Raises ``SettingsError`` when the file is missing or unreadable, the
    YAML is malformed (with line and column) or a key has a wrong type.
    """
    text, source = _read_file(path)
    return Settings.from_dict(parse_yaml(text, source=source), source=source)


def _parse_address(address: str) -> tuple[str, str, int]:
    """``host[:port]``, optionally with ``http://``, ``https://`` or ``consul://`` → parts."""
    text = address.strip()
    if "://" not in text:
        text = f"http://{text}"
    parts = urlsplit(text)
    scheme = "http" if parts.scheme == "consul" else parts.scheme
    try:
        port = parts.port or DEFAULT_CONSUL_PORT
    except ValueError as exc:
        raise SettingsError(
            f"bad Consul address {address!r}: expected host:port with a port in 0..65535",
            source=address,
        ) from exc
    if scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
        raise SettingsError(
            f"bad Consul address {address!r}: expected [http://|https://]host[:port]",
            source=address,
        )
    return scheme, parts.hostname, port


def _reason(exc: BaseException) -> str:
    """The innermost OS-level reason of a requests failure (e.g. ``Connection refused``)."""
    if isinstance(exc, requests.Timeout):
        return "timed out"
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    found: str | None = None
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            found = current.strerror
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        todo.extend(a for a in current.args if isinstance(a, BaseException))
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
    return found or str(exc)


class _ConsulKV:
    """A py-consul client bound to one address; every failure becomes ``SettingsError``."""

    def __init__(self, address: str, *, timeout_s: float, token: str | None) -> None:
        scheme, host, port = _parse_address(address)
        self.hostport = f"{host}:{port}"
        self.token = token
        self.client = consul.Consul(
            host=host, port=port, scheme=scheme, token=token, connections_timeout=timeout_s
        )

    def url(self, key: str) -> str:
        return f"consul://{self.hostport}/{key}"

    def call(self, what: str, key: str, fn: Callable[[], _T]) -> _T:
        try:
            return fn()
        except requests.RequestException as exc:
            raise SettingsError(
                f"cannot reach Consul at {self.hostport}: {_reason(exc)}", source=self.url(key)
            ) from exc
        except consul.ConsulException as exc:
            raise SettingsError(
                f"Consul at {self.hostport} refused to {what}: {type(exc).__name__} {exc}",
                source=self.url(key),
            ) from exc

    def get(self, key: str) -> bytes | None:
        """The value of ``key`` (``b""`` when empty), ``None`` when the key does not exist."""
        _, item = self.call("read", key, lambda: self.client.kv.get(key, token=self.token))
        if item is None:
            return None
        value = item.get("Value")
        return value if isinstance(value, bytes) else b""

    def get_prefix(self, prefix: str) -> dict[str, bytes]:
        """Every key under ``prefix`` (folder markers skipped) → its value."""
        _, items = self.call(
            "read", prefix, lambda: self.client.kv.get(prefix, recurse=True, token=self.token)
        )
        result: dict[str, bytes] = {}
        for item in items or ():
            key, value = item["Key"], item.get("Value")
            if key.endswith("/") and value is None:
                continue
            result[key] = value if isinstance(value, bytes) else b""
        return result

    def put(self, key: str, value: str) -> None:
        ok = self.call("write", key, lambda: self.client.kv.put(key, value, token=self.token))
        if not ok:
            raise SettingsError(
                f"Consul at {self.hostport} did not store the key", source=self.url(key)
            )

    def close(self) -> None:
        session = getattr(self.client.http, "session", None)
        if session is not None:
            session.close()


@contextmanager
def _consul(address: str, *, timeout_s: float, token: str | None) -> Iterator[_ConsulKV]:
    kv = _ConsulKV(address, timeout_s=timeout_s, token=token)
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


def load_consul(
    address: str,
    *,
    settings_key: str = DEFAULT_SETTINGS_KEY,
    vars_prefix: str = DEFAULT_VARS_PREFIX,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    token: str | None = None,
) -> Settings:
    """Read the settings document at ``settings_key`` and the runtime variables under
    ``vars_prefix`` (name = key minus prefix, value = UTF-8 text) from Consul at ``address``.

    Source: ``consul://host:port/<settings_key>``. Raises ``SettingsError`` when Consul cannot
    be reached within ``timeout_s``, refuses the read, the key is missing, a value is not
    UTF-8, the YAML is malformed (with line) or a key has a wrong type.
    """
    settings_key = settings_key.strip("/")
    prefix = _normalise_prefix(vars_prefix)
    with _consul(address, timeout_s=timeout_s, token=token) as kv:
        source = kv.url(settings_key)
        value = kv.get(settings_key)
        if value is None:
            raise SettingsError(
                f"settings key not found in Consul at {kv.hostport}; expected a YAML settings "
                f"document there (write one with `settings push`)",
                source=source,
                key=settings_key,
            )
        text = _decode(value, source=source, what="settings document")
        variables = {
            key[len(prefix) :]: _decode(raw, source=kv.url(key), what="runtime variable")
            for key, raw in kv.get_prefix(prefix).items()
            if key != prefix
        }
    return Settings.from_dict(
        parse_yaml(text, source=source), source=source, runtime_vars=variables
    )


def load(
    source: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, token: str | None = None
) -> Settings:
    """Load settings from ``consul://host:port[/settings/key]`` or a YAML file path.

    Raises ``SettingsError`` for an empty source or an unknown URL scheme, or whatever
    :func:`load_consul` / :func:`load_file` raise.
    """
    text = source.strip()
    if not text:
        raise SettingsError(
            "no settings source given: expected consul://host:port[/key] or a YAML file path"
        )
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme == "consul":
            key = parts.path.strip("/") or DEFAULT_SETTINGS_KEY
            return load_consul(parts.netloc, settings_key=key, timeout_s=timeout_s, token=token)
        if parts.scheme == "file":
            return load_file(Path(parts.path))
        raise SettingsError(
            f"unknown settings source scheme {parts.scheme!r}: "
            "expected consul://host:port[/key], file:///path or a YAML file path",
            source=source,
        )
    return load_file(Path(text))


def push_to_consul(
    address: str,
    settings_file: Path,
    *,
    runtime_vars: Mapping[str, str] | None = None,
    settings_key: str = DEFAULT_SETTINGS_KEY,
    vars_prefix: str = DEFAULT_VARS_PREFIX,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    token: str | None = None,
) -> None:
    """Validate ``settings_file`` and write it to Consul at ``address``.

    Nothing is written unless the file (and ``runtime_vars``) validate. Then each runtime
    variable (the file's ``runtimeVars``, overridden by ``runtime_vars``) is written under
    ``vars_prefix``, and finally the file's YAML text, unchanged, at ``settings_key``. Existing
    variables not named are left alone. Raises ``SettingsError`` as :func:`load_file` does, or
    when Consul cannot be reached or refuses a write.
    """
    text, source = _read_file(settings_file)
    settings = Settings.from_dict(
        parse_yaml(text, source=source), source=source, runtime_vars=runtime_vars
    )
    settings_key = settings_key.strip("/")
    prefix = _normalise_prefix(vars_prefix)
    with _consul(address, timeout_s=timeout_s, token=token) as kv:
        for name, value in settings.runtime_vars.items():
            kv.put(f"{prefix}{name}", value)
        kv.put(settings_key, text)
