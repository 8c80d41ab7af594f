"""What changed between two validated settings, as operators may see it (secrets masked).

Used to log an applied live-settings change: each changed top-level key with its old and new
effective value (:meth:`Settings.describe <aliecs_integration.settings.core.Settings.describe>`
with secrets masked), runtime variables one by one (``runtimeVars.<name>``), and, inside
``kafkaProducer``, each changed entry (``kafkaProducer.<path>``). A secret that changed shows
as ``*** -> ***``: that it changed, never its value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from aliecs_integration.settings.core import KAFKA_PRODUCER, RUNTIME_VARS, Settings
from aliecs_integration.settings.secrets import MASK, is_secret_key, masked

ABSENT = "(unset)"
"""Shown for a key or variable present on one side only."""


@attrs.frozen
class Change:
    """One changed setting: ``key`` (``runtimeVars.<name>``, ``kafkaProducer.<path>`` or a
    top-level key) and its old and new values, masked, as text."""

    key: str
    old: str
    new: str

    def __str__(self) -> str:
        return f"{self.key}: {self.old} -> {self.new}"


def _text(value: Any) -> str:
    return ABSENT if value is _MISSING else repr(value)


_MISSING = object()


def _secret_walk(path: str, old: Any, new: Any, out: list[Change]) -> None:
    """Like :func:`_walk` on unmasked values, but a secret entry is reported masked (so a
    changed secret is seen as changed)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted({*old, *new}, key=str):
            a, b = old.get(key, _MISSING), new.get(key, _MISSING)
            sub = f"{path}.{key}"
            if isinstance(key, str) and is_secret_key(key):
                if a != b:
                    out.append(Change(sub, ABSENT if a is _MISSING else MASK,
                                      ABSENT if b is _MISSING else MASK))
                continue
            _secret_walk(sub, a, b, out)
        return
    if old != new:
        a = masked(old) if old is not _MISSING else old
        b = masked(new) if new is not _MISSING else new
        if a == b:  # the difference is inside a masked part of a string
            a, b = MASK, MASK
        out.append(Change(path, _text(a), _text(b)))


def changes(old: Settings, new: Settings) -> list[Change]:
    """Every difference between ``old`` and ``new`` (empty: nothing to apply), secrets masked.
    The ``source`` itself is not a setting and is not compared."""
    before = old.describe(mask_secrets=False)
    after = new.describe(mask_secrets=False)
    out: list[Change] = []
    for key in sorted({*before, *after}):
        a = before[key][0] if key in before else _MISSING
        b = after[key][0] if key in after else _MISSING
        if a == b:
            continue
        if is_secret_key(key):
            out.append(Change(key, ABSENT if a is _MISSING else MASK,
                              ABSENT if b is _MISSING else MASK))
        elif key in (RUNTIME_VARS, KAFKA_PRODUCER) or (
                isinstance(a, Mapping) and isinstance(b, Mapping)):
            _secret_walk(key, a if a is not _MISSING else {}, b if b is not _MISSING else {},
                         out)
        else:
            _secret_walk(key, a, b, out)
    return out
