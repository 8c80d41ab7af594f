"""``serve``: the environment manager as a long-running gRPC service (``o2control.Control``).

Composition: settings -> plugin host -> environment manager -> :class:`ControlServicer` on a
grpcio server; core-kafka's published messages feed the :class:`EventFanout` of ``Subscribe``;
with a metrics address, the monitoring endpoint (``/metrics``, ``/healthz``) reads the host,
the manager and the settings watch (:mod:`aliecs_integration.monitoring.endpoint`).

One instance per run-number store: :class:`ControlServer` holds an exclusive ``flock`` on
``<run-number file>.serve.lock`` (with the holder's pid in it) for its whole life; a second
instance on the same store refuses to start naming the holder.

Shutdown (:meth:`ControlServer.shutdown`): stop accepting operations (UNAVAILABLE), wait for
the operations in progress to finish (up to ``drain_timeout_s``), flush the plugins, end the
``Subscribe`` streams after what they have queued, stop the gRPC server, close the manager,
stop the plugins, stop the monitoring endpoint; the :class:`ShutdownReport` says what was
delivered and what was not.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import grpc

from aliecs_integration.engine.manager import EnvironmentManager
from aliecs_integration.engine.run_numbers import RunNumberStore
from aliecs_integration.errors import AliecsError
from aliecs_integration.host import HostStopReport, PluginHost
from aliecs_integration.monitoring.collector import WatchSource, static_watch_status
from aliecs_integration.monitoring.endpoint import MonitoringEndpoint, start_monitoring
from aliecs_integration.pb import o2control_pb2
from aliecs_integration.service.fanout import EventFanout
from aliecs_integration.service.reload import ApplyReport, apply_settings
from aliecs_integration.service.servicer import ALICE_DETECTORS, ControlServicer
from aliecs_integration.service.templates import TemplateCatalog
from aliecs_integration.settings.core import Settings

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "127.0.0.1:32102"
"""The reference core's port."""
SERVICE = "o2control.Control"
CORE_PLUGIN = "core-kafka"


class ServeError(AliecsError):
    """``serve`` cannot start: the address is taken, another instance holds the run-number
    store, or the event stream cannot be tapped. Exit code 1."""

    exit_code = 1


class InstanceLock:
    """An exclusive, non-blocking ``flock`` on ``path`` holding the owner's pid."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, store: Path) -> None:
        """Raises :class:`ServeError` naming the holder's pid when another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ServeError(
                f"another aliecs-integration serve (pid {holder}) already uses the run-number "
                f"store {store} (lock {self.path}); stop it, or give this one its own store "
                "with --run-numbers") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@attrs.frozen
class ShutdownReport:
    """What shutdown saw: operations still running when the drain timed out, and the plugins'
    stop report (deliveries and failures)."""

    unfinished: tuple[str, ...]
    host: HostStopReport

    @property
    def undelivered(self) -> int:
        return self.host.undelivered

    @property
    def clean(self) -> bool:
        """Nothing unfinished, nothing undelivered, no delivery failures."""
        failed = sum(r.failed + r.dropped for r in self.host.deliveries.values())
        return not self.unfinished and not self.undelivered and not failed


def _handlers(servicer: ControlServicer) -> grpc.GenericRpcHandler:
    """Handlers of every RPC declared in ``o2control.proto``; Subscribe sends the published
    bytes as they are (identity serializer)."""
    service = o2control_pb2.DESCRIPTOR.services_by_name["Control"]
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in service.methods:
        request_cls: Any = getattr(o2control_pb2, method.input_type.name)
        function = getattr(servicer, method.name)
        if method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                function, request_deserializer=request_cls.FromString,
                response_serializer=lambda value: value)
        else:
            response_cls: Any = getattr(o2control_pb2, method.output_type.name)
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                function, request_deserializer=request_cls.FromString,
                response_serializer=response_cls.SerializeToString)
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


class _Unsupported(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Any other method of ``o2control.Control``: UNIMPLEMENTED, naming what is supported."""

    def __init__(self) -> None:
        names = [m.name for m in o2control_pb2.DESCRIPTOR.services_by_name["Control"].methods]
        self._supported = ", ".join(sorted(names))

    def service(self, handler_call_details: Any) -> grpc.RpcMethodHandler | None:
        method = str(handler_call_details.method)
        if not method.startswith(f"/{SERVICE}/"):
            return None
        name = method.rsplit("/", 1)[-1]
        message = (f"{SERVICE}/{name} is not supported by aliecs-integration; supported: "
                   f"{self._supported}")

        def refuse(request: bytes, context: grpc.ServicerContext) -> bytes:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, message)
            return b""

        return grpc.unary_unary_rpc_method_handler(refuse)


class ControlServer:
    """The running service. ``start()`` then ``shutdown()``; not restartable.

    ``extra_plugins`` are registered in the plugin host next to the discovered ones (tests).
    ``metrics_address`` (HOST:PORT, None or '' for none) serves ``/metrics`` and ``/healthz``;
    ``watch_status`` tells the state of the settings watch (default: settings read once from
    ``settings.source``).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        address: str = DEFAULT_ADDRESS,
        run_numbers: Path | None = None,
        template_dirs: tuple[Path, ...] = (),
        detectors: tuple[str, ...] = ALICE_DETECTORS,
        workers: int = 32,
        extra_plugins: Mapping[str, object] | None = None,
        metrics_address: str | None = None,
        watch_status: WatchSource | None = None,
    ) -> None:
        self.settings = settings
        self.address = address
        self.framework_id = ""
        """The plugin host's instance id once started (``coreStartEvent.frameworkId``)."""
        self._store = RunNumberStore(run_numbers)
        self._lock = InstanceLock(self._store.path.with_name(self._store.path.name + ".serve.lock"))
        self._templates = TemplateCatalog(template_dirs)
        self._detectors = detectors
        self._workers = workers
        self._extra = extra_plugins
        self._host: PluginHost | None = None
        self._manager: EnvironmentManager | None = None
        self._servicer: ControlServicer | None = None
        self._server: grpc.Server | None = None
        self._fanout = EventFanout()
        self.port = 0
        self._report: ShutdownReport | None = None
        self._metrics_address = metrics_address
        self._watch_status = watch_status or static_watch_status(settings.source)
        self.monitoring: MonitoringEndpoint | None = None
        """The running monitoring endpoint (its ``address`` is where it listens), or None."""

    @property
    def run_number_store(self) -> Path:
        return self._store.path

    def start(self) -> None:
        """Take the instance lock, start the plugins and the manager, listen on ``address``.
        Raises :class:`ServeError` (and releases what it took)."""
        self._lock.acquire(self._store.path)
        try:
            self._start()
        except BaseException:
            self._abandon()
            raise

    def _start(self) -> None:
        self._store.last()  # a corrupt store stops us now, not at the first run
        host = self._host = PluginHost(self.settings, extra_plugins=self._extra)
        self.framework_id = host.instance_id
        host.start()
        core = host.plugin(CORE_PLUGIN)
        add_listener = getattr(core, "add_event_listener", None)
        if add_listener is None:
            raise ServeError(f"plugin {CORE_PLUGIN} is not loaded: Subscribe would have no "
                             "events (see `aliecs-integration plugins`)")
        add_listener(self._fanout.publish)
        self._manager = EnvironmentManager(host, settings_runtime_vars=self.settings.runtime_vars,
                                           run_numbers=self._store,
                                           variable_defaults=host.variable_defaults())
        self._servicer = ControlServicer(
            self._manager, host, self._fanout, self._templates, framework_id=host.instance_id,
            configuration_endpoint=self.settings.source,
            detectors=self._detectors, max_subscribers=max(1, self._workers - 8))
        self.monitoring = start_monitoring(self._metrics_address, host, self._manager,
                                           self._watch_status)
        server = grpc.server(ThreadPoolExecutor(self._workers, thread_name_prefix="grpc"),
                             handlers=[_handlers(self._servicer), _Unsupported()])
        try:
            self.port = server.add_insecure_port(self.address)
        except RuntimeError as exc:
            raise ServeError(f"cannot listen on {self.address}: {exc} (is the address in use "
                             "by another process?)") from exc
        if self.port == 0:
            raise ServeError(f"cannot listen on {self.address} (is it in use by another "
                             "process?)")
        server.start()
        self._server = server
        log.info("serving %s on %s (framework id %s, run numbers %s)", SERVICE, self.address,
                 self.framework_id, self._store.path)

    def _abandon(self) -> None:
        if self.monitoring is not None:
            self.monitoring.stop()
        if self._server is not None:
            self._server.stop(0)
        if self._manager is not None:
            self._manager.close()
        if self._host is not None:
            self._host.stop(timeout_s=2.0)
        self._lock.release()

    def apply_settings(self, settings: Settings, *, flush_timeout_s: float = 10.0) -> ApplyReport:
        """Apply new, validated settings while serving, without stopping environments (see
        :func:`aliecs_integration.service.reload.apply_settings`). Raises :class:`ServeError`
        when the server is not running."""
        if self._host is None or self._manager is None or self._report is not None:
            raise ServeError("the server is not running: settings cannot be applied")
        report = apply_settings(self._host, self._manager, settings,
                                flush_timeout_s=flush_timeout_s)
        self.settings = settings
        return report

    def busy_operations(self) -> dict[str, str]:
        """Environment id -> operation in progress."""
        return self._servicer.busy_operations() if self._servicer is not None else {}

    def environment_count(self) -> int:
        return len(self._manager.list()) if self._manager is not None else 0

    def shutdown(self, *, drain_timeout_s: float = 60.0, flush_timeout_s: float = 10.0,
                 grace_s: float = 2.0) -> ShutdownReport:
        """Stop in order (see the module doc). Environments stay as they are (not destroyed);
        their events so far are flushed. A second call returns the first one's report."""
        if self._report is not None:
            return self._report
        assert self._servicer is not None and self._host is not None
        assert self._manager is not None and self._server is not None
        self._servicer.stop_accepting()
        unfinished = self._servicer.wait_idle(drain_timeout_s)
        if unfinished:
            log.error("shutdown: still running after %.0f s: %s", drain_timeout_s,
                      "; ".join(unfinished))
        self._host.flush(flush_timeout_s)
        self._fanout.close_all()
        self._server.stop(grace_s).wait()
        self._manager.close()
        report = self._host.stop(timeout_s=flush_timeout_s)
        if self.monitoring is not None:
            self.monitoring.stop()
        self._lock.release()
        self._report = ShutdownReport(tuple(unfinished), report)
        return self._report
