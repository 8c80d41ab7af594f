"""The environment state machine as a Mermaid ``stateDiagram-v2``, drawn from :mod:`fsm`'s table.

Every transition of :data:`~aliecs_integration.engine.fsm.TRANSITIONS` is one arrow per state it
is allowed from; CREATE (from nothing to STANDBY) and DESTROY (from every state) are the
manager's operations outside the table, drawn into and out of a composite state. GitHub and
the docs site render the text as a picture.
"""

from __future__ import annotations

from aliecs_integration.engine import fsm

ENVIRONMENT = "environment"
"""The composite state around the machine's states: CREATE enters it (at STANDBY), DESTROY
leaves it from whichever state it is in."""


def state_diagram() -> str:
    """Mermaid source of the state machine: CREATE into the ``environment`` composite state,
    one arrow per state each transition is allowed from (table order), DESTROY out of it."""
    lines = ["stateDiagram-v2", "    direction LR",
             f"    [*] --> {ENVIRONMENT}: {fsm.CREATE}",
             f"    state {ENVIRONMENT} {{", f"        [*] --> {fsm.State.STANDBY}"]
    for name, (sources, target) in fsm.TRANSITIONS.items():
        ordered = [s for s in fsm.REAL_STATES if s in sources]
        lines += [f"        {source} --> {target}: {name}" for source in ordered]
    lines += ["    }", f"    {ENVIRONMENT} --> [*]: {fsm.DESTROY} (from any state)"]
    return "\n".join(lines) + "\n"


def transition_table() -> str:
    """The same table in Markdown: transition, allowed from, leads to."""
    rows = ["| transition | allowed from | leads to |", "|---|---|---|",
            f"| `{fsm.CREATE}` (manager operation) | - (a new environment) | "
            f"`{fsm.State.STANDBY}` |"]
    for name, (sources, target) in fsm.TRANSITIONS.items():
        ordered = ", ".join(f"`{s}`" for s in fsm.REAL_STATES if s in sources)
        rows.append(f"| `{name}` | {ordered} | `{target}` |")
    rows.append(f"| `{fsm.DESTROY}` (manager operation) | every state | - (the environment is "
                "gone; a running run is ended first) |")
    return "\n".join(rows) + "\n"
