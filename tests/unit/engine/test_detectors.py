"""Detectors belong to one environment at a time."""

from __future__ import annotations

import pytest

from aliecs_integration.engine.detectors import DetectorRegistry
from aliecs_integration.engine.manager import EnvironmentManager
from aliecs_integration.engine.run_numbers import RunNumberStore
from aliecs_integration.errors import DetectorInUse, TransitionError


def test_reserve_is_all_or_nothing_and_names_the_holder() -> None:
    reg = DetectorRegistry()
    reg.reserve("A", ["ITS", "TPC"])
    with pytest.raises(DetectorInUse, match=r"detector TPC is already in use \(by environment A\)"):
        reg.reserve("B", ["MCH", "TPC"])
    assert reg.active() == {"ITS": "A", "TPC": "A"}  # MCH not taken by the failed attempt
    assert reg.release("A") == ("ITS", "TPC")
    reg.reserve("B", ["MCH", "TPC"])
    assert reg.active() == {"MCH": "B", "TPC": "B"}


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
