"""A persistent, strictly increasing run-number allocator backed by a small local file.

The file holds the last number handed out, as decimal text. :meth:`RunNumberStore.next` takes an
exclusive ``fcntl.flock`` on a companion lock file (so two processes never get the same number)
and a thread lock (flock does not exclude threads sharing one open file), reads the file, writes
``last + 1`` to a temporary file, fsyncs it, renames it over the file and fsyncs the directory:
a crash leaves either the old or the new number, never a torn file, and a number that was returned
is on disk. A file that exists but does not hold a number is an error naming the path: the store
never silently restarts at 1.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
from pathlib import Path

from aliecs_integration.errors import AliecsError

MAX_RUN_NUMBER = 2**32 - 1
"""Run numbers are ``uint32`` on the wire."""

_NUMBER = re.compile(rb"\s*(\d+)\s*")


class RunNumberError(AliecsError):
    """The run-number file is unreadable, corrupt or exhausted; the message names the path."""


def default_path() -> Path:
    """``$ALIECS_STATE_DIR/run_number``, else ``$XDG_STATE_HOME/aliecs-integration/run_number``,
    else ``~/.local/state/aliecs-integration/run_number``."""
    state_dir = os.environ.get("ALIECS_STATE_DIR")
    if state_dir:
        return Path(state_dir) / "run_number"
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "aliecs-integration" / "run_number"


class RunNumberStore:
    """Hands out run numbers 1, 2, 3, ... persisted in ``path`` (default :func:`default_path`).

    Thread- and process-safe. Creates the parent directory when missing.
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._thread_lock = threading.Lock()

    def last(self) -> int:
        """The last number handed out (0 when none was). Raises :class:`RunNumberError`."""
        with self._thread_lock:
            return self._read()

    def next(self) -> int:
        """Allocate the next number: strictly greater than every number handed out before, by
        any process using the same file. Raises :class:`RunNumberError` on a corrupt or
        unwritable file or when ``uint32`` is exhausted."""
        with self._thread_lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise RunNumberError(f"{self._lock_path}: cannot open lock file: {exc}") from exc
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
                number = self._read() + 1
                if number > MAX_RUN_NUMBER:
                    raise RunNumberError(f"{self.path}: run numbers exhausted (uint32)")
                self._write(number)
                return number
            finally:
                os.close(lock_fd)  # closing releases the flock

    def _read(self) -> int:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise RunNumberError(f"{self.path}: cannot read run-number file: {exc}") from exc
        match = _NUMBER.fullmatch(data)
        if match is None:
            raise RunNumberError(
                f"{self.path}: corrupt run-number file: expected the last run number as decimal "
                f"text, found {data[:40]!r}; fix or remove the file deliberately (removing it "
                "restarts numbering at 1)"
            )
        return int(match[1])

    def _write(self, number: int) -> None:
        tmp = self.path.with_name(f"{self.path.name}.tmp.{os.getpid()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, f"{number}\n".encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise RunNumberError(f"{self.path}: cannot write run-number file: {exc}") from exc
