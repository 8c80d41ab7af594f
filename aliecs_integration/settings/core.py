"""The core settings: validated from one parsed settings document (YAML from a file or Consul).

Keys this module understands (the contract: ``docs/settings.md``): ``kafkaEndpoints``,
``kafkaEndpoint``, ``integrationPlugins``, ``enableKafka``, ``kafkaProducer`` (handed to
``ProducerConfig.from_dict``) and ``runtimeVars`` (runtime defaults of environment
variables, the file equivalent of Consul's ``o2/runtime/aliecs/vars/``). Every other key is
kept in ``Settings.raw`` for third-party plugins.
"""

from __future__ import annotations

import copy
import difflib
import logging
from collections.abc import Collection, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from aliecs_integration import names
from aliecs_integration.errors import SettingsError
from aliecs_integration.settings.producer import ProducerConfig
from aliecs_integration.settings.secrets import MASK, is_secret_key, masked

log = logging.getLogger(__name__)

KAFKA_ENDPOINTS = "kafkaEndpoints"
KAFKA_ENDPOINT = "kafkaEndpoint"
INTEGRATION_PLUGINS = "integrationPlugins"
ENABLE_KAFKA = "enableKafka"
KAFKA_PRODUCER = "kafkaProducer"
RUNTIME_VARS = "runtimeVars"

KNOWN_KEYS: tuple[str, ...] = (
    KAFKA_ENDPOINTS, KAFKA_ENDPOINT, INTEGRATION_PLUGINS, ENABLE_KAFKA, KAFKA_PRODUCER,
    RUNTIME_VARS,
)
"""The top-level keys of the core settings."""
LEGACY_PLUGIN = "kafka"

DEFAULT_KAFKA_ENDPOINTS: tuple[str, ...] = ("localhost:9092",)
DEFAULT_ORIGIN = "default"


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, list | tuple):
        return "list"
    return type(value).__name__


def _within_one_edit(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` differ by at most one insertion, deletion or substitution."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i + (len(a) == len(b)):] == b[i + 1:]


def check_keys(data: Mapping[str, Any], *, source: str, declared: Collection[str] = ()) -> None:
    """Typos in top-level keys: a key that differs from a known one (core or ``declared`` by a
    plugin) only by case or one edit is refused with ``SettingsError`` ("did you mean");
    another unknown key close to a known one is kept (third-party plugins may read it) with a
    logged warning naming the nearest known key. Also warns when ``kafkaEndpoint`` (the legacy
    plugin's broker) is set but neither ``kafkaEndpoints`` nor the legacy plugin is."""
    known = (*KNOWN_KEYS, *sorted(set(declared) - set(KNOWN_KEYS)))
    for key in data:
        if not isinstance(key, str) or key in known:
            continue
        near = [k for k in known if k.lower() == key.lower() or _within_one_edit(k, key)]
        if near:
            raise SettingsError(
                f"unknown key; did you mean `{near[0]}`? (a key that differs from a known one "
                "only by case or one letter is refused unless a plugin declares it)",
                source=source,
                key=key,
            )
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.7)
        if close:
            log.warning("%s: key '%s': unknown key, kept for plugins; did you mean `%s`?",
                        source, key, close[0])
    plugins = data.get(INTEGRATION_PLUGINS)
    legacy_on = isinstance(plugins, list) and LEGACY_PLUGIN in plugins
    if KAFKA_ENDPOINT in data and KAFKA_ENDPOINTS not in data and not legacy_on:
        log.warning(
            "%s: key '%s' is the legacy kafka plugin's broker and that plugin is not in "
            "integrationPlugins; did you mean `%s`? (core-kafka uses %s)",
            source, KAFKA_ENDPOINT, KAFKA_ENDPOINTS, ",".join(DEFAULT_KAFKA_ENDPOINTS),
        )


def _check_endpoint(value: Any, *, source: str, key: str) -> str:
    if not isinstance(value, str):
        raise SettingsError(
            f"expected a 'host:port' string, got {_type_name(value)}", source=source, key=key
        )
    host, sep, port = value.strip().rpartition(":")
    if not value.strip() or not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(
            f"expected a 'host:port' string with a port in 1..65535, got {value!r}",
            source=source,
            key=key,
        )
    return value.strip()


def _string_list(data: Mapping[str, Any], key: str, *, source: str, what: str) -> list[Any]:
    value = data[key]
    if not isinstance(value, list):
        raise SettingsError(
            f"expected a list of {what}, got {_type_name(value)}"
            + (" (write it as a one-element list)" if isinstance(value, str) else ""),
            source=source,
            key=key,
        )
    return value


def _parse_endpoints(data: Mapping[str, Any], *, source: str) -> tuple[str, ...]:
    if KAFKA_ENDPOINTS not in data:
        return DEFAULT_KAFKA_ENDPOINTS
    items = _string_list(data, KAFKA_ENDPOINTS, source=source, what="'host:port' strings")
    return tuple(
        _check_endpoint(item, source=source, key=f"{KAFKA_ENDPOINTS}[{i}]")
        for i, item in enumerate(items)
    )


def _parse_endpoint(data: Mapping[str, Any], *, source: str) -> str | None:
    value = data.get(KAFKA_ENDPOINT)
    if value is None:
        return None
    return _check_endpoint(value, source=source, key=KAFKA_ENDPOINT)


def _parse_plugins(data: Mapping[str, Any], *, source: str) -> tuple[str, ...]:
    if INTEGRATION_PLUGINS not in data:
        return ()
    items = _string_list(data, INTEGRATION_PLUGINS, source=source, what="plugin names")
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item.strip():
            raise SettingsError(
                f"expected a non-empty plugin name, got {_type_name(item)}",
                source=source,
                key=f"{INTEGRATION_PLUGINS}[{i}]",
            )
    return tuple(item.strip() for item in items)


def _parse_enable(data: Mapping[str, Any], *, source: str) -> bool:
    value = data.get(ENABLE_KAFKA, True)
    if not isinstance(value, bool):
        raise SettingsError(
            f"expected a boolean (true or false, unquoted), got {_type_name(value)}",
            source=source,
            key=ENABLE_KAFKA,
        )
    return value


def _var_string(value: Any, *, source: str, key: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise SettingsError(
        f"expected a string, number or boolean, got {_type_name(value)}", source=source, key=key
    )


def runtime_vars_from(data: Mapping[str, Any], *, source: str) -> dict[str, str]:
    """The ``runtimeVars`` mapping of a settings document, values as strings (booleans as
    ``true``/``false``); ``{}`` when absent. Raises ``SettingsError`` on a wrong type."""
    value = data.get(RUNTIME_VARS)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SettingsError(
            f"expected a mapping of variable name to value, got {_type_name(value)}",
            source=source,
            key=RUNTIME_VARS,
        )
    result: dict[str, str] = {}
    for name, item in value.items():
        if not isinstance(name, str) or not name:
            raise SettingsError(
                f"expected a non-empty variable name, got {_type_name(name)}",
                source=source,
                key=RUNTIME_VARS,
            )
        try:
            names.variable_name(name)
        except names.InvalidName as exc:
            raise SettingsError(str(exc), source=source, key=f"{RUNTIME_VARS}") from None
        result[name] = _var_string(item, source=source, key=f"{RUNTIME_VARS}.{name}")
    return result


def _tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _frozen(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return value if isinstance(value, MappingProxyType) else MappingProxyType(dict(value))


def _masked_repr(value: Mapping[str, Any]) -> str:
    return repr(masked(value))


# kafka_config imports MASK and is_secret_key from this module, so ProducerConfig is imported
# where it is used, not at the top (a circular import otherwise).
def _default_producer() -> ProducerConfig:
    return ProducerConfig()


@attrs.frozen
class Settings:
    """Validated core settings. Build with :meth:`from_dict` (or a loader in
    ``settings_sources``); direct construction skips validation and is meant for tests.
    ``repr`` masks secrets (safe to log)."""

    kafka_endpoints: tuple[str, ...] = attrs.field(
        default=DEFAULT_KAFKA_ENDPOINTS, converter=_tuple
    )
    kafka_endpoint: str | None = None
    integration_plugins: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    enable_kafka: bool = True
    producer: ProducerConfig = attrs.field(factory=_default_producer)
    runtime_vars: Mapping[str, str] = attrs.field(
        factory=dict, converter=_frozen, repr=_masked_repr
    )
    raw: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen, repr=_masked_repr)
    source: str = DEFAULT_ORIGIN

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        source: str,
        runtime_vars: Mapping[str, str] | None = None,
        declared_keys: Collection[str] = (),
    ) -> Settings:
        """Validate a parsed settings document.

        ``runtime_vars`` (e.g. read from Consul's ``o2/runtime/aliecs/vars/``) override the
        document's own ``runtimeVars``. Raises ``SettingsError`` naming the key, ``source`` and
        what was expected when the document is not a mapping, a key has a wrong type, or a key
        looks like a typo of a known one (see :func:`check_keys`; ``declared_keys``: the keys
        plugins declare).
        """
        if not isinstance(data, Mapping):
            raise SettingsError(
                f"expected a mapping of settings keys at the top level, got {_type_name(data)}",
                source=source,
            )
        for key in data:
            if not isinstance(key, str):
                raise SettingsError(
                    f"expected string keys at the top level, got {_type_name(key)} ({key!r})",
                    source=source,
                )
        check_keys(data, source=source, declared=declared_keys)
        variables = runtime_vars_from(data, source=source)
        for name, value in (runtime_vars or {}).items():
            if not isinstance(name, str) or not name or not isinstance(value, str):
                raise SettingsError(
                    f"runtime variable {name!r}: expected a non-empty string name and a "
                    f"string value, got {_type_name(value)}",
                    source=source,
                )
            variables[name] = value
        return cls(
            kafka_endpoints=_parse_endpoints(data, source=source),
            kafka_endpoint=_parse_endpoint(data, source=source),
            integration_plugins=_parse_plugins(data, source=source),
            enable_kafka=_parse_enable(data, source=source),
            producer=ProducerConfig.from_dict(data.get(KAFKA_PRODUCER), source=source),
            runtime_vars=variables,
            raw=copy.deepcopy(dict(data)),
            source=source,
        )

    @property
    def producing(self) -> bool:
        """True when core-kafka should produce: ``enableKafka`` and a non-empty broker list."""
        return self.enable_kafka and bool(self.kafka_endpoints)

    def get(self, key: str, default: Any = None) -> Any:
        """The raw value of any top-level key (known or not) as written, else ``default``."""
        return self.raw.get(key, default)

    def describe(self, mask_secrets: bool = True) -> dict[str, tuple[Any, str]]:
        """Each effective key → ``(value, origin)``, origin being :attr:`source` or ``"default"``.

        Known keys show their validated value (``kafkaProducer`` and unknown keys as written);
        with ``mask_secrets`` every entry whose name looks secret (see :data:`SECRET_MARKERS`)
        is shown as ``***``, at any depth.
        """
        effective: dict[str, Any] = {
            KAFKA_ENDPOINTS: list(self.kafka_endpoints),
            KAFKA_ENDPOINT: self.kafka_endpoint,
            INTEGRATION_PLUGINS: list(self.integration_plugins),
            ENABLE_KAFKA: self.enable_kafka,
            KAFKA_PRODUCER: copy.deepcopy(self.raw.get(KAFKA_PRODUCER) or {}),
            RUNTIME_VARS: dict(self.runtime_vars),
        }
        for key, value in self.raw.items():
            effective.setdefault(key, copy.deepcopy(value))
        result: dict[str, tuple[Any, str]] = {}
        for key, value in effective.items():
            origin = self.source if key in self.raw else DEFAULT_ORIGIN
            if key == RUNTIME_VARS and self.runtime_vars:
                origin = self.source
            if mask_secrets:
                value = MASK if is_secret_key(key) else masked(value)
            result[key] = (value, origin)
        return result
