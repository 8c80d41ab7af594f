"""``aliecs-integration settings show|push``: the effective settings, and seeding Consul."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click

from aliecs_integration.cli.common import (
    EXIT_CODES_HELP,
    SETTINGS_ENV,
    SETTINGS_HELP,
    consul_token_option,
    format_table,
    load_settings,
    parse_pairs,
)
from aliecs_integration.settings.core import Settings

CONSUL_ENV = "ALIECS_CONSUL"

#: ``ProducerConfig`` attribute → its path under ``kafkaProducer`` in the settings document.
PRODUCER_FIELDS: Mapping[str, str] = {
    "partitions": "topics.partitions",
    "replication_factor": "topics.replicationFactor",
    "topic_root": "topicRoot",
    "max_messages": "queue.maxMessages",
    "max_bytes": "queue.maxBytes",
    "overflow": "queue.overflow",
    "block_timeout_s": "queue.blockTimeoutSeconds",
    "flush_timeout_s": "flushTimeoutSeconds",
    "spool_path": "spool.path",
}


def _flatten(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            yield from _flatten(f"{prefix}.{key}", item)
    else:
        yield prefix, value


def _has_path(raw: Mapping[str, Any], path: str) -> bool:
    node: Any = raw
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def effective_rows(settings: Settings) -> list[tuple[str, Any, str]]:
    """``(key, value, origin)`` for every effective setting, nested keys dotted, secrets masked.

    ``kafkaProducer`` is shown as the producer will use it: every librdkafka property (defaults
    included) and every producer option, each with the source that set it or ``default``.
    """
    from aliecs_integration.settings.producer import KEY as PRODUCER_KEY

    rows: list[tuple[str, Any, str]] = []
    for key, (value, origin) in settings.describe(mask_secrets=True).items():
        if key == PRODUCER_KEY:
            continue
        rows += [(name, item, origin) for name, item in _flatten(key, value)]
    raw_producer = settings.get(PRODUCER_KEY) or {}
    user_props = raw_producer.get("properties") or {} if isinstance(raw_producer, Mapping) else {}
    producer = settings.producer
    for name, value in sorted(producer.masked_properties().items()):
        origin = settings.source if name in user_props else "default"
        rows.append((f"{PRODUCER_KEY}.properties.{name}", value, origin))
    for attr, path in PRODUCER_FIELDS.items():
        value = getattr(producer, attr)
        value = getattr(value, "value", value)  # enums by their settings spelling
        present = isinstance(raw_producer, Mapping) and _has_path(raw_producer, path)
        rows.append((f"{PRODUCER_KEY}.{path}", value, settings.source if present else "default"))
    return rows


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


@click.group(epilog=EXIT_CODES_HELP)
def settings() -> None:
    """Show the effective settings, or seed Consul with a settings file."""


@settings.command(epilog=EXIT_CODES_HELP)
@click.option("--source", "--settings", "source", metavar="SOURCE", envvar=SETTINGS_ENV,
              help=SETTINGS_HELP)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@consul_token_option
def show(source: str | None, fmt: str, consul_token: str | None,
         consul_ca: str | None, consul_client_cert: str | None,
         consul_client_key: str | None) -> None:
    """Print every effective setting, where it came from, secrets masked as ***."""
    loaded = load_settings(source, consul_token, consul_ca, consul_client_cert,
                           consul_client_key)
    rows = effective_rows(loaded)
    if fmt == "json":
        click.echo(json.dumps(
            {"source": loaded.source,
             "settings": [{"key": k, "value": v, "origin": o} for k, v, o in rows]},
            indent=2, default=str,
        ))
        return
    click.echo(f"settings: {loaded.source}")
    click.echo(format_table(("KEY", "VALUE", "ORIGIN"), [(k, _show(v), o) for k, v, o in rows]))


def _parse_vars(pairs: tuple[str, ...]) -> dict[str, str]:
    return parse_pairs(pairs, "--var", "NAME=VALUE, e.g. kafka_enabled=true")


@settings.command(epilog=EXIT_CODES_HELP)
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--consul", "address", envvar=CONSUL_ENV, required=True, metavar="HOST:PORT",
              help=f"Consul address: [consul://|consuls://]HOST:PORT, optionally with "
                   f"?token-file=PATH&ca-file=PATH&client-cert=PATH&client-key=PATH (also "
                   f"${CONSUL_ENV}).")
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE",
              help="A runtime variable to write as well (o2/runtime/aliecs/vars/NAME); repeatable.")
@click.option("--key", default=None, metavar="KEY",
              help="Consul key of the settings document "
                   "[default: o2/components/aliecs/ANY/any/settings].")
@consul_token_option
def push(file: Path, address: str, variables: tuple[str, ...], key: str | None,
         consul_token: str | None, consul_ca: str | None, consul_client_cert: str | None,
         consul_client_key: str | None) -> None:
    """Validate FILE, then write it to Consul with its runtime variables, all or nothing.

    Nothing is written unless FILE validates. One Consul transaction writes the settings
    document to o2/components/aliecs/ANY/any/settings unchanged and each runtimeVars entry
    (and --var) to o2/runtime/aliecs/vars/NAME: either all of them are written or none.
    Variable names: a letter or '_', then letters, digits, '_', '.' or '-'.
    """
    from aliecs_integration.host import declared_settings_keys
    from aliecs_integration.settings import consul_access
    from aliecs_integration.settings.secrets import is_secret_key
    from aliecs_integration.settings.sources import (
        DEFAULT_SETTINGS_KEY,
        load_file,
        push_to_consul,
    )

    extra = _parse_vars(variables)
    declared = declared_settings_keys()
    validated = load_file(file, declared_keys=declared)
    key = (key or DEFAULT_SETTINGS_KEY).strip("/")
    written = push_to_consul(address, file, runtime_vars=extra or None, settings_key=key,
                             token=consul_token, ca_file=consul_ca,
                             client_cert=consul_client_cert, client_key=consul_client_key,
                             declared_keys=declared)
    access, _ = consul_access.parse(address, token=consul_token, ca_file=consul_ca,
                                    client_cert=consul_client_cert,
                                    client_key=consul_client_key)
    click.echo(f"validated {file} ({len(validated.raw)} keys)")
    for name, value in written.items():
        if name == key:
            continue
        shown = "***" if is_secret_key(name) else value
        click.echo(f"wrote {access.url(name)} = {shown}")
    click.echo(f"wrote {access.url(key)}")
    click.echo(f"({len(written)} keys in one Consul transaction: all or nothing)")
