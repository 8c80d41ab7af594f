"""A client in another language: Go code generated from protos/o2control.proto (protoc-gen-go
and protoc-gen-go-grpc from the Go module proxy, grpcio-tools' protoc) creates an environment
on a running ``serve``, lists it, and decodes the Subscribe stream.

The generators are installed once into the cache (``~/.cache/aliecs-integration/go-tools``);
the client is generated and built in a temporary copy of tests/goclient on every run (the Go
build and module caches make repeated runs quick). Nothing generated is committed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.test_control_service import Serve, serve_factory  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("ALIECS_CACHE") or Path.home() / ".cache" / "aliecs-integration")
TOOLS_BIN = CACHE / "go-tools" / "bin"
GENERATORS = {
    "protoc-gen-go": "google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12",
    "protoc-gen-go-grpc": "google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2",
}
MODULE = "aliecs.test/goclient"
PROTOS = ("protos/common.proto", "protos/events.proto", "protos/o2control.proto")
GO_PACKAGES = {"protos/common.proto": "eventspb", "protos/events.proto": "eventspb",
               "protos/o2control.proto": "pb"}
"""As in the reference: common and events in one package, the control API in another (both
declare a WorkflowTemplateInfo)."""

pytestmark = pytest.mark.slow


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
                          check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def build_go_client(work: Path) -> Path:
    """Generate the Go package from the protos and build tests/goclient in ``work``."""
    go = shutil.which("go")
    assert go is not None, "the Go toolchain is needed (see README: Go is a requirement)"
    env = {**os.environ, "GOBIN": str(TOOLS_BIN), "GOFLAGS": "-mod=mod"}
    for name, package in GENERATORS.items():
        if not (TOOLS_BIN / name).exists():
            _run([go, "install", package], REPO, env)
    shutil.copytree(REPO / "tests" / "goclient", work)
    mappings = [f"M{proto}={MODULE}/{pkg};{pkg}" for proto, pkg in GO_PACKAGES.items()]
    _run([sys.executable, "-m", "grpc_tools.protoc", f"-I{REPO}",
          f"--plugin=protoc-gen-go={TOOLS_BIN / 'protoc-gen-go'}",
          f"--plugin=protoc-gen-go-grpc={TOOLS_BIN / 'protoc-gen-go-grpc'}",
          f"--go_out={work}", f"--go-grpc_out={work}",
          *(f"--go_opt={opt}" for opt in (f"module={MODULE}", *mappings)),
          *(f"--go-grpc_opt={opt}" for opt in (f"module={MODULE}", *mappings)),
          *(str(REPO / proto) for proto in PROTOS)], REPO)
    assert (work / "pb" / "o2control_grpc.pb.go").exists()
    binary = work / "goclient"
    _run([go, "build", "-o", str(binary), "."], work, env)
    return binary


def test_go_client_creates_and_lists_an_environment(
    serve_factory: Callable[[], Serve], tmp_path: Path,  # noqa: F811
) -> None:
    binary = build_go_client(tmp_path / "goclient")
    serve = serve_factory().start()
    watch = subprocess.Popen([str(binary), "-server", serve.address, "watch", "6"],
                             stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    assert watch.stdout is not None
    assert watch.stdout.readline() == "subscribed\n"
    created = _run([str(binary), "-server", serve.address, "create", "default", "FT0,FV0"],
                   tmp_path).split()
    env_id, state = created
    assert state == "CONFIGURED"
    watched = watch.communicate(timeout=30)[0].splitlines()
    assert watch.returncode == 0 and len(watched) == 6
    # the Subscribe stream decoded in Go: this environment's first events, in order
    assert watched[0].startswith(f"{env_id} environmentEvent CREATE/")
    assert all(line.startswith(f"{env_id} ") for line in watched)
    listed = _run([str(binary), "-server", serve.address, "list"], tmp_path).splitlines()
    assert listed == [f"{env_id} CONFIGURED default FT0,FV0"]
    with serve.client() as client:
        info = client.environment(env_id).environment
        assert info.userVars["client"] == "go"
        client.destroy(env_id)
    framework_id, count = _run([str(binary), "-server", serve.address, "info"],
                               tmp_path).split()
    assert count == "0" and len(framework_id) == 36
    assert serve.terminate() == 0, serve.output()
