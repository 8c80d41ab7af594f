"""A persistent, strictly increasing run-number allocator backed by small local files.

A run number is an identity in every downstream system: it must never repeat, whatever happens
to the files. The file holds the last number handed out, as decimal text; a second copy
(``<file>.copy``) and an extended attribute of the directory (``user.aliecs.<file>``, where
the file system supports it: deleting files does not touch it) hold the same.

:meth:`RunNumberStore.next` takes an exclusive ``fcntl.flock`` on the *directory* holding them
(deleting a file cannot split the lock between processes, as a deleted lock file did) and a
thread lock, then takes the largest of the file, its copies and the last number this process
handed out for that path, adds one, and writes them all (temporary file, fsync, rename, fsync
of the directory): a crash leaves the old or the new number, never a torn file. A deleted file
is recovered from a copy or from the process's memory (with a logged warning), never restarted
at 1; only when every copy and every process that knew the number are gone does numbering
start again. A file that exists but does not hold a number is an error naming the path.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import threading
from pathlib import Path

from aliecs_integration.errors import AliecsError

MAX_RUN_NUMBER = 2**32 - 1
"""Run numbers are ``uint32`` on the wire."""

_NUMBER = re.compile(rb"\s*(\d+)\s*")
log = logging.getLogger(__name__)

_ISSUED: dict[Path, int] = {}
"""The last number this process handed out, per resolved file path (survives the files)."""
_ISSUED_LOCK = threading.Lock()


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
        self._copy_path = self.path.with_name(self.path.name + ".copy")
        self._thread_lock = threading.Lock()

    def last(self) -> int:
        """The last number handed out (0 when none was). Raises :class:`RunNumberError`."""
        with self._thread_lock:
            return max(self._read(self.path) or 0, self._read_copy(), self._get_attribute(),
                       self._issued())

    def next(self) -> int:
        """Allocate the next number: strictly greater than every number handed out before, by
        any process using the same file. Raises :class:`RunNumberError` on a corrupt or
        unwritable file or when ``uint32`` is exhausted."""
        with self._thread_lock:
            directory = self.path.parent
            try:
                directory.mkdir(parents=True, exist_ok=True)
                lock_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            except OSError as exc:
                raise RunNumberError(
                    f"{self.path}: cannot open lock (the run-number directory {directory}): "
                    f"{exc}"
                ) from exc
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
                number = self._current() + 1
                if number > MAX_RUN_NUMBER:
                    raise RunNumberError(f"{self.path}: run numbers exhausted (uint32)")
                self._set_attribute(lock_fd, number)
                self._write(self._copy_path, number, sync_dir=False)
                self._write(self.path, number, sync_dir=True)
                with _ISSUED_LOCK:
                    _ISSUED[self._key()] = number
                return number
            finally:
                os.close(lock_fd)  # closing releases the flock

    @property
    def _attribute(self) -> str:
        return f"user.aliecs.{self.path.name}"

    def _get_attribute(self) -> int:
        try:
            fd = os.open(self.path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError:
            return 0
        try:
            match = _NUMBER.fullmatch(os.getxattr(fd, self._attribute))
        except OSError:  # absent, or no extended attributes on this file system
            return 0
        finally:
            os.close(fd)
        return int(match[1]) if match else 0

    def _set_attribute(self, dir_fd: int, number: int) -> None:
        # no extended attributes on some file systems: the two files still keep the number
        with contextlib.suppress(OSError):
            os.setxattr(dir_fd, self._attribute, str(number).encode())

    def _key(self) -> Path:
        return Path(os.path.abspath(self.path))

    def _issued(self) -> int:
        with _ISSUED_LOCK:
            return _ISSUED.get(self._key(), 0)

    def _current(self) -> int:
        """The largest of the file, its copy and this process's memory, warning about what
        was missing."""
        main = self._read(self.path)
        copy = max(self._read_copy(), self._get_attribute())
        issued = self._issued()
        best = max(main or 0, copy, issued)
        if main is None and best > 0:
            log.warning("%s: run-number file missing; continuing from %d (%s), never from 1",
                        self.path, best, "its copy" if copy == best else "this process's memory")
        elif main is not None and main < best:
            log.warning("%s: run-number file holds %d, less than %d already handed out; "
                        "continuing from %d", self.path, main, best, best)
        return best

    def _read_copy(self) -> int:
        try:
            return self._read(self._copy_path) or 0
        except RunNumberError as exc:
            log.warning("%s (the copy is ignored)", exc)
            return 0

    def _read(self, path: Path) -> int | None:
        """The number in ``path``; None when it does not exist."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RunNumberError(f"{path}: cannot read run-number file: {exc}") from exc
        match = _NUMBER.fullmatch(data)
        if match is None:
            raise RunNumberError(
                f"{path}: corrupt run-number file: expected the last run number as decimal "
                f"text, found {data[:40]!r}; fix or remove the file deliberately (its copy "
                f"{self._copy_path.name} and this process's memory still keep numbering "
                "increasing)"
            )
        return int(match[1])

    def _write(self, path: Path, number: int, *, sync_dir: bool) -> None:
        tmp = path.with_name(f"{path.name}.tmp.{os.getpid()}.{threading.get_ident()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, f"{number}\n".encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            if sync_dir:
                dir_fd = os.open(path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise RunNumberError(f"{path}: cannot write run-number file: {exc}") from exc
