"""Detectors are a resource: each belongs to at most one environment at a time.

The environment manager reserves an environment's detectors when it creates the environment
and releases them when the environment is destroyed (or its creation is cancelled). A second
environment asking for a detector in use is refused with ``detector <D> is already in use``,
as the reference core says it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from aliecs_integration.errors import DetectorInUse


class DetectorRegistry:
    """Which environment holds which detector. Thread-safe; reservations are all-or-nothing."""

    def __init__(self) -> None:
        self._owner: dict[str, str] = {}
        self._lock = threading.Lock()

    def reserve(self, env_id: str, detectors: Iterable[str]) -> None:
        """Give every detector of ``detectors`` to ``env_id``, or none of them.

        Raises :class:`DetectorInUse` naming each detector already held by another environment
        and that environment.
        """
        wanted = tuple(detectors)
        with self._lock:
            taken = [(d, self._owner[d]) for d in wanted
                     if d in self._owner and self._owner[d] != env_id]
            if taken:
                raise DetectorInUse("; ".join(
                    f"detector {d} is already in use (by environment {owner})"
                    for d, owner in taken))
            for detector in wanted:
                self._owner[detector] = env_id

    def release(self, env_id: str) -> tuple[str, ...]:
        """Free every detector ``env_id`` holds; returns them (sorted)."""
        with self._lock:
            mine = sorted(d for d, owner in self._owner.items() if owner == env_id)
            for detector in mine:
                del self._owner[detector]
        return tuple(mine)

    def active(self) -> dict[str, str]:
        """Detector -> the environment holding it, sorted by detector."""
        with self._lock:
            return dict(sorted(self._owner.items()))
