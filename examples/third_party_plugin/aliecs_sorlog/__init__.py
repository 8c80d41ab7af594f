"""``sorlog``: an example third-party plugin for aliecs-integration.

It appends one JSON line per Start-of-Run / End-of-Run moment to the file named by the
settings key ``sorlogPath``, e.g.::

    {"moment": "SOR", "environmentId": "2oDvieFrVTi", "runNumber": 7, "transition":
     "START_ACTIVITY", "status": "STARTED", "state": "CONFIGURED", "error": "",
     "timestampMs": 1732540000123}

Enable it with::

    integrationPlugins: [sorlog]
    sorlogPath: /var/log/aliecs/sor-eor.jsonl

``sorlogPath`` is the plugin's endpoint setting: without it the host does not load the plugin
and says why (``aliecs-integration plugins``).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, ClassVar

from aliecs_integration import (
    ConnectionState,
    OpStatus,
    Plugin,
    PluginContext,
    RunEvent,
    hookimpl,
)

__all__ = ["PATH_SETTING", "SorLogPlugin", "moment_of", "record_of"]

PATH_SETTING = "sorlogPath"

_EOR_TRANSITIONS = frozenset({"STOP_ACTIVITY", "GO_ERROR", "TEARDOWN"})


def moment_of(event: RunEvent) -> str:
    """``SOR`` for START_ACTIVITY, ``EOR`` for STOP_ACTIVITY, GO_ERROR and TEARDOWN."""
    return "EOR" if event.transition in _EOR_TRANSITIONS else "SOR"


def record_of(event: RunEvent) -> dict[str, Any]:
    """The JSON object written for one run event (status as its name, e.g. ``DONE_OK``)."""
    return {
        "moment": moment_of(event),
        "environmentId": event.environment_id,
        "runNumber": event.run_number,
        "transition": event.transition,
        "status": OpStatus(event.status).name,
        "state": event.state,
        "error": event.error,
        "timestampMs": event.timestamp_ns // 1_000_000,
    }


class SorLogPlugin(Plugin):
    """Appends one JSON line per SOR/EOR moment to ``sorlogPath``.

    Thread-safe: environments run concurrently, so writes are serialised by a lock and each
    line is written and flushed whole. A write failure raises from the hook; the host reports
    it with the plugin's name and the run goes on.
    """

    pretty_name: ClassVar[str] = "SOR/EOR JSON-lines log"
    endpoint_setting: ClassVar[str | None] = PATH_SETTING

    def __init__(self, context: PluginContext) -> None:
        super().__init__(context)
        self.path = Path(str(context.settings.get(PATH_SETTING))).expanduser()
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def endpoint(self) -> str:
        return str(self.path)

    def connection_state(self) -> ConnectionState:
        writable = os.access(self.path if self.path.exists() else self.path.parent, os.W_OK)
        return ConnectionState.READY if writable else ConnectionState.TRANSIENT_FAILURE

    @hookimpl
    def on_run_sor_eor(self, event: RunEvent) -> None:
        line = json.dumps(record_of(event), sort_keys=False) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(line)
