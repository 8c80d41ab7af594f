"""A producing process for the spool's SIGKILL test (run as a script, killed by the test).

``python -m tests.reliability.spool_child BOOTSTRAP ROOT SPOOL HANDED FIRST`` fires numbered
events FIRST, FIRST+1, ... through a plugin host with core-kafka and the spool on, and after
each ``fire`` returned appends the number to HANDED (the events handed to the publisher).
``FIRST`` = -1: no new events; replay what the spool holds, flush, stop, print the report.
SPOOL ``-``: no spool (to see what a kill loses without it).
"""

from __future__ import annotations

import os
import sys

from aliecs_integration import hookspecs
from tests.reliability import numbered, started_host


def main(bootstrap: str, root: str, spool: str, handed: str, first: int) -> None:
    spooling = {"spool_path": spool} if spool != "-" else {}  # "-": no spool (contrast)
    host = started_host(bootstrap, root, replication_factor=1, **spooling)
    if first < 0:
        reports = host.flush(120.0)
        host.stop(timeout_s=30.0)
        print(f"drained: {reports.get('core-kafka')}", flush=True)
        return
    fd = os.open(handed, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    i = first
    while True:
        failures = host.fire(hookspecs.on_integrated_service_event, numbered(i))
        if failures:
            print(f"failure: {failures}", file=sys.stderr, flush=True)
            os._exit(3)
        os.write(fd, b"%d\n" % i)
        i += 1


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
