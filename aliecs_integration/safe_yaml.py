"""One safe way to read YAML input: settings files and documents, scenarios and workflows.

Hostile or careless input must end in one clear error, never a hang or gigabytes of memory:

- only regular files are read (a FIFO, ``/dev/zero``, a directory or a socket is refused
  without being opened for a blocking read), at most :data:`MAX_BYTES`, within
  :data:`READ_TIMEOUT_S`;
- binary input (a NUL byte, or bytes that are not UTF-8) is refused naming the offset;
- parsing uses PyYAML's safe loader (no Python tags) with limits checked on the parser's
  events before any node is built: nesting depth (:data:`MAX_DEPTH`), alias references
  (:data:`MAX_ALIASES`), values (:data:`MAX_NODES`); then the size of the document with every
  alias expanded (:data:`MAX_NODES` again), so a "billion laughs" document is
  refused before anything walks it; recursive aliases are refused;
- duplicate mapping keys are refused instead of the last one silently winning.

Every failure raises :class:`YamlInputError`; its message names the line and column when the
problem has one. Callers prefix their own source (path or Consul key) and error class.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import Any

import yaml

from aliecs_integration.errors import AliecsError

MAX_BYTES = 4 * 1024 * 1024
"""The largest YAML input accepted (4 MiB: settings are kilobytes, large scenarios a few MiB)."""
READ_TIMEOUT_S = 5.0
MAX_DEPTH = 64
MAX_ALIASES = 1000
MAX_NODES = 250_000
"""Values (scalars, lists, mappings) in a document, aliases expanded."""


class YamlInputError(AliecsError):
    """Unreadable, oversized, binary, malformed or over-limit YAML input (message without the
    source: callers add it)."""

    exit_code = 2


def _at(mark: Any) -> str:
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_text(
    path: Path | str, *, max_bytes: int = MAX_BYTES, timeout_s: float = READ_TIMEOUT_S
) -> str:
    """The UTF-8 text of the regular file ``path``.

    Raises :class:`YamlInputError` when it is missing, unreadable, not a regular file, larger
    than ``max_bytes``, binary (NUL byte / not UTF-8), or not read within ``timeout_s``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise YamlInputError("file not found") from None
    except OSError as exc:
        raise YamlInputError(f"cannot open: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise YamlInputError(f"{_kind(info.st_mode)}, not a regular file: refused")
        if info.st_size > max_bytes:
            raise YamlInputError(
                f"{info.st_size} bytes: larger than the {max_bytes} bytes accepted"
            )
    except BaseException:
        os.close(fd)
        raise
    data = _read_bounded(fd, max_bytes, timeout_s)
    return decode(data, max_bytes=max_bytes)


def _read_bounded(fd: int, max_bytes: int, timeout_s: float) -> bytes:
    """Read ``fd`` on a thread of its own, waiting at most ``timeout_s``; takes ownership of
    ``fd`` (the reading thread closes it when it stops, even after the caller gave up)."""
    chunks: list[bytes] = []
    failure: list[BaseException] = []

    def reader() -> None:
        try:
            total = 0
            while total <= max_bytes:
                chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
                if not chunk:
                    return
                chunks.append(chunk)
                total += len(chunk)
        except OSError as exc:
            failure.append(exc)
        finally:
            # The reader owns the descriptor: closed only once no read can follow, so a
            # reader that outlives the timeout never reads a reused descriptor number.
            os.close(fd)

    thread = threading.Thread(target=reader, name="yaml-read", daemon=True)
    try:
        thread.start()
    except BaseException:
        os.close(fd)
        raise
    thread.join(timeout_s)
    if thread.is_alive():
        raise YamlInputError(f"not read within {timeout_s:g} s: refused")
    if failure:
        exc = failure[0]
        raise YamlInputError(f"cannot read: {getattr(exc, 'strerror', None) or exc}")
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise YamlInputError(f"larger than the {max_bytes} bytes accepted")
    return data


def decode(data: bytes, *, max_bytes: int = MAX_BYTES) -> str:
    """``data`` as UTF-8 text; :class:`YamlInputError` when larger than ``max_bytes`` or
    binary."""
    if len(data) > max_bytes:
        raise YamlInputError(f"{len(data)} bytes: larger than the {max_bytes} bytes accepted")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise YamlInputError(f"binary data, not YAML text (NUL byte at offset {nul})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlInputError(
            f"binary data, not YAML text (not UTF-8 at byte offset {exc.start})"
        ) from None


_BASE: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser when PyYAML was built with it (tens of times faster), else PyYAML's."""
_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


class _Loader(_BASE):  # type: ignore[misc]
    """The safe loader, duplicate keys refused (see :func:`_construct_mapping`)."""


def _check_events(text: str) -> None:
    """First pass over the parser's events (cheap, no nodes built): nesting depth, aliases
    and the number of nodes, each against its limit."""
    loader = _Loader(text)
    depth = aliases = nodes = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, _OPEN):
                depth += 1
                if depth > MAX_DEPTH:
                    raise YamlInputError(
                        f"nested deeper than {MAX_DEPTH} levels{_at(event.start_mark)}: refused"
                    )
            elif isinstance(event, _CLOSE):
                depth -= 1
                continue
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    raise YamlInputError(
                        f"more than {MAX_ALIASES} aliases{_at(event.start_mark)}: refused"
                    )
            elif not isinstance(event, yaml.ScalarEvent):
                continue
            nodes += 1
            if nodes > MAX_NODES:
                raise YamlInputError(
                    f"more than {MAX_NODES} values{_at(event.start_mark)}: refused"
                )
    finally:
        loader.dispose()


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:  # unhashable key: construct_mapping reports it
            continue
        if duplicate:
            raise YamlInputError(f"duplicate key {key!r}{_at(key_node.start_mark)}")
        seen.add(key)
    mapping: dict[Any, Any] = loader.construct_mapping(node, deep=True)
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _expanded_size(root: yaml.Node) -> int:
    """Nodes in the document with every alias expanded (memoised: linear in the nodes);
    raises :class:`YamlInputError` past :data:`MAX_NODES` or for a recursive alias."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            total = 1
            if isinstance(node, yaml.MappingNode):
                total += sum(sizes[id(k)] + sizes[id(v)] for k, v in node.value)
            elif isinstance(node, yaml.SequenceNode):
                total += sum(sizes[id(v)] for v in node.value)
            if total > MAX_NODES:
                raise YamlInputError(
                    f"more than {MAX_NODES} nodes once aliases are expanded"
                    f"{_at(node.start_mark)}: refused (an alias bomb?)"
                )
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise YamlInputError(f"recursive alias{_at(node.start_mark)}: refused")
        on_path.add(key)
        stack.append((node, True))
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                children += [k, v]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        for child in children:
            if id(child) in on_path:
                raise YamlInputError(f"recursive alias{_at(child.start_mark)}: refused")
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def parse(text: str, *, max_bytes: int = MAX_BYTES) -> Any:
    """Parse one YAML document with the limits of this module (``None`` for an empty one).

    Raises :class:`YamlInputError` naming line and column of a malformed document, a
    duplicate key, or a limit exceeded.
    """
    if len(text) > max_bytes:
        raise YamlInputError(f"{len(text)} characters: larger than the {max_bytes} accepted")
    if "\x00" in text:
        raise YamlInputError(f"binary data, not YAML text (NUL at offset {text.index(chr(0))})")
    loader = None
    try:
        _check_events(text)
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        detail = f"{_at(mark)}: {exc.problem or exc.context or 'unparsable'}"
        if exc.context and exc.problem:
            detail += f" ({exc.context}{_at(exc.context_mark)})"
        raise YamlInputError(f"malformed YAML{detail}") from None
    except yaml.YAMLError as exc:
        raise YamlInputError(f"malformed YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise YamlInputError(f"nested deeper than {MAX_DEPTH} levels: refused") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_file(path: Path | str, *, max_bytes: int = MAX_BYTES) -> Any:
    """:func:`read_text` then :func:`parse`."""
    return parse(read_text(path, max_bytes=max_bytes), max_bytes=max_bytes)
