"""What counts as a secret in settings, and masking it: a secret value is never printed or
logged, only ``***``.

Two rules: a value whose key name looks secret (:data:`SECRET_MARKERS`, any depth) is masked
whole; and inside any string, ``name=value`` pairs whose name looks secret (librdkafka's
``sasl.oauthbearer.config`` holds ``clientSecret=...``) and the password of a URL
(``consul://user:pass@host``) are masked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

#: Substrings (lower case) of a key name that mark its value as secret.
SECRET_MARKERS: tuple[str, ...] = (
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "credential",
    "private",
    "key.pem",
    "ssl.key",
    "jaas.config",
    "oauthbearer.config",
)

_MARKER_WORDS = "|".join(re.escape(m) for m in SECRET_MARKERS if "." not in m)
_PAIR = re.compile(
    rf"(?i)(?P<name>[\w.-]*(?:{_MARKER_WORDS})[\w.-]*)(?P<sep>\s*[=:]\s*)"
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;&]+)"
)
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*:)(?P<pw>[^/@\s]*)@")


def is_secret_key(name: str) -> bool:
    """True when a key named ``name`` holds a secret (its value must never be logged)."""
    lowered = name.lower()
    return any(marker in lowered for marker in SECRET_MARKERS)


def masked_text(text: str) -> str:
    """``text`` with secret ``name=value`` pairs and URL passwords replaced by ``***``."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)
    return _PAIR.sub(lambda m: f"{m['name']}{m['sep']}{MASK}", text)


def redact_url(url: str) -> str:
    """``url`` with the password of its user info (``scheme://user:pass@``) masked."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", url)


def masked(value: Any) -> Any:
    """A copy of ``value`` where every mapping entry whose key is secret is replaced by ``***``
    and every string is passed through :func:`masked_text`.

    Recurses into mappings and lists; other values are returned unchanged.
    """
    if isinstance(value, Mapping):
        return {
            k: MASK if isinstance(k, str) and is_secret_key(k) else masked(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    if isinstance(value, str):
        return masked_text(value)
    return value
