"""Live settings: watching the settings source and handing each new valid document on.

:class:`SettingsWatcher` follows one source:

- Consul: two blocking queries (py-consul's ``index``/``wait``), one on the settings key and one
  on the runtime-variable prefix ``o2/runtime/aliecs/vars/``; when either index moves, the
  whole document and the variables are read again;
- a YAML file: polled every ``poll_s`` (size, mtime and, when those move, a hash of the
  content), and read again on :meth:`SettingsWatcher.trigger` (``serve`` calls it on SIGHUP).

A new document is validated completely first, with the same checks as at start
(:func:`~aliecs_integration.settings.sources.settings_from`). Invalid: nothing changes, the
error (source, key, what was expected) is logged and counted as ``refused`` (the same invalid
document again is not counted twice). Valid and different: ``apply(new)`` is called on the
watcher's one reload thread, then what changed is logged (secrets masked,
:mod:`aliecs_integration.settings.changes`) and counted as ``applied``. While the source
cannot be read, the last good settings stay; the watch retries with exponential backoff and
jitter, says so once, and says when the source is back (then reads it again: it may have
changed meanwhile).

``WatchStatus`` is what the metrics endpoint and ``/healthz`` read
(:meth:`SettingsWatcher.status`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
from collections.abc import Callable, Collection
from pathlib import Path

import attrs

from aliecs_integration.errors import SettingsError
from aliecs_integration.settings.changes import Change, changes
from aliecs_integration.settings.consul_access import ConsulAccess
from aliecs_integration.settings.core import Settings
from aliecs_integration.settings.sources import (
    DEFAULT_TIMEOUT_S,
    DEFAULT_VARS_PREFIX,
    Document,
    SourceSpec,
    parse_source,
    read_consul,
    read_file,
    settings_from,
    wait_for_change,
)

log = logging.getLogger(__name__)


@attrs.frozen
class WatchStatus:
    """A snapshot of the settings watch.

    ``source`` is the settings source as shown to operators (secrets masked); ``reachable``
    is false while the last read of the source failed; ``applied`` and ``refused`` count new
    documents since start (a refused one left the running settings unchanged);
    ``watch_errors`` counts failed reads of the source; ``last_error`` is the last such
    failure's message, or None. ``last_refusal`` is the last refused document's error.
    """

    source: str
    reachable: bool = True
    applied: int = 0
    refused: int = 0
    watch_errors: int = 0
    last_error: str | None = None
    last_refusal: str | None = None


@attrs.frozen
class Backoff:
    """Delays between retries: ``initial_s`` doubling up to ``max_s``, each multiplied by a
    random factor in [0.5, 1) (jitter: instances do not retry in step)."""

    initial_s: float = 0.5
    max_s: float = 30.0

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """The delay before retry number ``attempt`` (1 for the first)."""
        base = min(self.max_s, self.initial_s * (2.0 ** max(0, attempt - 1)))
        return base * (0.5 + rand() / 2.0)


Apply = Callable[[Settings], object]
"""Applies new, valid settings to the running service; raising means not applied."""


@attrs.frozen
class ReloadResult:
    """What one :meth:`SettingsWatcher.reload` did: ``outcome`` is ``applied``,
    ``unchanged``, ``refused`` or ``unreachable``; ``changes`` what was applied; ``error``
    the refusal or read failure."""

    outcome: str
    changes: tuple[Change, ...] = ()
    error: str | None = None


class SettingsWatcher:
    """Watches ``source`` (as given to ``--settings``) starting from the running ``current``
    settings; see the module doc. ``start()`` then ``stop()``; :meth:`reload` does one
    read-validate-apply synchronously (the watch threads call it on their one reload thread).
    Raises ``SettingsError`` at construction for a source that cannot be parsed."""

    def __init__(
        self,
        source: str,
        current: Settings,
        apply: Apply,
        *,
        token: str | None = None,
        ca_file: str | Path | None = None,
        client_cert: str | Path | None = None,
        client_key: str | Path | None = None,
        declared_keys: Collection[str] = (),
        vars_prefix: str = DEFAULT_VARS_PREFIX,
        wait_s: float = 30.0,
        poll_s: float = 1.0,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        backoff: Backoff = Backoff(),
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.spec: SourceSpec = parse_source(source, token=token, ca_file=ca_file,
                                             client_cert=client_cert, client_key=client_key)
        self._current = current
        self._apply = apply
        self._declared = tuple(declared_keys)
        self._vars_prefix = vars_prefix
        self._wait_s, self._poll_s, self._timeout_s = wait_s, poll_s, timeout_s
        self._backoff, self._rand = backoff, rand
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._status = WatchStatus(self.spec.shown)
        self._failures_in_row = 0
        self._outages = 0
        self._refused_document: Document | None = None
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ public
    @property
    def current(self) -> Settings:
        """The settings in force (the last applied, or those given at start)."""
        return self._current

    def status(self) -> WatchStatus:
        """The watch now (see :class:`WatchStatus`); safe from any thread."""
        with self._lock:
            return self._status

    def start(self) -> None:
        """Start the watch threads (daemon threads)."""
        targets: list[tuple[str, Callable[[], None]]] = [("settings-reload", self._reload_loop)]
        if self.spec.path is not None:
            targets.append(("settings-file-watch", self._poll_file))
        else:
            targets.append(("settings-consul-watch", lambda: self._watch_consul(
                self.spec.key, recurse=False)))
            targets.append(("settings-consul-vars-watch", lambda: self._watch_consul(
                self._vars_prefix, recurse=True)))
        for name, target in targets:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("watching settings at %s for changes", self.spec.shown)

    def trigger(self) -> None:
        """Read the source again soon (on the reload thread), e.g. on SIGHUP."""
        self._wanted.set()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop watching; a reload in progress finishes. Threads waiting in a Consul blocking
        query are abandoned (daemon threads; they end with the query)."""
        self._stop.set()
        self._wanted.set()
        for thread in self._threads:
            if thread.name == "settings-reload":
                thread.join(timeout_s)

    def reload(self) -> ReloadResult:
        """Read the source, validate, and apply when valid and different (see the module
        doc). Never raises."""
        with self._reload_lock:
            started = self._outage_count()
            try:
                document = self._read()
            except SettingsError as exc:
                self._failed(exc)
                return ReloadResult("unreachable", error=str(exc))
            self._reachable(started)
            if document == self._refused_document:
                return ReloadResult("refused", error=self.status().last_refusal)
            try:
                new = settings_from(document, declared_keys=self._declared)
            except SettingsError as exc:
                return self._refuse(document, str(exc))
            self._refused_document = None
            found = tuple(changes(self._current, new))
            if not found:
                log.debug("settings at %s: unchanged", self.spec.shown)
                return ReloadResult("unchanged")
            try:
                self._apply(new)
            except Exception as exc:
                log.exception("settings from %s not applied", self.spec.shown)
                return self._refuse(document, f"not applied: {exc}")
            self._current = new
            with self._lock:
                self._status = attrs.evolve(self._status, applied=self._status.applied + 1)
            log.info("settings from %s applied: %s", self.spec.shown,
                     "; ".join(str(c) for c in found))
            return ReloadResult("applied", found)

    # ------------------------------------------------------------------ internals
    def _read(self) -> Document:
        if self.spec.path is not None:
            return read_file(self.spec.path)
        return read_consul(self._access(), settings_key=self.spec.key,
                           vars_prefix=self._vars_prefix, timeout_s=self._timeout_s)

    def _access(self) -> ConsulAccess:
        """Consul's address, TLS (CA bundle, client certificate) and token for the next
        request. A token from a token file is read again each time, so a rotated token applies
        without a restart (a file that cannot be read then is a failed read:
        ``SettingsError``); the certificate files are read by each new connection."""
        assert self.spec.access is not None
        return self.spec.access.refreshed()

    def _refuse(self, document: Document, error: str) -> ReloadResult:
        self._refused_document = document
        with self._lock:
            self._status = attrs.evolve(self._status, refused=self._status.refused + 1,
                                        last_refusal=error)
        log.error("new settings refused, the running settings are kept: %s", error)
        return ReloadResult("refused", error=error)

    def _failed(self, exc: BaseException) -> int:
        """One failed read: counted; logged once per outage. Returns the failures in a row."""
        with self._lock:
            first = self._status.reachable
            self._failures_in_row += 1
            self._status = attrs.evolve(self._status, reachable=False, last_error=str(exc),
                                        watch_errors=self._status.watch_errors + 1)
            count = self._failures_in_row
            if first:
                self._outages += 1
        if first:
            log.warning("settings source %s cannot be read: %s; keeping the last good settings "
                        "and retrying with backoff (said once until it is back)",
                        self.spec.shown, exc)
        else:
            log.debug("settings source %s still cannot be read: %s", self.spec.shown, exc)
        return count

    def _outage_count(self) -> int:
        """How many outages began so far; taken before a read, handed to :meth:`_reachable`."""
        with self._lock:
            return self._outages

    def _reachable(self, started: int) -> bool:
        """A read that began when :meth:`_outage_count` was ``started`` succeeded; True when
        the source was unreachable until now (logged). A read that began before the current
        outage (e.g. a blocking query answered as the server shut down) proves nothing."""
        with self._lock:
            if self._outages != started:
                return False
            was_down = not self._status.reachable
            failures = self._failures_in_row
            self._failures_in_row = 0
            if was_down:
                self._status = attrs.evolve(self._status, reachable=True)
        if was_down:
            log.warning("settings source %s is reachable again (after %d failed attempt(s))",
                        self.spec.shown, failures)
        return was_down

    def _reload_loop(self) -> None:
        while not self._stop.is_set():
            self._wanted.wait()
            if self._stop.is_set():
                return
            self._wanted.clear()
            self.reload()

    def _watch_consul(self, key: str, *, recurse: bool) -> None:
        index = 0
        while not self._stop.is_set():
            started = self._outage_count()
            try:
                new_index = wait_for_change(self._access(), key, index=index,
                                            wait_s=self._wait_s, recurse=recurse)
            except SettingsError as exc:
                attempt = self._failed(exc)
                self._stop.wait(self._backoff.delay(attempt, self._rand))
                continue
            if self._reachable(started) or new_index != index:
                self._wanted.set()  # changed (or may have, while unreachable): read it again
            # Consul's index may go backwards (the agent restarted): start again from 0
            index = new_index if new_index >= index else 0

    def _poll_file(self) -> None:
        assert self.spec.path is not None
        path = self.spec.path
        seen: tuple[int, int] | None = None
        digest: bytes | None = None
        missing = False
        while not self._stop.wait(self._poll_s):
            try:
                st = os.stat(path)
            except OSError as exc:
                if not missing:
                    missing = True
                    self._failed(SettingsError(f"settings file: {exc.strerror}",
                                               source=os.path.abspath(path)))
                continue
            if missing:
                missing = False
                self._wanted.set()
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp == seen:
                continue
            seen = stamp
            try:
                new_digest = hashlib.sha256(path.read_bytes()).digest()
            except OSError:
                continue  # the reload reports it
            if new_digest != digest:
                digest = new_digest
                self._wanted.set()
