"""Workflows: the calls an environment makes at its transition steps, and their defaults.

A workflow is a name, a description, the path it was loaded from, default variables and a list of
:class:`CallSpec`. YAML form (every key but ``name`` optional; unknown keys are errors)::

    name: readout
    description: what it is for
    defaults:                      # variable defaults (below user and runtime vars)
      kafka_enabled: false
    calls:
      - func: kafka.PublishEnterStateUpdate()   # <plugin>.<Function>(<args>)
        trigger: enter_CONFIGURED               # step name [+-weight], e.g. enter_RUNNING-10
        timeout: 5s                             # seconds (number) or "500ms" / "5s" / "1m"
        critical: false
        enabled: kafka_enabled                  # condition, see Condition
        return: my_var                          # variable that receives the output
        role: readout                           # role path (default: the workflow name)

:func:`default_workflow` wires the legacy ``kafka`` plugin as ``docs/lifecycle.md`` says.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs
import yaml

from aliecs_integration.engine import fsm
from aliecs_integration.errors import AliecsError
from aliecs_integration.records import WorkflowTemplate


class WorkflowError(AliecsError, ValueError):
    """A workflow or one of its calls is malformed; the message says where and what."""


_VAR = r"[A-Za-z_][A-Za-z0-9_.]*"
_CONDITION = re.compile(
    rf"\s*(?P<neg>!)?\s*(?P<var>{_VAR})\s*(?:(?P<op>==|!=)\s*(?P<value>.*?))?\s*"
)
_FUNC = re.compile(r"(?P<plugin>[A-Za-z_][\w-]*)\.(?P<name>[A-Za-z_]\w*)(?:\((?P<args>.*)\))?")


def is_true(value: str | None) -> bool:
    """Whether a variable value means true: ``true`` in any case, surrounding spaces ignored."""
    return value is not None and value.strip().lower() == "true"


@attrs.frozen
class Condition:
    """An ``enabled`` condition on the environment's variables. Forms:

    - ``""``: always enabled;
    - ``var``: enabled when ``var`` is ``true`` (case-insensitive; absent means false);
    - ``!var``: enabled when ``var`` is not ``true``;
    - ``var == value`` / ``var != value``: string comparison (absent compares as ``""``);
      the value may be quoted with ``'`` or ``"``.
    """

    text: str
    variable: str = ""
    op: str = ""
    value: str = ""

    @classmethod
    def parse(cls, text: str) -> Condition:
        """Raises ``ValueError`` naming the text when it is not one of the forms above."""
        if not text.strip():
            return cls("")
        match = _CONDITION.fullmatch(text)
        if match is None or (match["neg"] and match["op"]):
            raise ValueError(
                f"malformed enabled condition {text!r}: expected 'var', '!var', "
                "'var == value' or 'var != value'"
            )
        if match["op"]:
            value = match["value"]
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            return cls(text, match["var"], match["op"], value)
        return cls(text, match["var"], "!" if match["neg"] else "true")

    def __call__(self, variables: Mapping[str, str]) -> bool:
        if not self.variable:
            return True
        current = variables.get(self.variable)
        if self.op == "true":
            return is_true(current)
        if self.op == "!":
            return not is_true(current)
        equal = (current or "") == self.value
        return equal if self.op == "==" else not equal


def parse_func(text: str) -> tuple[str, str]:
    """``"kafka.Publish(x)"`` -> ``("kafka.Publish", "x")``; parentheses are optional.

    Raises ``ValueError`` naming the text when it is not ``<plugin>.<Function>(<args>)``.
    """
    match = _FUNC.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"malformed call function {text!r}: expected '<plugin>.<Function>()', "
            "e.g. 'kafka.PublishEnterStateUpdate()'"
        )
    return f"{match['plugin']}.{match['name']}", match["args"] or ""


def _check_func(spec: CallSpec, attribute: attrs.Attribute[str], value: str) -> None:
    parse_func(value)


def _check_timeout(spec: CallSpec, attribute: attrs.Attribute[float | None],
                   value: float | None) -> None:
    if value is not None and (isinstance(value, bool) or not value > 0):
        raise ValueError(f"call timeout must be a positive number of seconds, got {value!r}")


@attrs.frozen
class CallSpec:
    """One call of a workflow. ``timeout`` is in seconds (None: the manager's default);
    ``role_path`` "" means the workflow's root role. Construction raises ``ValueError`` naming
    the malformed ``func``, ``trigger``, ``timeout`` or ``enabled``."""

    func: str = attrs.field(validator=_check_func)
    trigger: str
    timeout: float | None = attrs.field(default=None, validator=_check_timeout)
    critical: bool = False
    enabled: str = ""
    return_var: str = ""
    role_path: str = ""
    step: str = attrs.field(init=False, eq=False, repr=False)
    """The trigger's step name (no weight)."""
    weight: int = attrs.field(init=False, eq=False, repr=False)
    qualified_name: str = attrs.field(init=False, eq=False, repr=False)
    """``plugin.Function``, what the host's ``call_function`` is asked for."""
    args: str = attrs.field(init=False, eq=False, repr=False)
    condition: Condition = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        step, weight = fsm.parse_trigger(self.trigger)
        qualified_name, args = parse_func(self.func)
        object.__setattr__(self, "step", step)
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "qualified_name", qualified_name)
        object.__setattr__(self, "args", args)
        object.__setattr__(self, "condition", Condition.parse(self.enabled))

    def is_enabled(self, variables: Mapping[str, str]) -> bool:
        """Whether the ``enabled`` condition holds for ``variables``."""
        return self.condition(variables)


def _calls_tuple(calls: Iterable[CallSpec]) -> tuple[CallSpec, ...]:
    return tuple(calls)


def _frozen_vars(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


@attrs.frozen
class Workflow:
    """A named list of calls with default variables. Calls are indexed by step at construction;
    :meth:`calls_at` returns them split at the step's own work, in run order."""

    name: str
    description: str = ""
    path: str = ""
    calls: tuple[CallSpec, ...] = attrs.field(default=(), converter=_calls_tuple)
    defaults: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_vars)
    _index: Mapping[str, tuple[tuple[CallSpec, ...], tuple[CallSpec, ...]]] = attrs.field(
        init=False, eq=False, repr=False
    )

    def __attrs_post_init__(self) -> None:
        if not self.name:
            raise WorkflowError("a workflow needs a non-empty name")
        by_step: dict[str, list[CallSpec]] = {}
        for call in self.calls:
            by_step.setdefault(call.step, []).append(call)
        index = {}
        for step, calls in by_step.items():
            ordered = sorted(calls, key=lambda c: c.weight)  # stable: declared order kept
            index[step] = (
                tuple(c for c in ordered if c.weight < 0),
                tuple(c for c in ordered if c.weight >= 0),
            )
        object.__setattr__(self, "_index", MappingProxyType(index))

    def calls_at(self, step: str) -> tuple[tuple[CallSpec, ...], tuple[CallSpec, ...]]:
        """(negative-weight calls, weight >= 0 calls) of ``step``, each in run order."""
        return self._index.get(step, ((), ()))

    def template_info(self) -> WorkflowTemplate:
        return WorkflowTemplate(name=self.name, description=self.description, path=self.path)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<workflow>") -> Workflow:
        """Build from the YAML form above. Raises :class:`WorkflowError` naming ``source`` and the
        offending key (``calls[2].trigger``)."""
        if not isinstance(data, Mapping):
            raise WorkflowError(f"{source}: expected a mapping, got {type(data).__name__}")
        _unknown_keys(data, {"name", "description", "defaults", "calls"}, f"{source}")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise WorkflowError(f"{source}: key 'name': expected a non-empty string, got {name!r}")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise WorkflowError(f"{source}: key 'description': expected a string")
        defaults = data.get("defaults")
        defaults = {} if defaults is None else defaults
        if not isinstance(defaults, Mapping):
            raise WorkflowError(f"{source}: key 'defaults': expected a mapping of variables")
        default_vars = {
            str(k): variable_string(v, where=f"{source}: defaults.{k}") for k, v in defaults.items()
        }
        raw_calls = data.get("calls")
        raw_calls = [] if raw_calls is None else raw_calls
        if not isinstance(raw_calls, list):
            raise WorkflowError(f"{source}: key 'calls': expected a list of calls")
        calls = [_call_from_dict(item, f"{source}: calls[{i}]") for i, item in enumerate(raw_calls)]
        return cls(name, description, "", tuple(calls), default_vars)

    @classmethod
    def from_yaml(cls, path: Path | str) -> Workflow:
        """Load a YAML file; raises :class:`WorkflowError` naming the file on any problem."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise WorkflowError(f"{path}: cannot read workflow: {exc}") from exc
        except yaml.YAMLError as exc:
            raise WorkflowError(f"{path}: malformed YAML: {exc}") from exc
        return attrs.evolve(cls.from_dict(data, source=str(path)), path=str(path))


def variable_string(value: Any, *, where: str) -> str:
    """A variable value as text: booleans as ``true``/``false``, numbers as written.

    Raises :class:`WorkflowError` naming ``where`` for anything else (lists, mappings, null).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise WorkflowError(f"{where}: expected a string, number or boolean, got {value!r}")


_CALL_KEYS = {"func", "trigger", "timeout", "critical", "enabled", "return", "role"}
_DURATION = re.compile(r"\s*(?P<n>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s|m|h)?\s*")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_timeout(value: Any) -> float:
    """Seconds from a number or a duration string (``500ms``, ``5s``, ``1.5m``, ``1h``).

    Raises ``ValueError`` naming the value when it is malformed or not positive.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value)):
        seconds = float(match["n"]) * _UNIT[match["unit"]]
    else:
        raise ValueError(f"malformed timeout {value!r}: expected seconds or e.g. '500ms', '5s'")
    if not seconds > 0:
        raise ValueError(f"timeout must be positive, got {value!r}")
    return seconds


def _unknown_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise WorkflowError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def _text(data: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str:
    value = data.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str) or (required and not value):
        raise WorkflowError(f"{where}.{key}: expected a non-empty string, got {value!r}")
    return value


def _call_from_dict(item: Any, where: str) -> CallSpec:
    if not isinstance(item, Mapping):
        raise WorkflowError(f"{where}: expected a mapping, got {item!r}")
    _unknown_keys(item, _CALL_KEYS, where)
    func = _text(item, "func", where, required=True)
    trigger = _text(item, "trigger", where, required=True)
    critical = item.get("critical", False)
    if not isinstance(critical, bool):
        raise WorkflowError(f"{where}.critical: expected true or false, got {critical!r}")
    timeout = None
    if item.get("timeout") is not None:
        try:
            timeout = parse_timeout(item["timeout"])
        except ValueError as exc:
            raise WorkflowError(f"{where}.timeout: {exc}") from exc
    enabled = _text(item, "enabled", where)
    for key, check in (("func", parse_func), ("trigger", fsm.parse_trigger),
                       ("enabled", Condition.parse)):
        try:
            check(item.get(key, ""))
        except ValueError as exc:
            raise WorkflowError(f"{where}.{key}: {exc}") from exc
    return CallSpec(
        func=func, trigger=trigger, timeout=timeout, critical=critical, enabled=enabled,
        return_var=_text(item, "return", where), role_path=_text(item, "role", where),
    )


KAFKA_ENABLED = "kafka_enabled"
LEGACY_LEAVE_STATES = tuple(s for s in fsm.REAL_STATES if s is not fsm.State.DONE)
"""States whose leave step publishes (``docs/events.md``: STANDBY, DEPLOYED, CONFIGURED, RUNNING,
ERROR)."""


def default_workflow() -> Workflow:
    """The default workflow: the legacy kafka calls of the reference deployment, all enabled only
    when ``kafka_enabled`` is true, non-critical, with the manager's default timeout.

    - ``kafka.PublishEnterStateUpdate()`` at every ``enter_<STATE>`` (weight 0) and at DESTROY;
    - ``kafka.PublishLeaveStateUpdate()`` at every ``leave_<STATE>`` (weight 0) but leave_DONE;
    - ``kafka.PublishStartActivityUpdate()`` at ``before_START_ACTIVITY+50`` (after the run number
      is set) and ``after_START_ACTIVITY``.
    """
    enter = "kafka.PublishEnterStateUpdate()"
    calls = [CallSpec(enter, f"enter_{s}", enabled=KAFKA_ENABLED) for s in fsm.REAL_STATES]
    calls.append(CallSpec(enter, fsm.DESTROY, enabled=KAFKA_ENABLED))
    calls += [
        CallSpec("kafka.PublishLeaveStateUpdate()", f"leave_{s}", enabled=KAFKA_ENABLED)
        for s in LEGACY_LEAVE_STATES
    ]
    calls += [
        CallSpec("kafka.PublishStartActivityUpdate()", trigger, enabled=KAFKA_ENABLED)
        for trigger in ("before_START_ACTIVITY+50", "after_START_ACTIVITY")
    ]
    return Workflow(
        name="default",
        description="legacy kafka plugin calls of the reference deployment",
        calls=tuple(calls),
        defaults={},
    )
