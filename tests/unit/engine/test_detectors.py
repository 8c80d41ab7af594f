"""Detectors belong to one environment at a time."""

from __future__ import annotations

import pytest

from aliecs_integration.engine.manager import EnvironmentManager
from aliecs_integration.engine.run_numbers import RunNumberStore
from aliecs_integration.errors import DetectorInUse, TransitionError


class NoHost:
    def fire(self, hook_name: str, event: object) -> list[object]:
        return []

    def call_function(self, name: str) -> None:
        return None


def test_manager_holds_detectors_from_create_to_destroy(tmp_path: object) -> None:
    manager = EnvironmentManager(NoHost(), settings_runtime_vars={},
                                 run_numbers=RunNumberStore(f"{tmp_path}/rn"))
    try:
        a = manager.create(detectors=["ITS"])
        with pytest.raises(DetectorInUse) as refused:
            manager.create(detectors=["ZDC", "ITS"])
        assert isinstance(refused.value, TransitionError)
        assert len(manager.list()) == 1  # the refused one left nothing behind
        assert manager.active_detectors() == {"ITS": a.id}
        manager.destroy(a.id)
        assert manager.active_detectors() == {}
        b = manager.create(detectors=["ZDC", "ITS"])
        assert manager.active_detectors() == {"ITS": b.id, "ZDC": b.id}
    finally:
        manager.close()
