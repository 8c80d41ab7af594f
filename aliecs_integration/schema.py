"""The wire schema: generating the Python bindings and exporting a FileDescriptorSet.

The ``.proto`` files in ``protos/`` are the source of truth. Their generated modules are
committed under ``aliecs_integration/pb`` (so installing the package needs no protoc) and a
test regenerates them and compares, so they can never drift. Regenerate with::

    python -m aliecs_integration.schema
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2

from aliecs_integration.pb import common_pb2, events_pb2, kafka_pb2

PROTO_FILES = ("protos/common.proto", "protos/events.proto", "protos/kafka.proto")
"""Schema files, named as recorded in the descriptors (the import path matters to consumers)."""

_IMPORT_RE = re.compile(r"^from protos(\.| import )", re.MULTILINE)


def _rewrite_imports(source: str) -> str:
    """Point generated cross-file imports at our package instead of a top-level ``protos``."""
    return _IMPORT_RE.sub(
        lambda m: "from aliecs_integration.pb" + m.group(1), source
    )


def generate(repo_root: Path, out_dir: Path) -> list[Path]:
    """Run protoc (grpcio-tools, a dev dependency) on ``PROTO_FILES`` into ``out_dir``.

    Returns the files written. Raises ``RuntimeError`` naming the protoc error on failure.
    """
    from grpc_tools import protoc  # dev-only dependency

    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{repo_root}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            *(str(repo_root / name) for name in PROTO_FILES),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {', '.join(PROTO_FILES)}")
        written = []
        for produced in sorted((Path(tmp) / "protos").iterdir()):
            target = out_dir / produced.name
            target.write_text(_rewrite_imports(produced.read_text()))
            written.append(target)
    return written


def file_descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    """All three schema files as a FileDescriptorSet, dependencies first.

    File names keep the ``protos/`` prefix so ``import public "protos/common.proto"`` resolves
    and tools such as ``pq --msgtype events.Event`` can decode ``aliecs.*`` topics.
    """
    fds = descriptor_pb2.FileDescriptorSet()
    for module in (common_pb2, events_pb2, kafka_pb2):
        module.DESCRIPTOR.CopyToProto(fds.file.add())
    return fds


FDSET_FILE_NAME = "events.fdset"
"""The file written into a directory target: pq reads every ``*.fdset`` of ``FDSET_PATH``."""


def write_fdset(target: Path) -> tuple[Path, int]:
    """Write :func:`file_descriptor_set` and return the file written and its size in bytes.

    ``target`` is a directory (one that exists, or a path without a suffix, created with its
    parents) that receives :data:`FDSET_FILE_NAME`, the layout pq's ``FDSET_PATH`` expects, or
    else a file path (``x.fdset``; its directory must exist). Raises ``OSError`` when it cannot
    be written.
    """
    if target.is_dir() or (not target.exists() and not target.suffix):
        target.mkdir(parents=True, exist_ok=True)
        target = target / FDSET_FILE_NAME
    data = file_descriptor_set().SerializeToString()
    try:
        target.write_bytes(data)
    except OSError as exc:  # a full device, a read-only file: name the file
        if exc.filename is None:
            exc.filename = str(target)
        raise
    return target, len(data)


def main() -> int:
    repo_root = Path(__file__).resolve().parent.parent
    for path in generate(repo_root, repo_root / "aliecs_integration" / "pb"):
        print(f"wrote {path.relative_to(repo_root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
