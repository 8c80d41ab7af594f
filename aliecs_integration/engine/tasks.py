"""Tasks: the processes an environment's task roles run, behind a small interface
(:class:`TaskScheduler`) so that a real scheduler could replace the built-in model.

The built-in :class:`LocalTasks` models the reference's task life cycle without running anything:
DEPLOY launches one task per task role (state LAUNCHED, status INACTIVE, then STANDBY/ACTIVE),
CONFIGURE/START_ACTIVITY/STOP_ACTIVITY/RESET move every task to CONFIGURED/RUNNING/CONFIGURED/
STANDBY, GO_ERROR stops RUNNING tasks (CONFIGURED), RECOVER brings them back to STANDBY, and
DESTROY releases them (status INACTIVE, state DONE). A task can be made to fail (state ERROR).
"""

from __future__ import annotations

import base64
import secrets
import socket
import threading
from collections.abc import Sequence
from typing import Protocol

import attrs


@attrs.frozen
class TaskRequest:
    """One task role to deploy: its path, its parent role's path, the task's class name
    (``<repository>/tasks/<class>@<revision>``), the wanted host ("" = any) and criticality."""

    role_path: str
    parent_path: str
    class_name: str
    host: str = ""
    critical: bool = True


@attrs.frozen
class Task:
    """A task as it is at one moment. ``name`` is ``<class_name>#<task_id>``."""

    task_id: str
    class_name: str
    hostname: str
    state: str
    status: str
    role_path: str
    parent_path: str
    critical: bool
    environment_id: str

    @property
    def name(self) -> str:
        return f"{self.class_name}#{self.task_id}"

    def moved(self, state: str, status: str | None = None) -> Task:
        """This task in ``state`` (and ``status``)."""
        return Task(self.task_id, self.class_name, self.hostname, state,
                    self.status if status is None else status, self.role_path, self.parent_path,
                    self.critical, self.environment_id)


class TaskScheduler(Protocol):
    """What the environment manager needs from whatever runs tasks. Every method returns the
    tasks whose state or status changed, in the order they changed (one entry per change)."""

    def deploy(self, environment_id: str, requests: Sequence[TaskRequest]) -> Sequence[Task]:
        """Launch one task per request."""
        ...

    def transition(self, environment_id: str, transition: str) -> Sequence[Task]:
        """Move the environment's tasks as ``transition`` requires."""
        ...

    def fail(self, environment_id: str, role_path: str) -> Sequence[Task]:
        """Put the task of ``role_path`` in ERROR; raises ``KeyError`` when there is none."""
        ...

    def release(self, environment_id: str) -> Sequence[Task]:
        """Release every task of the environment (status INACTIVE, state DONE)."""
        ...


_TARGET = {"CONFIGURE": "CONFIGURED", "START_ACTIVITY": "RUNNING",
           "STOP_ACTIVITY": "CONFIGURED", "RESET": "STANDBY", "RECOVER": "STANDBY"}
"""Transition -> the state every (non-failed) task goes to."""


def task_state_after(transition: str, state: str) -> str:
    """The state a task (or call role) in ``state`` reaches through ``transition``."""
    if transition == "DEPLOY":
        return "STANDBY"
    if transition == "GO_ERROR":
        return "CONFIGURED" if state == "RUNNING" else state
    if transition == "RECOVER" or state != "ERROR":
        return _TARGET.get(transition, state)
    return state


def _new_task_id() -> str:
    return base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()[:16]


class LocalTasks:
    """The built-in :class:`TaskScheduler`: tasks on this host (or the requested one), in
    memory. Thread-safe."""

    def __init__(self, hostname: str | None = None) -> None:
        self._hostname = hostname or socket.gethostname()
        self._tasks: dict[str, dict[str, Task]] = {}
        self._lock = threading.Lock()

    def deploy(self, environment_id: str, requests: Sequence[TaskRequest]) -> Sequence[Task]:
        launched = [
            Task(_new_task_id(), r.class_name, r.host or self._hostname, "LAUNCHED", "INACTIVE",
                 r.role_path, r.parent_path, r.critical, environment_id)
            for r in requests
        ]
        running = [attrs.evolve(t, state="STANDBY", status="ACTIVE") for t in launched]
        with self._lock:
            self._tasks[environment_id] = {t.role_path: t for t in running}
        return [*launched, *running]

    def transition(self, environment_id: str, transition: str) -> Sequence[Task]:
        changed = []
        with self._lock:
            tasks = self._tasks.get(environment_id, {})
            for path, task in tasks.items():
                state = task_state_after(transition, task.state)
                if state != task.state:
                    tasks[path] = task = task.moved(state)
                    changed.append(task)
        return changed

    def fail(self, environment_id: str, role_path: str) -> Sequence[Task]:
        with self._lock:
            tasks = self._tasks.get(environment_id, {})
            task = tasks.get(role_path)
            if task is None:
                known = ", ".join(sorted(tasks)) or "none (not deployed)"
                raise KeyError(f"environment {environment_id}: no task for role {role_path!r}; "
                               f"tasks: {known}")
            if task.state == "ERROR":
                return []
            tasks[role_path] = attrs.evolve(task, state="ERROR")
            return [tasks[role_path]]

    def release(self, environment_id: str) -> Sequence[Task]:
        with self._lock:
            tasks = self._tasks.pop(environment_id, {})
        return [attrs.evolve(t, state="DONE", status="INACTIVE") for t in tasks.values()]
