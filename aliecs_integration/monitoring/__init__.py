"""Watching a running process from outside: our counters as Prometheus metrics
(:mod:`.collector`), the health verdict (:mod:`.health`) and the HTTP endpoint serving both
on ``/metrics`` and ``/healthz`` (:mod:`.endpoint`), used by ``serve`` and ``run``."""
