"""What counts as a secret in settings, and masking it: a secret value is never printed or
logged, only ``***``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MASK = "***"

#: Substrings (lower case) of a key name that mark its value as secret.
SECRET_MARKERS: tuple[str, ...] = (
    "password",
    "secret",
    "token",
    "key.pem",
    "sasl.password",
    "ssl.key",
)

def is_secret_key(name: str) -> bool:
    """True when a key named ``name`` holds a secret (its value must never be logged)."""
    lowered = name.lower()
    return any(marker in lowered for marker in SECRET_MARKERS)

def masked(value: Any) -> Any:
    """A copy of ``value`` where every mapping entry whose key is secret is replaced by ``***``.

    Recurses into mappings and lists; other values are returned unchanged.
    """
    if isinstance(value, Mapping):
        return {
            k: MASK if isinstance(k, str) and is_secret_key(k) else masked(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    return value
