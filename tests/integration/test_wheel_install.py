"""The package as a user gets it: ``python -m build`` makes the sdist and (from it) the wheel,
the wheel goes into a fresh venv outside the checkout, and the installed command runs the demo
against the test servers, prints the hook reference, writes the fdset and shows consume's help.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from aliecs_integration.devservers import DEV_CONSUL_ADDRESS, DEV_KAFKA_BOOTSTRAP

REPO = Path(__file__).resolve().parents[2]

WHEEL_MUST_HAVE = {
    "aliecs_integration/__main__.py", "aliecs_integration/py.typed",
    "aliecs_integration_plugins/py.typed", "aliecs_integration/examples/settings.yaml",
    "aliecs_integration/examples/scenario.yaml", "aliecs_integration/protos/common.proto",
    "aliecs_integration/protos/events.proto", "aliecs_integration/protos/kafka.proto",
    "aliecs_integration/pb/events_pb2.py", "aliecs_integration_plugins/core_kafka.py",
}
SDIST_MUST_HAVE = {"LICENSE", "README.md", "setup.cfg", "pyproject.toml", "mkdocs.yml",
                   "protos/events.proto", "docs/architecture.md", "docs/plugins.md",
                   "examples/scenario.yaml", "examples/third_party_plugin/pyproject.toml",
                   "dev/kafka", "dev/consul"}


def run(*args: str | Path, cwd: Path, env: dict[str, str], timeout: float = 300,
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)


@pytest.mark.slow
@pytest.mark.timeout(1200)  # cold: new venvs, wheels fetched from PyPI
def test_wheel_in_a_fresh_venv_runs_the_demo_and_the_tools(
    kafka_bootstrap: str, consul_address: str, tmp_path: Path
) -> None:
    if (kafka_bootstrap, consul_address) != (DEV_KAFKA_BOOTSTRAP, DEV_CONSUL_ADDRESS):
        pytest.skip("the demo uses the dev servers' fixed addresses")
    assert not tmp_path.is_relative_to(REPO)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "ALIECS_SETTINGS", "ALIECS_KAFKA_BROKERS")}
    dist = tmp_path / "dist"
    built = run(sys.executable, "-m", "build", "--no-isolation", "-o", dist, REPO,
                cwd=tmp_path, env=env)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,), (sdist,) = dist.glob("*.whl"), dist.glob("*.tar.gz")

    wheel_names = set(zipfile.ZipFile(wheel).namelist())
    missing = WHEEL_MUST_HAVE - wheel_names
    assert not missing, missing
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in wheel_names)
    assert not any("third_party_plugin" in n or n.startswith("tests/") for n in wheel_names)
    top = sdist.name.removesuffix(".tar.gz")
    with tarfile.open(sdist) as tar:
        sdist_names = {n.removeprefix(top + "/") for n in tar.getnames()}
    missing = SDIST_MUST_HAVE - sdist_names
    assert not missing, missing
    metadata = zipfile.ZipFile(wheel).read(
        next(n for n in wheel_names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Requires-Dist: requests" in metadata
    assert "License-File: LICENSE" in metadata

    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", venv, cwd=tmp_path, env=env).returncode == 0
    installed = run(venv / "bin" / "python", "-m", "pip", "install", "-q",
                    "--disable-pip-version-check", wheel, cwd=tmp_path, env=env, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    command = venv / "bin" / "aliecs-integration"
    home = tmp_path / "user"  # cwd outside the checkout: nothing can come from the repo

    where = run(venv / "bin" / "python", "-c", "import aliecs_integration as a, "
                "aliecs_integration_plugins as p; print(a.__file__); print(p.__file__)",
                cwd=tmp_path, env=env)
    assert where.returncode == 0, where.stderr
    assert all(Path(line).is_relative_to(venv) for line in where.stdout.split()), where.stdout

    hooks = run(command, "hooks", cwd=tmp_path, env=env)
    assert hooks.returncode == 0, hooks.stderr
    assert "def on_run_sor_eor(event: RunEvent) -> None" in hooks.stdout
    fdset = run(command, "fdset", "-o", home / "fdset", cwd=tmp_path, env=env)
    assert fdset.returncode == 0, fdset.stderr
    assert (home / "fdset" / "events.fdset").stat().st_size > 1000
    helped = run(command, "consume", "--help", cwd=tmp_path, env=env)
    assert helped.returncode == 0 and "--raw" in helped.stdout and "--env ID" in helped.stdout
    version = run(venv / "bin" / "python", "-m", "aliecs_integration", "--version",
                  cwd=tmp_path, env=env)
    assert version.returncode == 0 and "aliecs-integration, version" in version.stdout

    demo = run(command, "demo", "--run-numbers", home / "rn", cwd=tmp_path, env=env)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    out = demo.stdout
    assert "kafka: already running, reused at 127.0.0.1:19092" in out
    scenario = venv.glob("lib/python*/site-packages/aliecs_integration/examples/scenario.yaml")
    assert f"== 3. scenario {next(scenario)}: 3 environments" in out
    # the example settings load the legacy plugin and the simulated trg, dcs and odc services
    assert ("plugins: core-kafka loaded; dcs loaded; ddsched not loaded (not named in "
            "integrationPlugins); kafka loaded; odc loaded; trg loaded") in out
    assert "0 not as expected" in out and "\n! " not in out
    total = next(line for line in out.splitlines() if line.startswith("total "))
    published, acked, failed, dropped, pending, read_back = total.split()[1:7]
    assert published == acked and int(acked) > 100, total
    # every acknowledged message was read back; a demo run at the same time by another test
    # session on the shared broker writes the same topics, hence >=
    assert int(read_back) >= int(acked), total
    assert failed == dropped == pending == "0", total
