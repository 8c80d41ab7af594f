"""The role tree of one environment and its aggregation rules.

Task and call roles hold their own value (a task role copies its task, a call role is ACTIVE
from DEPLOY to DESTROY and has no state: it stays UNKNOWN); an aggregator combines its critical
children (all children when none is critical): status any UNDEFINED -> UNDEFINED, all equal ->
that, else PARTIAL (ACTIVE with INACTIVE); state, over the children that have tasks below them,
any ERROR -> ERROR, all equal -> that, else MIXED. Initial values: UNDEFINED / UNKNOWN.
:meth:`RoleTree.update` returns only the values that changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from aliecs_integration.engine.workflow import AGGREGATOR, CALL, TASK, RoleSpec

UNDEFINED, UNKNOWN = "UNDEFINED", "UNKNOWN"


@attrs.frozen
class RoleChange:
    """One role's status or state changed (the other field is "")."""

    name: str
    path: str
    status: str = ""
    state: str = ""


class RoleTree:
    """Values of every role of one workflow; not thread-safe (the manager holds the
    environment's lock)."""

    def __init__(self, root: RoleSpec) -> None:
        self._root = root
        self._order = list(_post_order(root))
        self._values: dict[str, tuple[str, str]] = {r.path: (UNDEFINED, UNKNOWN)
                                                     for r in self._order}
        self._stateful = {r.path for r in self._order
                          if any(d.kind == TASK for d in r.walk())}
        self._ancestors: dict[str, tuple[str, ...]] = {}
        self._aggregators = [r for r in self._order if r.kind == AGGREGATOR and r.children]
        self._names = {r.path: r.name for r in self._order}
        for role in self._order:
            for child in role.children:
                self._ancestors[child.path] = (role.path,)
        for role in reversed(self._order):  # parents first: extend with their ancestors
            parent = self._ancestors.get(role.path, ())
            if parent:
                self._ancestors[role.path] = parent + self._ancestors.get(parent[0], ())

    def leaves(self, kind: str) -> list[RoleSpec]:
        """Task (``TASK``) or call (``CALL``) roles."""
        return [r for r in self._order if r.kind == kind]

    def value(self, path: str) -> tuple[str, str]:
        """(status, state) of the role at ``path``."""
        return self._values[path]

    def update(self, leaves: Mapping[str, tuple[str | None, str | None]]) -> list[RoleChange]:
        """Set leaf roles' (status, state) (None keeps a field), re-aggregate their ancestors;
        returns the changes: leaves in the order given, then aggregators bottom-up; status
        before state."""
        changes: list[RoleChange] = []
        values, names = self._values, self._names
        dirty: set[str] = set()
        for path, (status, state) in leaves.items():
            old = values[path]
            new = (status or old[0], state or old[1])
            if new == old:
                continue
            values[path] = new
            dirty.update(self._ancestors.get(path, ()))
            _record(changes, names[path], path, old, new)
        if dirty:
            for role in self._aggregators:
                if role.path in dirty:
                    old, new = values[role.path], self._aggregate(role)
                    if new != old:
                        values[role.path] = new
                        _record(changes, role.name, role.path, old, new)
        return changes

    def _aggregate(self, role: RoleSpec) -> tuple[str, str]:
        children = [c for c in role.children if c.critical] or list(role.children)
        statuses = {self._values[c.path][0] for c in children}
        stateful = [c for c in role.children if c.path in self._stateful]
        stateful = [c for c in stateful if c.critical] or stateful
        states = {self._values[c.path][1] for c in stateful} or {UNKNOWN}
        if UNDEFINED in statuses:
            status = UNDEFINED
        elif len(statuses) == 1:
            status = statuses.pop()
        else:
            status = "PARTIAL"
        if "ERROR" in states:
            state = "ERROR"
        elif len(states) == 1:
            state = states.pop()
        else:
            state = "MIXED"
        return status, state


def _record(changes: list[RoleChange], name: str, path: str, old: tuple[str, str],
            new: tuple[str, str]) -> None:
    if new[0] != old[0]:
        changes.append(RoleChange(name, path, status=new[0]))
    if new[1] != old[1]:
        changes.append(RoleChange(name, path, state=new[1]))


def _post_order(role: RoleSpec) -> Iterable[RoleSpec]:
    for child in role.children:
        yield from _post_order(child)
    yield role


__all__ = ["CALL", "TASK", "RoleChange", "RoleTree"]
