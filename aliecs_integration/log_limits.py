"""Rate-limited logging: a repeated message (a client error, an overflow drop) is logged once
per interval with a count of what was suppressed, so a storm of errors cannot flood the log."""

from __future__ import annotations

import logging
import threading
import time


class RateLimitedLog:
    """Counts occurrences of one kind of problem; logs at most once per ``interval_s``, with
    the number of occurrences since the previous message (``pending`` holds those not yet
    logged). Thread-safe."""

    def __init__(self, logger: logging.Logger, level: int, interval_s: float = 5.0) -> None:
        self.logger, self.level, self.interval_s = logger, level, interval_s
        self.pending, self._last = 0, -interval_s
        self._lock = threading.Lock()

    def note(self, message: str, *args: object) -> None:
        """Count one occurrence; log ``message % args`` unless logged within ``interval_s``."""
        with self._lock:
            self.pending += 1
            now = time.monotonic()
            if now - self._last < self.interval_s:
                return
            count, self.pending, self._last = self.pending, 0, now
        self.logger.log(
            self.level, message + " (%d time(s) since the last such message)", *args, count
        )

SUMMARY_ATTR = "rate_limit_summary"
"""A record with this attribute set true passes :class:`RateLimitFilter` untouched."""

class RateLimitFilter(logging.Filter):
    """A logging filter letting through at most one record per ``interval_s`` of each kind
    (the first two words of the message: for librdkafka, its facility and client name); the
    next record let through says how many of its kind were suppressed, and :meth:`release`
    logs the counts still pending. Thread-safe."""

    def __init__(self, interval_s: float = 5.0, *, max_kinds: int = 256) -> None:
        super().__init__()
        self.interval_s, self.max_kinds = interval_s, max_kinds
        self._last: dict[tuple[str, ...], float] = {}
        self._suppressed: dict[tuple[str, ...], tuple[int, int]] = {}  # count, highest level
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, SUMMARY_ATTR, False):
            return True
        message = record.getMessage()
        kind = tuple(message.split(" ", 2)[:2])
        with self._lock:
            now = time.monotonic()
            last = self._last.get(kind)
            if last is not None and now - last < self.interval_s:
                count, level = self._suppressed.get(kind, (0, 0))
                self._suppressed[kind] = (count + 1, max(level, record.levelno))
                return False
            if last is None and len(self._last) >= self.max_kinds:
                self._forget_stale(now)
            self._last[kind] = now
            suppressed, _ = self._suppressed.pop(kind, (0, 0))
        if suppressed:
            record.msg, record.args = f"{message} ({suppressed} similar suppressed)", None
        return True

    def _forget_stale(self, now: float) -> None:
        """Drop kinds quiet for ``interval_s`` with nothing pending (lock held)."""
        for kind, last in list(self._last.items()):
            if now - last >= self.interval_s and kind not in self._suppressed:
                del self._last[kind]

    def release(self, logger: logging.Logger) -> int:
        """Log on ``logger``, once per kind, how many records were suppressed and not yet
        reported (at the highest level among them); return their total."""
        with self._lock:
            pending, self._suppressed = self._suppressed, {}
            self._forget_stale(time.monotonic())
        for kind, (count, level) in sorted(pending.items()):
            logger.log(
                level,
                "%s: %d similar line(s) suppressed since the last one",
                " ".join(kind),
                count,
                extra={SUMMARY_ATTR: True},
            )
        return sum(count for count, _ in pending.values())
