"""What every command of the CLI shares: exit codes, error conversion, options, tables.

Exit codes: :data:`EXIT_OK` (0) success, :data:`EXIT_FAILURE` (1) a runtime failure (broker or
Consul unreachable, a scenario action that did not go as expected, an unexpected error) and
:data:`EXIT_BAD_INPUT` (2) bad usage or input (unknown option or topic, malformed or invalid
file). Every conversion happens in :func:`convert`, called once by the command group.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable, Sequence
from typing import IO, Any

import attrs
import click

from aliecs_integration.errors import AliecsError, SettingsError
from aliecs_integration.settings.core import Settings

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 runtime failure (Kafka or Consul unreachable, a scenario "
    "action that did not go as expected); 2 bad usage or input (unknown option or topic, "
    "malformed or invalid file). Errors are one 'error: ...' line on stderr; add -v for "
    "details and the traceback of unexpected errors."
)

log = logging.getLogger("aliecs_integration.cli")


class CliError(click.ClickException):
    """A runtime failure shown as one ``error: <message>`` line on stderr; exit code 1."""

    exit_code = EXIT_FAILURE

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


class BadInput(CliError):
    """Bad input named by the message; exit code 2."""

    exit_code = EXIT_BAD_INPUT


def failure(message: str, exit_code: int) -> CliError:
    """:class:`BadInput` for exit code 2, else :class:`CliError`."""
    return BadInput(message) if exit_code == EXIT_BAD_INPUT else CliError(message)


def _network_cause(exc: BaseException) -> bool:
    """True when ``exc`` was raised because a server could not be reached or refused a request."""
    import consul
    import requests

    cause = exc.__cause__
    return isinstance(cause, requests.RequestException | consul.ConsulException | ConnectionError)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def convert(exc: BaseException) -> CliError | None:
    """The :class:`CliError` for an expected failure, or None for an unexpected one.

    Expected: our own :class:`AliecsError` (settings, scenario and plugin errors are bad input
    unless a server could not be reached), Kafka client errors, and OS errors (files, sockets).
    """
    from confluent_kafka import KafkaException

    if isinstance(exc, SettingsError):
        code = EXIT_FAILURE if _network_cause(exc) else EXIT_BAD_INPUT
        return failure(_one_line(str(exc)), code)
    if isinstance(exc, AliecsError):
        code = getattr(exc, "exit_code", EXIT_FAILURE)
        return failure(_one_line(str(exc)), code if isinstance(code, int) else EXIT_FAILURE)
    if isinstance(exc, KafkaException):
        err = exc.args[0] if exc.args else exc
        text = err.str() if hasattr(err, "str") else str(err)
        return CliError(f"Kafka: {_one_line(text)}")
    if isinstance(exc, OSError):
        what = exc.strerror or str(exc) or type(exc).__name__
        where = f"{exc.filename}: " if exc.filename else ""
        bad_path = exc.errno in (errno.ENOENT, errno.EISDIR, errno.ENOTDIR, errno.EACCES)
        code = EXIT_BAD_INPUT if bad_path and exc.filename else EXIT_FAILURE
        return failure(f"{where}{what}", code)
    return None


def unexpected(exc: BaseException, *, verbose: bool) -> CliError:
    """The error for an exception nobody expected: the traceback is logged only when verbose."""
    if verbose:
        log.error("unexpected error", exc_info=exc)
        hint = ""
    else:
        hint = " (run with -v for the traceback)"
    return CliError(f"unexpected {type(exc).__name__}: {_one_line(str(exc))}{hint}")


SETTINGS_ENV = "ALIECS_SETTINGS"
SETTINGS_HELP = (
    "Settings source: consul://HOST:PORT[/KEY] (consuls:// for HTTPS; "
    "?token-file=PATH&ca-file=PATH&client-cert=PATH&client-key=PATH may follow) or a YAML file "
    f"(default: ${SETTINGS_ENV}, else the built-in defaults)."
)


@attrs.define
class Options:
    """What the group's options set for every command (``ctx.obj``)."""

    verbose: int = 0


def options(ctx: click.Context) -> Options:
    """The group's :class:`Options` (defaults when a command is invoked on its own)."""
    obj = ctx.find_object(Options)
    return obj if obj is not None else Options()


def load_settings(source: str | None, token: str | None = None,
                  ca_file: str | None = None, client_cert: str | None = None,
                  client_key: str | None = None) -> Settings:
    """Settings from ``source`` (``consul[s]://…`` or a file), or the built-in defaults when
    None; ``token``: the Consul ACL token (else the URL's ``token-file``, else
    ``$CONSUL_HTTP_TOKEN``); ``ca_file``: the CA bundle that verifies Consul's HTTPS
    certificate (else the URL's ``ca-file``, else ``$CONSUL_CACERT``); ``client_cert`` and
    ``client_key``: the client certificate sent to Consul (else the URL's, else
    ``$CONSUL_CLIENT_CERT`` and ``$CONSUL_CLIENT_KEY``).

    Raises ``SettingsError`` as :func:`aliecs_integration.settings.sources.load` does.
    """
    from aliecs_integration.host import declared_settings_keys
    from aliecs_integration.settings.sources import load

    if source is None or not source.strip():
        return Settings.from_dict({}, source="built-in defaults")
    return load(source, token=token, ca_file=ca_file, client_cert=client_cert,
                client_key=client_key, declared_keys=declared_settings_keys())


CONSUL_TOKEN_HELP = (
    "Consul ACL token; takes precedence over the URL's ?token-file=PATH, which takes "
    "precedence over $CONSUL_HTTP_TOKEN. Never printed."
)
CONSUL_CA_HELP = (
    "CA bundle (PEM) that verifies Consul's HTTPS certificate; implies HTTPS (as consuls://); "
    "takes precedence over the URL's ?ca-file=PATH, which takes precedence over "
    "$CONSUL_CACERT [default: the system's CA bundle]."
)
CONSUL_CLIENT_CERT_HELP = (
    "Client certificate (PEM) sent to Consul, for an agent with verify_incoming (mutual TLS); "
    "needs --consul-client-key; implies HTTPS; takes precedence over the URL's "
    "?client-cert=PATH, which takes precedence over $CONSUL_CLIENT_CERT."
)
CONSUL_CLIENT_KEY_HELP = (
    "Unencrypted private key (PEM) of --consul-client-cert; takes precedence over the URL's "
    "?client-key=PATH, which takes precedence over $CONSUL_CLIENT_KEY."
)


def consul_token_option(fn: Any) -> Any:
    """``--consul-token TOKEN``, ``--consul-ca PATH``, ``--consul-client-cert PATH`` and
    ``--consul-client-key PATH`` (parameters ``consul_token``, ``consul_ca``,
    ``consul_client_cert``, ``consul_client_key``). The environment (``$CONSUL_HTTP_TOKEN``,
    ``$CONSUL_CACERT``, ``$CONSUL_CLIENT_CERT``, ``$CONSUL_CLIENT_KEY``) is read by the
    library, after the URL's query, so that an explicit option wins over the URL and the URL
    over the environment."""
    fn = click.option("--consul-client-key", "consul_client_key", metavar="PATH",
                      help=CONSUL_CLIENT_KEY_HELP)(fn)
    fn = click.option("--consul-client-cert", "consul_client_cert", metavar="PATH",
                      help=CONSUL_CLIENT_CERT_HELP)(fn)
    fn = click.option("--consul-ca", "consul_ca", metavar="PATH", help=CONSUL_CA_HELP)(fn)
    return click.option("--consul-token", "consul_token", metavar="TOKEN",
                        help=CONSUL_TOKEN_HELP)(fn)


def settings_option(fn: Any) -> Any:
    """``--settings SOURCE`` (also ``$ALIECS_SETTINGS``) and :func:`consul_token_option`'s
    options."""
    return click.option(
        "--settings", "settings_source", metavar="SOURCE", envvar=SETTINGS_ENV,
        help=SETTINGS_HELP,
    )(consul_token_option(fn))


METRICS_OPTION = "--metrics-address"


def metrics_address_option(default: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--metrics-address HOST:PORT``: where to serve ``/metrics`` and ``/healthz`` ('' turns
    it off); checked when parsed (a malformed value is a usage error naming the option)."""

    def check(ctx: click.Context, param: click.Parameter, value: str) -> str:
        from aliecs_integration.monitoring.endpoint import parse_address

        try:
            parse_address(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx, param) from None
        return value

    return click.option(
        METRICS_OPTION, "metrics_address", metavar="HOST:PORT", default=default,
        show_default=bool(default), callback=check,
        help="Serve Prometheus metrics on http://HOST:PORT/metrics and the health check on "
             "/healthz ('' turns it off; port 0: any free port, printed at start; see "
             "docs/metrics.md).")


def metrics_error(exc: Exception) -> CliError:
    """The error of a metrics endpoint that cannot listen (an ``EndpointError``), naming
    :data:`METRICS_OPTION`; exit code 1."""
    address = getattr(exc, "address", "?")
    reason = getattr(exc, "reason", str(exc))
    return CliError(f"{METRICS_OPTION} {address}: cannot listen: {reason} (choose another "
                    f"address, or {METRICS_OPTION} '' to turn the endpoint off)")


def parse_pairs(values: Sequence[str], option: str, expected: str) -> dict[str, str]:
    """``KEY=VALUE`` option values as a dict (the key stripped, the value as given; a later key
    wins). Raises :class:`BadInput` ``<option> '<value>': expected <expected>`` for a value
    without ``=`` or with an empty key."""
    result: dict[str, str] = {}
    for text in values:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"{option} {text!r}: expected {expected}")
        result[key.strip()] = value
    return result


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces, header first (no trailing spaces)."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )
