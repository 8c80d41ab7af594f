"""Live settings: the state of the watch on the settings source.

``WatchStatus`` is what the metrics endpoint and ``/healthz`` read: how many new settings
documents were applied or refused since start, how many times reading the source failed,
and whether the source answered the last time it was asked.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class WatchStatus:
    """A snapshot of the settings watch.

    ``source`` is the settings source as shown to operators (secrets masked); ``reachable``
    is false while the last read of the source failed; ``applied`` and ``refused`` count new
    documents since start (a refused one left the running settings unchanged);
    ``watch_errors`` counts failed reads of the source; ``last_error`` is the last such
    failure's message, or None.
    """

    source: str
    reachable: bool = True
    applied: int = 0
    refused: int = 0
    watch_errors: int = 0
    last_error: str | None = None
