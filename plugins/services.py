"""Simulated integrated services: ``trg``, ``dcs``, ``odc`` and ``ddsched`` plugins whose call
functions report their operations the way the reference's services do, without talking to any
real service. They make the demo and the consumer tests exercise the integrated-service topics
exactly as ALICE Bookkeeping and the Control GUI read them.

Loaded like any optional plugin (name in ``integrationPlugins``; no endpoint needed). Each call
reports, through :meth:`CallContext.report_operation
<aliecs_integration.records.CallContext.report_operation>`, events named after the calling
role's path with the call text as operation name, a step and its status on every event, and a
JSON payload on every event:

- ``trg.PrepareForRun()``, ``RunLoad()``, ``RunStart()``, ``RunStop()``, ``RunUnload()``,
  ``EnsureRunStop()`` (a RunStop only when a run was started and not stopped): step
  ``perform TRG call: <Operation>``; STARTED/STARTED with ``{"trgRequest": ...}``, then
  DONE_OK/DONE_OK with ``trgResponse`` added. ``trgRequest.runn`` is the run number
  (``run_number``, else ``last_run_number``, else 0) on every event.
- ``dcs.PrepareForRun()``, ``StartOfRun()``, ``EndOfRun()``: step ``acquire detectors
  availability`` (STARTED, then DONE_OK), then ``perform DCS call: <Operation>`` with one ONGOING
  event per detector (``detector``, ``state``, ``dcsEvent``), then the final status; the
  payload always has ``detectors`` and, with a run, ``runNumber``.
- ``odc.Configure()``, ``Start()``, ``Stop()``, ``Reset()``: step ``perform ODC call:
  <Operation>`` with ``odcRequest``, one ``odc.partitionStateChanged`` event (payload ``state``),
  then DONE_OK with ``odcResponse``.
- ``ddsched.PartitionInitialize()``, ``PartitionTerminate()``: steps ``perform DD scheduler
  call: <Operation>`` and ``poll for DD partition state``.

A failure is requested through the environment's variables: ``<service>_fail_<Operation>``
(e.g. ``trg_fail_RunLoad: "no configuration for ZDC"``) makes that call report DONE_ERROR (trg:
``response code 3 from TRG: <text>``) and fail.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from aliecs_integration.hookspecs import hookimpl
from aliecs_integration.plugin import Plugin, nonblocking
from aliecs_integration.records import CallContext, CallFunction, OpStatus

Payload = dict[str, Any]

STARTED, ONGOING, DONE_OK, DONE_ERROR = (
    OpStatus.STARTED, OpStatus.ONGOING, OpStatus.DONE_OK, OpStatus.DONE_ERROR)


class ServiceCallError(RuntimeError):
    """The simulated service refused the operation (as requested by a variable)."""


def run_number(ctx: CallContext) -> int:
    """The active run's number, else the last one, else 0."""
    variables = ctx.environment.variables
    for name in ("run_number", "last_run_number"):
        value = variables.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


def detectors(ctx: CallContext) -> list[str]:
    try:
        found = json.loads(ctx.environment.variables.get("detectors", "[]"))
    except ValueError:
        return list(ctx.environment.detectors)
    return [str(d) for d in found] if isinstance(found, list) else []


class SimulatedService(Plugin):
    """Base: exports one call function per operation; subclasses implement :meth:`perform`."""

    service: ClassVar[str] = ""
    operations: ClassVar[tuple[str, ...]] = ()

    @hookimpl
    def register_call_functions(self) -> Mapping[str, CallFunction]:
        return {op: self._function(op) for op in self.operations}

    def _function(self, operation: str) -> CallFunction:
        @nonblocking
        def call(ctx: CallContext) -> str:
            failure = ctx.environment.variables.get(f"{self.service}_fail_{operation}", "")
            self.perform(operation, ctx, failure)
            return ""

        return call

    def perform(self, operation: str, ctx: CallContext, failure: str) -> None:
        raise NotImplementedError

    def report(self, ctx: CallContext, status: OpStatus, step: str, step_status: OpStatus,
               payload: Payload, *, error: str = "", name: str = "") -> None:
        ctx.report_operation(self.service, status, step=step, step_status=step_status,
                             payload=payload, error=error, name=name)


class TrgService(SimulatedService):
    """``trg``: the trigger system (Bookkeeping reads ``trgRequest.runn`` on every event)."""

    pretty_name = "TRG (simulated)"
    service = "trg"
    operations = ("PrepareForRun", "RunLoad", "RunStart", "RunStop", "RunUnload",
                  "EnsureRunStop")

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._running: set[str] = set()
        self._lock = threading.Lock()

    def perform(self, operation: str, ctx: CallContext, failure: str) -> None:
        env_id = ctx.environment.id
        with self._lock:
            if operation == "EnsureRunStop" and env_id not in self._running:
                return  # nothing to stop: no event
            if operation in ("RunStop", "EnsureRunStop"):
                self._running.discard(env_id)
        step = f"perform TRG call: {operation}"
        request: Payload = {"runn": run_number(ctx), "detectors": ",".join(detectors(ctx))}
        if operation in ("PrepareForRun", "RunLoad"):
            request["config"] = ctx.environment.variables.get("run_type", "")
        self.report(ctx, STARTED, step, STARTED, {"trgRequest": request})
        if failure:
            error = f"response code 3 from TRG: {failure}"
            self.report(ctx, DONE_ERROR, step, DONE_ERROR, {
                "trgRequest": request, "trgResponse": {"rc": 3, "msg": failure}}, error=error)
            raise ServiceCallError(error)
        if operation == "RunStart":
            with self._lock:
                self._running.add(env_id)
        self.report(ctx, DONE_OK, step, DONE_OK, {
            "trgRequest": request, "trgResponse": {"rc": 0, "msg": "OK"}})


_DCS_EVENTS = {"PrepareForRun": ("PFR_SUCCESS", "PFR_AVAILABLE"),
               "StartOfRun": ("SOR_SUCCESS", "RUN_OK"),
               "EndOfRun": ("EOR_SUCCESS", "READY")}


class DcsService(SimulatedService):
    """``dcs``: the detector control system (the GUI filters on the role path and reads
    ``payload.dcsEvent``)."""

    pretty_name = "DCS (simulated)"
    service = "dcs"
    operations = tuple(_DCS_EVENTS)

    def perform(self, operation: str, ctx: CallContext, failure: str) -> None:
        found = detectors(ctx)
        base: Payload = {"detectors": found}
        if run_number(ctx):
            base["runNumber"] = run_number(ctx)
        acquire, step = "acquire detectors availability", f"perform DCS call: {operation}"
        self.report(ctx, STARTED, acquire, STARTED, base)
        self.report(ctx, ONGOING, acquire, DONE_OK, base)
        event, state = _DCS_EVENTS[operation]
        for index, detector in enumerate(found):
            failed = bool(failure) and index == len(found) - 1
            self.report(ctx, ONGOING, step, DONE_ERROR if failed else ONGOING, {
                **base, "detector": detector, "state": "ERROR" if failed else state,
                "dcsEvent": event.replace("SUCCESS", "FAILURE") if failed else event})
        if failure:
            self.report(ctx, DONE_ERROR, step, DONE_ERROR, base, error=failure)
            raise ServiceCallError(failure)
        self.report(ctx, DONE_OK, step, DONE_OK, base)


_ODC_STATES = {"Configure": "READY", "Start": "RUNNING", "Stop": "READY", "Reset": "IDLE"}


class OdcService(SimulatedService):
    """``odc``: the online device control (the GUI reads ``odc.partitionStateChanged``)."""

    pretty_name = "ODC (simulated)"
    service = "odc"
    operations = tuple(_ODC_STATES)

    def perform(self, operation: str, ctx: CallContext, failure: str) -> None:
        step = f"perform ODC call: {operation}"
        request: Payload = {"partitionId": ctx.environment.id, "runNumber": run_number(ctx)}
        self.report(ctx, STARTED, step, STARTED, {"odcRequest": request})
        if failure:
            self.report(ctx, DONE_ERROR, step, DONE_ERROR, {
                "odcRequest": request, "odcResponse": {"error": failure}}, error=failure)
            raise ServiceCallError(failure)
        state = _ODC_STATES[operation]
        self.report(ctx, ONGOING, step, ONGOING, {"state": state},
                    name="odc.partitionStateChanged")
        self.report(ctx, DONE_OK, step, DONE_OK, {
            "odcRequest": request, "odcResponse": {"state": state, "msg": "OK"}})


class DdschedService(SimulatedService):
    """``ddsched``: the data distribution scheduler."""

    pretty_name = "DD scheduler (simulated)"
    service = "ddsched"
    operations = ("PartitionInitialize", "PartitionTerminate")

    def perform(self, operation: str, ctx: CallContext, failure: str) -> None:
        step, poll = f"perform DD scheduler call: {operation}", "poll for DD partition state"
        request: Payload = {"partitionId": ctx.environment.id, "detectors": detectors(ctx)}
        self.report(ctx, STARTED, step, STARTED, {"request": request})
        if failure:
            self.report(ctx, DONE_ERROR, step, DONE_ERROR, {"request": request}, error=failure)
            raise ServiceCallError(failure)
        self.report(ctx, ONGOING, step, DONE_OK, {"request": request})
        state = "PARTITION_CONFIGURED" if operation == "PartitionInitialize" else "PARTITION_IDLE"
        self.report(ctx, ONGOING, poll, ONGOING, {"request": request, "state": state})
        self.report(ctx, DONE_OK, poll, DONE_OK, {"request": request, "state": state})


SERVICES: Mapping[str, Callable[[Any], SimulatedService]] = {
    "trg": TrgService, "dcs": DcsService, "odc": OdcService, "ddsched": DdschedService}
"""Plugin name -> class (each is also an entry point under that name)."""
