"""Workflow templates: a tree of roles, the calls an environment makes at its transition steps,
and default variables.

A template is YAML (every key but ``name`` optional; unknown keys are errors)::

    name: readout-dataflow           # the root role's name: role paths start with it
    description: what it is for
    defaults: {dcs_enabled: true}    # variable defaults (below user and runtime vars)
    roles:
      - name: readout                # a task role: one task running `class`
        task: {class: readout}
        critical: true               # default true
      - name: dcs                    # an aggregator role: children only
        roles:
          - name: sor                # a call role: one call (path readout-dataflow.dcs.sor)
            call:
              func: dcs.StartOfRun() # <plugin>.<Function>(<args>)
              trigger: before_START_ACTIVITY+10   # step name [+-weight]
              timeout: 5s            # seconds or "500ms" / "5s" / "1m"; default the manager's
              critical: true         # default: the role's critical flag (true)
              enabled: dcs_enabled   # condition, see Condition
              return: dcs_sor        # variable that receives the output
    calls:                           # optional flat calls attached to the root role
      - {func: p.F(), trigger: after_CONFIGURE, critical: false, role: my.role}

Role names are words (no ``.``), unique among siblings; a role is exactly one kind; a YAML
alias that makes a role contain itself is a cycle and refused. Errors are
:class:`WorkflowError` naming the source and the role path. Flat ``calls`` default to
non-critical (the Python :class:`CallSpec` default); call roles default to critical.

:func:`default_workflow` loads the template ``default.yaml`` shipped with the package
(``aliecs_integration/workflows/``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs

from aliecs_integration import safe_yaml
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
    """``"dcs.StartOfRun(x)"`` -> ``("dcs.StartOfRun", "x")``; parentheses are optional.

    Raises ``ValueError`` naming the text when it is not ``<plugin>.<Function>(<args>)``.
    """
    match = _FUNC.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"malformed call function {text!r}: expected '<plugin>.<Function>()', "
            "e.g. 'trg.RunStart()'"
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


AGGREGATOR, TASK, CALL = "aggregator", "task", "call"
DEFAULT_REPOSITORY = "github.com/AliceO2Group/ControlWorkflows"
DEFAULT_REVISION = "master"


@attrs.frozen
class RoleSpec:
    """One role of a workflow's tree: an aggregator (``children``), a task role (``task_class``,
    optional ``host``) or a call role (``call``, whose ``role_path`` is this role's path).
    ``path`` is the role names from the root joined by ``.``."""

    name: str
    path: str
    kind: str
    critical: bool = True
    children: tuple[RoleSpec, ...] = ()
    task_class: str = ""
    host: str = ""
    call: CallSpec | None = None

    def walk(self) -> Iterable[RoleSpec]:
        """This role and its descendants, depth first, in declared order."""
        yield self
        for child in self.children:
            yield from child.walk()


@attrs.frozen
class Workflow:
    """A workflow template: a role tree (``root``; a bare root aggregator named ``name`` when
    None), calls (the call roles' calls, then flat calls) and default variables. Calls are
    indexed by step at construction; :meth:`calls_at` returns them split at the step's own work,
    in run order. Task class names are ``<repository>/tasks/<class>@<revision>``."""

    name: str
    description: str = ""
    path: str = ""
    calls: tuple[CallSpec, ...] = attrs.field(default=(), converter=_calls_tuple)
    defaults: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_vars)
    root: RoleSpec | None = None
    repository: str = DEFAULT_REPOSITORY
    revision: str = DEFAULT_REVISION
    public: bool = True
    _index: Mapping[str, tuple[tuple[CallSpec, ...], tuple[CallSpec, ...]]] = attrs.field(
        init=False, eq=False, repr=False
    )

    def __attrs_post_init__(self) -> None:
        if not self.name:
            raise WorkflowError("a workflow needs a non-empty name")
        if self.root is None:
            object.__setattr__(self, "root", RoleSpec(self.name, self.name, AGGREGATOR))
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

    @property
    def role_tree(self) -> RoleSpec:
        """The root role (never None after construction)."""
        assert self.root is not None
        return self.root

    def calls_at(self, step: str) -> tuple[tuple[CallSpec, ...], tuple[CallSpec, ...]]:
        """(negative-weight calls, weight >= 0 calls) of ``step``, each in run order."""
        return self._index.get(step, ((), ()))

    def task_roles(self) -> tuple[RoleSpec, ...]:
        """The task roles, depth first in declared order."""
        return tuple(r for r in self.role_tree.walk() if r.kind == TASK)

    def class_name(self, task_class: str) -> str:
        return f"{self.repository}/tasks/{task_class}@{self.revision}"

    def with_calls(self, extra: Iterable[CallSpec]) -> Workflow:
        """This workflow with ``extra`` flat calls appended."""
        return attrs.evolve(self, calls=(*self.calls, *extra))

    def template_info(self) -> WorkflowTemplate:
        return WorkflowTemplate(name=self.name, description=self.description, path=self.path,
                                public=self.public)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<workflow>") -> Workflow:
        """Build from the YAML form above. Raises :class:`WorkflowError` naming ``source`` and the
        offending key (``calls[2].trigger``) or role path."""
        if not isinstance(data, Mapping):
            raise WorkflowError(f"{source}: expected a mapping, got {type(data).__name__}")
        _unknown_keys(data, {"name", "description", "defaults", "calls", "roles", "repository",
                             "revision", "public"}, f"{source}")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise WorkflowError(f"{source}: key 'name': expected a non-empty string, got {name!r}")
        if not _ROLE_NAME.fullmatch(name):
            raise WorkflowError(f"{source}: key 'name': {name!r} is not a role name (a word "
                                "of letters, digits, '_' or '-')")
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
        raw_roles = data.get("roles")
        raw_roles = [] if raw_roles is None else raw_roles
        if not isinstance(raw_roles, list):
            raise WorkflowError(f"{source}: key 'roles': expected a list of roles")
        children = _roles(raw_roles, name, source, [id(data)])
        root = RoleSpec(name, name, AGGREGATOR, True, children)
        role_calls = [r.call for r in root.walk() if r.call is not None]
        calls = [_call_from_dict(item, f"{source}: calls[{i}]") for i, item in enumerate(raw_calls)]
        repository = _text(data, "repository", source) or DEFAULT_REPOSITORY
        revision = _text(data, "revision", source) or DEFAULT_REVISION
        public = data.get("public", True)
        if not isinstance(public, bool):
            raise WorkflowError(f"{source}: key 'public': expected true or false")
        return cls(name, description, "", (*role_calls, *calls), default_vars, root,
                   repository, revision, public)

    @classmethod
    def from_yaml(cls, path: Path | str) -> Workflow:
        """Load a YAML file; raises :class:`WorkflowError` naming the file on any problem."""
        path = Path(path)
        try:
            data = safe_yaml.load_file(path)
        except safe_yaml.YamlInputError as exc:
            raise WorkflowError(f"{path}: {exc}") from None
        return attrs.evolve(cls.from_dict(data, source=str(path)), path=str(path))


@attrs.frozen
class TemplateRef:
    """A workflow template to load when an environment is created (so that a broken file fails
    that CREATE, with its events), plus flat calls to append to it."""

    path: Path
    extra_calls: tuple[CallSpec, ...] = ()

    def load(self) -> Workflow:
        """Raises :class:`WorkflowError` naming the file and the role path."""
        workflow = Workflow.from_yaml(self.path)
        return workflow.with_calls(self.extra_calls) if self.extra_calls else workflow

    def template_info(self) -> WorkflowTemplate:
        """What is known before loading: the file's stem and path."""
        return WorkflowTemplate(name=self.path.stem, path=str(self.path))


_ROLE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
_ROLE_KEYS = {"name", "critical", "roles", "task", "call"}
_TASK_KEYS = {"class", "host"}


def _roles(items: list[Any], parent: str, source: str, ancestors: list[int]) -> tuple[
        RoleSpec, ...]:
    roles: list[RoleSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"{source}: role {parent}[{i}]"
        if not isinstance(item, Mapping):
            raise WorkflowError(f"{where}: expected a mapping, got {item!r}")
        name = item.get("name")
        if not isinstance(name, str) or not _ROLE_NAME.fullmatch(name):
            raise WorkflowError(f"{where}: key 'name': expected a role name (a word of letters, "
                                f"digits, '_' or '-'), got {name!r}")
        path = f"{parent}.{name}"
        where = f"{source}: role {path}"
        if id(item) in ancestors:
            raise WorkflowError(f"{where}: cycle: the role contains itself")
        if name in seen:
            raise WorkflowError(f"{where}: duplicate role name {name!r} under {parent}")
        seen.add(name)
        _unknown_keys(item, _ROLE_KEYS, where)
        kinds = [k for k in ("roles", "task", "call") if k in item]
        if len(kinds) != 1:
            raise WorkflowError(f"{where}: unknown role kind: expected exactly one of 'roles' "
                                f"(aggregator), 'task' or 'call', got {kinds or 'none'}")
        critical = item.get("critical", True)
        if not isinstance(critical, bool):
            raise WorkflowError(f"{where}.critical: expected true or false, got {critical!r}")
        kind = kinds[0]
        if kind == "roles":
            children = item["roles"]
            if not isinstance(children, list):
                raise WorkflowError(f"{where}.roles: expected a list of roles")
            roles.append(RoleSpec(name, path, AGGREGATOR, critical,
                                  _roles(children, path, source, [*ancestors, id(item)])))
        elif kind == "task":
            task = item["task"]
            if not isinstance(task, Mapping):
                raise WorkflowError(f"{where}.task: expected a mapping with 'class'")
            _unknown_keys(task, _TASK_KEYS, f"{where}.task")
            roles.append(RoleSpec(name, path, TASK, critical,
                                  task_class=_text(task, "class", f"{where}.task", required=True),
                                  host=_text(task, "host", f"{where}.task")))
        else:
            call = item["call"]
            if not isinstance(call, Mapping):
                raise WorkflowError(f"{where}.call: expected a mapping with 'func' and 'trigger'")
            if "role" in call:
                raise WorkflowError(f"{where}.call: unknown key(s) role (a call role's path is "
                                    "its own)")
            spec = _call_from_dict({"critical": critical, **call, "role": path}, f"{where}.call")
            roles.append(RoleSpec(name, path, CALL, spec.critical, call=spec))
    return tuple(roles)


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


MAX_TIMEOUT_S = 86_400.0
"""The longest timeout accepted (a day); larger ones, ``.inf`` and ``.nan`` are refused."""


def parse_timeout(value: Any) -> float:
    """Seconds from a number or a duration string (``500ms``, ``5s``, ``1.5m``, ``1h``).

    Raises ``ValueError`` naming the value when it is malformed, not positive, not finite or
    longer than :data:`MAX_TIMEOUT_S`.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value)):
        seconds = float(match["n"]) * _UNIT[match["unit"]]
    else:
        raise ValueError(f"malformed timeout {value!r}: expected seconds or e.g. '500ms', '5s'")
    if not 0 < seconds <= MAX_TIMEOUT_S:  # also refuses nan and inf
        raise ValueError(
            f"timeout must be positive and at most {MAX_TIMEOUT_S:g} s (a day), got {value!r}"
        )
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




WORKFLOWS_DIR = Path(__file__).resolve().parent.parent / "workflows"
"""Templates shipped with the package."""


def default_workflow() -> Workflow:
    """The default template ``default.yaml`` shipped with the package: a few task roles and the
    call roles of the reference deployment's plugins. Raises :class:`WorkflowError` when the
    installed file is broken."""
    return Workflow.from_yaml(WORKFLOWS_DIR / "default.yaml")
