"""The monitoring HTTP endpoint of ``serve`` and ``run``: ``/metrics`` and ``/healthz``.

- ``GET /metrics``: the :class:`~aliecs_integration.monitoring.collector.AliecsCollector`'s
  registry in the Prometheus text format (or OpenMetrics when the scraper asks for it),
  collected at the time of the request.
- ``GET /healthz``: a JSON body (:meth:`Health.as_dict
  <aliecs_integration.monitoring.health.Health.as_dict>`); HTTP 200 when healthy, 503 when the
  producer is not connected or the settings source is not reachable.

One daemon thread serves the socket and one short-lived thread each request (a silent
connection is closed after :data:`REQUEST_TIMEOUT_S`); :meth:`stop`
closes the socket and joins the serving thread. A failure to listen raises
:class:`EndpointError` naming the address and the reason.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from aliecs_integration.errors import AliecsError
from aliecs_integration.monitoring.collector import (
    AliecsCollector,
    EnvironmentsView,
    HostView,
    WatchSource,
    registry_for,
)
from aliecs_integration.monitoring.health import Health, check_health

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "127.0.0.1:9464"
"""The default of ``serve --metrics-address`` (9464: the port commonly used by exporters of
this kind)."""
OFF = ("", "off")
"""Address values that turn the endpoint off."""
REQUEST_TIMEOUT_S = 10.0
"""How long a connection may stay silent before it is closed."""


class EndpointError(AliecsError):
    """The endpoint cannot listen: bad address, address in use, host unknown. Exit code 1
    (``address`` and ``reason`` are kept for the caller to name its option)."""

    exit_code = 1

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"cannot serve metrics on {address}: {reason}")
        self.address, self.reason = address, reason


def parse_address(text: str) -> tuple[str, int] | None:
    """``HOST:PORT`` (``[IPv6]:PORT`` for an IPv6 address; port 0: any free port) as (host,
    port); None for a value of :data:`OFF`. Raises ``ValueError`` saying what is wrong."""
    value = text.strip()
    if value.lower() in OFF:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r}: expected HOST:PORT (e.g. {DEFAULT_ADDRESS}), or '' to turn "
                         "the endpoint off")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:9464")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: port {port!r} is not a number from 0 to 65535")
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"{text!r}: the host is empty or contains spaces")
    return host, int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, family: int, where: tuple[Any, ...], endpoint: MonitoringEndpoint) -> None:
        self.address_family = family
        self.endpoint = endpoint
        super().__init__(where, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "aliecs-integration"
    timeout = REQUEST_TIMEOUT_S  # a client that sends nothing does not keep its thread

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        endpoint = self.server.endpoint
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            try:
                body = encoder(endpoint.registry)
            except Exception as exc:
                log.exception("metrics scrape failed")
                self._send(500, "text/plain; charset=utf-8", f"scrape failed: {exc!r}\n".encode())
                return
            self._send(200, content_type, body)
        elif path == "/healthz":
            health = endpoint.health()
            body = json.dumps(health.as_dict(), indent=1).encode() + b"\n"
            self._send(200 if health.healthy else 503, "application/json", body)
        elif path == "/":
            self._send(200, "text/plain; charset=utf-8",
                       b"aliecs-integration: /metrics (Prometheus), /healthz (JSON)\n")
        else:
            self._send(404, "text/plain; charset=utf-8",
                       f"{path}: not found; try /metrics or /healthz\n".encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)


class MonitoringEndpoint:
    """Serves ``registry`` on ``/metrics`` and ``health()`` on ``/healthz`` at ``address``
    (see :func:`parse_address`). ``start()`` then ``stop()``; also a context manager."""

    def __init__(self, address: str, registry: CollectorRegistry,
                 health: Callable[[], Health]) -> None:
        parsed = parse_address(address)
        if parsed is None:
            raise ValueError(f"{address!r} turns the endpoint off: nothing to serve")
        self.requested = address
        self._host, self._port = parsed
        self.registry = registry
        self.health = health
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.address = address
        """Where it listens once started, as HOST:PORT (the port chosen when 0 was asked)."""

    def start(self) -> MonitoringEndpoint:
        """Listen and serve on a daemon thread. Raises :class:`EndpointError`."""
        try:
            family, _, _, _, where = socket.getaddrinfo(
                self._host, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        except socket.gaierror as exc:
            raise EndpointError(self.requested, f"unknown host {self._host!r} ({exc.strerror})"
                                ) from None
        try:
            server = _Server(family, where, self)
        except OSError as exc:
            raise EndpointError(self.requested, exc.strerror or str(exc)) from None
        bound, port = server.server_address[:2]
        host = bound.decode() if isinstance(bound, bytes) else str(bound)
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        self.address = f"{shown}:{port}"
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="metrics-http", daemon=True)
        self._thread.start()
        log.info("metrics on http://%s/metrics, health on http://%s/healthz", self.address,
                 self.address)
        return self

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop serving, close the socket, join the thread. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> MonitoringEndpoint:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def start_monitoring(address: str | None, host: HostView, environments: EnvironmentsView | None,
                     watch_status: WatchSource) -> MonitoringEndpoint | None:
    """The endpoint of a running process, started: our collector over ``host``,
    ``environments`` and ``watch_status``, and the health of the same. None when ``address``
    is None or turns the endpoint off. Raises :class:`EndpointError`, ``ValueError`` for a
    malformed address."""
    if address is None or parse_address(address) is None:
        return None
    registry = registry_for(AliecsCollector(host, environments, watch_status))

    def health() -> Health:
        return check_health(host.list_plugins(), watch_status())

    return MonitoringEndpoint(address, registry, health).start()
