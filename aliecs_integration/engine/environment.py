"""An environment: id, detectors, run type, variables and FSM state (no behaviour of its own).

Variables resolve in four layers, highest first:

1. *managed* variables, set by the environment manager and by call return values:
   ``environment_id``, ``detectors`` (JSON array), ``run_type``, ``enter_state_time_ms``,
   ``run_number`` (while a run is active), ``last_run_number`` and the run timing variables
   ``run_start_time_ms``, ``run_start_completion_time_ms``, ``run_end_time_ms``,
   ``run_end_completion_time_ms``; a call additionally sees the ``__call_*`` variables;
2. per-environment *user* variables (given at creation, e.g. ``dcs_enabled: true``);
3. *runtime* defaults from the configuration store (``o2/runtime/aliecs/vars/<name>``);
4. *built-in* defaults: the workflow's ``defaults`` over the defaults the loaded plugins
   declare (``Plugin.variable_defaults``).

Users may not set managed names (a clear ``ValueError``). Mutations are guarded by a short
internal lock (never held while hooks or calls run), so :meth:`Environment.snapshot` can be taken
from any thread; snapshots are cached until the next mutation.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import cast

from aliecs_integration.engine.fsm import State
from aliecs_integration.records import EnvironmentSnapshot, User, WorkflowTemplate

RUN_TIMING_VARIABLES = (
    "run_start_time_ms",
    "run_start_completion_time_ms",
    "run_end_time_ms",
    "run_end_completion_time_ms",
)
MANAGED_VARIABLES = frozenset(
    {"environment_id", "detectors", "run_type", "enter_state_time_ms", "run_number",
     "last_run_number", *RUN_TIMING_VARIABLES}
)
CALL_VARIABLE_PREFIX = "__call_"


def new_environment_id() -> str:
    """A short random id like AliECS's: 12 base32 characters (60 random bits)."""
    return base64.b32encode(secrets.token_bytes(8)).decode("ascii")[:12]


def _check_user_vars(variables: Mapping[str, str]) -> dict[str, str]:
    result = {}
    for name, value in variables.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"environment variable names must be non-empty strings, got {name!r}")
        if name in MANAGED_VARIABLES or name.startswith(CALL_VARIABLE_PREFIX):
            raise ValueError(
                f"environment variable {name!r} is set by the environment manager and cannot be "
                "given by the user"
            )
        if not isinstance(value, str):
            raise ValueError(
                f"environment variable {name!r}: expected a string value, got "
                f"{type(value).__name__} {value!r} (write booleans as 'true'/'false')"
            )
        result[name] = value
    return result


def _check_detectors(detectors: Iterable[str]) -> tuple[str, ...]:
    if isinstance(detectors, str):
        raise ValueError(f"detectors must be a list of names, got the string {detectors!r}")
    result = tuple(detectors)
    for name in result:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"detector names must be non-empty strings, got {name!r}")
    duplicates = sorted({d for d in result if result.count(d) > 1})
    if duplicates:
        raise ValueError(f"detectors listed twice: {', '.join(duplicates)}")
    return result


class Environment:
    """One environment's data. Owned by the manager, which serialises transitions; the
    accessors here are safe to call from any thread.

    Raises ``ValueError`` at construction for malformed detectors or user variables.
    """

    def __init__(
        self,
        env_id: str,
        *,
        detectors: Iterable[str] = (),
        run_type: str = "",
        user_vars: Mapping[str, str] | None = None,
        runtime_vars: Mapping[str, str] | None = None,
        defaults: Mapping[str, str] | None = None,
        workflow: WorkflowTemplate | None = None,
        user: User | None = None,
        plugin_defaults: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(run_type, str):
            raise ValueError(f"run_type must be a string, got {run_type!r}")
        self.id = env_id
        self.detectors = _check_detectors(detectors)
        self.run_type = run_type
        self.workflow = workflow
        self._user = _check_user_vars(user_vars or {})
        self._plugin_defaults = dict(plugin_defaults or {})
        self._runtime = dict(runtime_vars or {})
        self._defaults = dict(defaults or {})
        self._base = {**self._plugin_defaults, **self._defaults, **self._runtime, **self._user}
        self._managed: dict[str, str] = {
            "environment_id": env_id,
            "detectors": json.dumps(list(self.detectors), separators=(",", ":")),
            "run_type": run_type,
        }
        self._state: str = State.PENDING
        self._run_number: int | None = None
        self._last_request_user = user
        self._lock = threading.Lock()
        self._variables: MappingProxyType[str, str] | None = None
        self._snapshot: EnvironmentSnapshot | None = None

    # ------------------------------------------------------------------ reading

    @property
    def state(self) -> str:
        return self._state

    @property
    def run_number(self) -> int | None:
        """The active run's number, None when no run is active."""
        return self._run_number

    @property
    def last_request_user(self) -> User | None:
        return self._last_request_user

    @property
    def user_vars(self) -> Mapping[str, str]:
        return MappingProxyType(self._user)

    def get(self, name: str) -> str | None:
        """One consolidated variable, None when unset."""
        return self.variables().get(name)

    def variables(self) -> Mapping[str, str]:
        """All consolidated variables (read-only; cached until the next change)."""
        variables = self._variables
        if variables is None:
            with self._lock:
                variables = self._consolidated()
        return variables

    def _consolidated(self) -> MappingProxyType[str, str]:
        # caller holds self._lock
        variables = self._variables
        if variables is None:
            variables = self._variables = MappingProxyType({**self._base, **self._managed})
        return variables

    def snapshot(self) -> EnvironmentSnapshot:
        """This environment now, as an immutable record (cached until the next change)."""
        snap = self._snapshot
        if snap is None:
            with self._lock:
                snap = self._snapshot = EnvironmentSnapshot(
                    id=self.id, state=self._state, detectors=self.detectors,
                    run_type=self.run_type, run_number=self._run_number,
                    variables=self._consolidated(), last_request_user=self._last_request_user,
                    workflow=self.workflow,
                )
        return snap

    def snapshot_with(self, extra: Mapping[str, str]) -> EnvironmentSnapshot:
        """A snapshot whose variables also hold ``extra`` (the ``__call_*`` variables of a call)."""
        snap = self.snapshot()
        # the snapshot's variables are a read-only view of a dict (see _consolidated): copy
        # the dict itself (copying the view would look every key up)
        variables = cast("MappingProxyType[str, str]", snap.variables).copy()
        variables.update(extra)
        return EnvironmentSnapshot(
            id=snap.id, state=snap.state, detectors=snap.detectors, run_type=snap.run_type,
            run_number=snap.run_number, variables=MappingProxyType(variables),
            last_request_user=snap.last_request_user, workflow=snap.workflow,
        )

    # ------------------------------------------------------------------ changing (manager only)

    def _changed(self) -> None:
        self._variables = None
        self._snapshot = None

    def set_state(self, state: str, now_ns: int) -> None:
        """Enter ``state``: sets ``enter_state_time_ms`` from ``now_ns``."""
        with self._lock:
            self._state = state
            self._managed["enter_state_time_ms"] = str(now_ns // 1_000_000)
            self._changed()

    def apply_workflow(self, defaults: Mapping[str, str], workflow: WorkflowTemplate) -> None:
        """The workflow was loaded: its defaults and template info apply from now on."""
        with self._lock:
            self.workflow = workflow
            self._defaults = dict(defaults)
            self._base = {**self._plugin_defaults, **self._defaults, **self._runtime, **self._user}
            self._changed()

    def set_defaults(self, runtime_vars: Mapping[str, str],
                     plugin_defaults: Mapping[str, str]) -> None:
        """New runtime defaults (layer 3) and plugin defaults (layer 4) from live settings:
        they apply from the next read of the variables (the next call, the next event); the
        user and managed variables still take precedence."""
        with self._lock:
            self._runtime = dict(runtime_vars)
            self._plugin_defaults = dict(plugin_defaults)
            self._base = {**self._plugin_defaults, **self._defaults, **self._runtime, **self._user}
            self._changed()

    def set_var(self, name: str, value: str) -> None:
        """Set a managed variable (or a call's return variable)."""
        with self._lock:
            self._managed[name] = value
            self._changed()

    def unset_var(self, name: str) -> None:
        with self._lock:
            if self._managed.pop(name, None) is not None:
                self._changed()

    def start_run(self, run_number: int, now_ns: int) -> None:
        """Run active: ``run_number`` and ``run_start_time_ms`` set, older completion/end times
        cleared."""
        with self._lock:
            self._run_number = run_number
            self._managed["run_number"] = str(run_number)
            self._managed["run_start_time_ms"] = str(now_ns // 1_000_000)
            for name in RUN_TIMING_VARIABLES[1:]:
                self._managed.pop(name, None)
            self._changed()

    def end_run(self, *, keep_variable: bool = False) -> None:
        """No run active any more: ``last_run_number`` kept, ``run_number`` removed (kept as a
        variable with ``keep_variable``: a teardown's calls still see it)."""
        with self._lock:
            if self._run_number is not None:
                self._managed["last_run_number"] = str(self._run_number)
            self._run_number = None
            if not keep_variable:
                self._managed.pop("run_number", None)
            self._changed()

    def set_time_var(self, name: str, now_ns: int, *, only_if_unset: bool = False) -> bool:
        """Set ``name`` to ``now_ns`` in ms; returns whether it was set."""
        with self._lock:
            if only_if_unset and self._managed.get(name):
                return False
            self._managed[name] = str(now_ns // 1_000_000)
            self._changed()
            return True

    def set_last_request_user(self, user: User | None) -> None:
        if user is None:
            return
        with self._lock:
            self._last_request_user = user
            self._changed()
