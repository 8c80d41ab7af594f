"""Fake sources for the monitoring collector and endpoint: a host and an environment view
answering fixed values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from aliecs_integration.host import PluginFailure, PluginStatus
from aliecs_integration.publish.metrics import MetricsSnapshot


@attrs.define
class FakeHost:
    snapshots: dict[str, MetricsSnapshot] = attrs.Factory(dict)
    plugins: list[PluginStatus] = attrs.Factory(list)
    failure_counts: dict[str, int] = attrs.Factory(dict)
    slow: dict[str, int] = attrs.Factory(dict)
    spools: dict[str, dict[str, int]] = attrs.Factory(dict)

    def metrics(self) -> Mapping[str, MetricsSnapshot]:
        return self.snapshots

    def list_plugins(self) -> Sequence[PluginStatus]:
        return self.plugins

    def failures(self) -> Mapping[str, tuple[int, PluginFailure]]:
        return {name: (count, PluginFailure(name, "on_call", RuntimeError("boom")))
                for name, count in self.failure_counts.items()}

    def slow_hooks(self) -> Mapping[str, int]:
        return self.slow

    def spool_stats(self) -> Mapping[str, Mapping[str, int]]:
        return self.spools


@attrs.define
class FakeEnvironments:
    states: dict[str, int] = attrs.Factory(dict)
    runs: int = 0

    def count_by_state(self) -> Mapping[str, int]:
        return self.states

    def active_runs(self) -> int:
        return self.runs
