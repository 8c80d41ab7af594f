"""A client of the control API (``o2control.Control``), for the CLI and for tests.

Every call raises :class:`ControlError` for a gRPC failure: the message is the server's (or,
when the server cannot be reached, one naming the address), ``code`` is the gRPC status and
``exit_code`` is 2 for a request the server calls bad (unknown environment or template,
malformed request) and 1 otherwise.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Generator, Mapping, Sequence
from typing import Any

import grpc

from aliecs_integration.errors import AliecsError
from aliecs_integration.pb import common_pb2, events_pb2, o2control_pb2, o2control_pb2_grpc

DEFAULT_SERVER = "127.0.0.1:32102"
SERVER_ENV = "ALIECS_SERVER"
_STREAM_BUFFER = 1000
"""Messages read ahead of the consumer of a Subscribe stream."""
_BAD_REQUEST = {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT}

TRANSITIONS = {
    name: number for name, number in
    o2control_pb2.ControlEnvironmentRequest.Optype.items() if name != "NOOP"
}
"""Transition name -> ControlEnvironment type."""


class ControlError(AliecsError):
    """A control API call failed; ``code`` is the gRPC status code."""

    def __init__(self, message: str, code: grpc.StatusCode) -> None:
        super().__init__(message)
        self.code = code
        self.exit_code = 2 if code in _BAD_REQUEST else 1


def _error(exc: grpc.RpcError, server: str) -> ControlError:
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (exc.details() if isinstance(exc, grpc.Call) else "") or ""
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and (
        "connect" in details.lower() or code == grpc.StatusCode.DEADLINE_EXCEEDED
    ):
        return ControlError(f"cannot reach the control server at {server} ({code.name}: "
                            f"{' '.join(details.split())}); is `aliecs-integration serve` "
                            "running there?", code)
    return ControlError(f"{code.name}: {details}", code)


class ControlClient:
    """Talks to ``serve`` at ``server`` (``HOST:PORT``). Use as a context manager or close()."""

    def __init__(self, server: str = DEFAULT_SERVER, *, timeout_s: float = 120.0) -> None:
        self.server = server
        self._timeout = timeout_s
        self._channel = grpc.insecure_channel(server)
        self._stub: Any = o2control_pb2_grpc.ControlStub(self._channel)  # type: ignore[no-untyped-call]

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self._stub, method)(request, timeout=self._timeout,
                                               wait_for_ready=False)
        except grpc.RpcError as exc:
            raise _error(exc, self.server) from None

    @staticmethod
    def _user(name: str) -> common_pb2.User | None:
        return common_pb2.User(name=name) if name else None

    def framework_info(self) -> Any:
        return self._call("GetFrameworkInfo", o2control_pb2.GetFrameworkInfoRequest())

    def environments(self) -> list[Any]:
        reply = self._call("GetEnvironments", o2control_pb2.GetEnvironmentsRequest(showAll=True))
        return list(reply.environments)

    def environment(self, env_id: str, *, tree: bool = False) -> Any:
        return self._call("GetEnvironment",
                          o2control_pb2.GetEnvironmentRequest(id=env_id, showWorkflowTree=tree))

    def create(
        self, workflow: str, *, detectors: Sequence[str] = (),
        variables: Mapping[str, str] | None = None, asynchronous: bool = False,
        auto_transition: bool = False, user: str = "",
    ) -> Any:
        """NewEnvironment (or NewEnvironmentAsync); returns the EnvironmentInfo."""
        vars_ = dict(variables or {})
        if detectors:
            vars_["detectors"] = ",".join(detectors)
        request = o2control_pb2.NewEnvironmentRequest(
            workflowTemplate=workflow, vars=vars_, autoTransition=auto_transition,
            requestUser=self._user(user))
        method = "NewEnvironmentAsync" if asynchronous else "NewEnvironment"
        return self._call(method, request).environment

    def control(self, env_id: str, transition: str, *, user: str = "") -> Any:
        """ControlEnvironment; ``transition`` is a name (DEPLOY, START_ACTIVITY, ...)."""
        number = TRANSITIONS.get(transition.upper())
        if number is None:
            raise ControlError(f"unknown transition {transition!r}; one of: "
                               f"{', '.join(TRANSITIONS)}", grpc.StatusCode.INVALID_ARGUMENT)
        return self._call("ControlEnvironment", o2control_pb2.ControlEnvironmentRequest(
            id=env_id, type=number, requestUser=self._user(user)))  # type: ignore[arg-type]

    def destroy(self, env_id: str, *, force: bool = False, allow_running: bool = False,
                user: str = "") -> Any:
        return self._call("DestroyEnvironment", o2control_pb2.DestroyEnvironmentRequest(
            id=env_id, force=force, allowInRunningState=allow_running,
            requestUser=self._user(user)))

    def templates(self) -> list[Any]:
        reply = self._call("GetWorkflowTemplates", o2control_pb2.GetWorkflowTemplatesRequest())
        return list(reply.workflowTemplates)

    def tasks(self) -> list[Any]:
        return list(self._call("GetTasks", o2control_pb2.GetTasksRequest()).tasks)

    def roles(self, env_id: str) -> list[Any]:
        return list(self._call("GetRoles", o2control_pb2.GetRolesRequest(envId=env_id)).roles)

    def active_detectors(self) -> list[str]:
        return list(self._call("GetActiveDetectors", o2control_pb2.Empty()).detectors)

    def integrated_services(self) -> dict[str, Any]:
        return dict(self._call("GetIntegratedServices", o2control_pb2.Empty()).services)

    def subscribe(self, env_id: str = "") -> Generator[events_pb2.Event, None, None]:
        """The Subscribe stream, decoded; ends when the server ends it (raises ControlError
        for a failure). Cancel by closing the iterator (``.close()``)."""
        for raw in self.subscribe_raw(env_id):
            yield events_pb2.Event.FromString(raw)

    def subscribe_raw(
        self, env_id: str = "", ready: threading.Event | None = None,
    ) -> Generator[bytes, None, None]:
        """The Subscribe stream as the serialized bytes the server sent. Once iteration has
        started, ``ready`` is set when the server has registered the subscription (every event
        published from then on will come). The stream is read by a helper thread, so the
        iterating thread stays interruptible (Ctrl-C); closing the generator cancels the call."""
        call = self._channel.unary_stream(
            "/o2control.Control/Subscribe",
            request_serializer=o2control_pb2.SubscribeRequest.SerializeToString,
            response_deserializer=lambda value: value,
        )(o2control_pb2.SubscribeRequest(id=env_id))
        items: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=_STREAM_BUFFER)
        stop = threading.Event()

        def put(item: tuple[str, Any]) -> None:
            while not stop.is_set():
                try:
                    items.put(item, timeout=0.2)
                    return
                except queue.Full:
                    continue

        def pump() -> None:
            try:
                call.initial_metadata()  # the server sends it once subscribed
                put(("ready", None))
                for value in call:
                    put(("value", value))
                put(("end", None))
            except grpc.RpcError as exc:
                put(("error", exc))

        threading.Thread(target=pump, name="subscribe", daemon=True).start()
        try:
            while True:
                try:
                    kind, item = items.get(timeout=0.2)
                except queue.Empty:
                    continue
                if kind == "ready":
                    if ready is not None:
                        ready.set()
                elif kind == "value":
                    yield item
                elif kind == "end" or item.code() == grpc.StatusCode.CANCELLED:
                    return
                else:
                    raise _error(item, self.server)
        finally:
            stop.set()
            call.cancel()


def wait_for_server(server: str, timeout_s: float) -> None:
    """Return once ``serve`` at ``server`` answers GetFrameworkInfo; raises ControlError after
    ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with ControlClient(server, timeout_s=2.0) as client:
                client.framework_info()
                return
        except ControlError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
