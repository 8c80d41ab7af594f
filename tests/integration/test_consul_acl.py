"""Secured Consul (issue 15): against the ACL agent (default policy deny), a token that may read
only the settings key loads the settings through every way of passing it (--consul-token,
?token-file=PATH on the URL, $CONSUL_HTTP_TOKEN) in `settings show`, `plugins` and `serve`; no
token and a wrong token each give one clear error; the token is never printed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner, Result

from aliecs_integration.cli.main import cli
from tests.servers import CONSUL_ACL_MANAGEMENT_TOKEN

pytestmark = pytest.mark.consul

MANAGEMENT = {"X-Consul-Token": CONSUL_ACL_MANAGEMENT_TOKEN}
DOCUMENT = b"kafkaEndpoints: [acl-test-broker:9092]\nenableKafka: false\n"


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env={"CONSUL_HTTP_TOKEN": "", **(env or {})})


def one_error(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


class Secured:
    """A settings key on the ACL agent and a token that may read that key and nothing else."""

    def __init__(self, address: str, tmp_path: Path) -> None:
        self.address = address
        self.key = f"t{uuid.uuid4().hex[:10]}/settings"
        requests.put(f"http://{address}/v1/kv/{self.key}", data=DOCUMENT, headers=MANAGEMENT,
                     timeout=10).raise_for_status()
        name = f"read-{self.key.replace('/', '-')}"
        requests.put(f"http://{address}/v1/acl/policy", headers=MANAGEMENT, timeout=10,
                     json={"Name": name, "Rules": f'key "{self.key}" {{ policy = "read" }}'}
                     ).raise_for_status()
        answer = requests.put(f"http://{address}/v1/acl/token", headers=MANAGEMENT, timeout=10,
                              json={"Policies": [{"Name": name}]})
        answer.raise_for_status()
        self.token: str = answer.json()["SecretID"]
        self.wrong = str(uuid.uuid4())  # a well-formed token Consul does not know
        self.token_file = tmp_path / "consul-token"
        self.token_file.write_text(f"{self.token}\n")
        self.wrong_file = tmp_path / "wrong-token"
        self.wrong_file.write_text(self.wrong)

    @property
    def source(self) -> str:
        return f"consul://{self.address}/{self.key}"

    def with_file(self, path: Path) -> str:
        return f"{self.source}?token-file={path}"

    def assert_not_shown(self, text: str) -> None:
        assert self.token not in text and self.wrong not in text


@pytest.fixture
def secured(consul_acl_address: str, tmp_path: Path) -> Secured:
    return Secured(consul_acl_address, tmp_path)


def test_the_read_only_token_cannot_read_anything_else(secured: Secured) -> None:
    """The premise: default deny, and the token reads only the settings key."""
    base = f"http://{secured.address}/v1/kv"
    assert requests.get(f"{base}/{secured.key}", timeout=10).status_code == 403
    header = {"X-Consul-Token": secured.token}
    assert requests.get(f"{base}/{secured.key}", headers=header, timeout=10).status_code == 200
    other = requests.get(f"{base}/{secured.key}-other", headers=header, timeout=10)
    assert other.status_code == 403
    written = requests.put(f"{base}/{secured.key}", headers=header, data=b"{}", timeout=10)
    assert written.status_code == 403


# each way of giving the token: (extra CLI args, environment, source builder)
WAYS: dict[str, Callable[[Secured], tuple[list[str], dict[str, str], str]]] = {
    "--consul-token": lambda s: (["--consul-token", s.token], {}, s.source),
    "token-file": lambda s: ([], {}, s.with_file(s.token_file)),
    "$CONSUL_HTTP_TOKEN": lambda s: ([], {"CONSUL_HTTP_TOKEN": s.token}, s.source),
    # precedence: the option wins over a wrong URL file, the URL file over a wrong environment
    "option over URL": lambda s: (["--consul-token", s.token], {}, s.with_file(s.wrong_file)),
    "URL over environment": lambda s: ([], {"CONSUL_HTTP_TOKEN": s.wrong},
                                       s.with_file(s.token_file)),
}


@pytest.mark.parametrize("way", list(WAYS))
@pytest.mark.parametrize("command", [["settings", "show", "--source"],
                                     ["plugins", "--wait", "0", "--settings"]])
def test_right_token_loads_the_settings(secured: Secured, way: str, command: list[str]) -> None:
    args, env, source = WAYS[way](secured)
    result = invoke(*command, source, *args, env=env)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"settings: {secured.source}" in result.stdout  # shown without the query
    if command[0] == "settings":
        assert "acl-test-broker:9092" in result.stdout
    secured.assert_not_shown(result.stdout + result.stderr)


@pytest.mark.parametrize("command", [["settings", "show", "--source"],
                                     ["plugins", "--wait", "0", "--settings"]])
def test_no_token_one_error_naming_the_permission_and_how_to_pass_one(
    secured: Secured, command: list[str]
) -> None:
    result = invoke(*command, secured.source)
    assert result.exit_code == 1, result.stdout + result.stderr
    line = one_error(result)
    assert "denied permission to read (ACL): no token was given (anonymous)" in line, line
    assert f"needs key:read on '{secured.key}'" in line, line
    assert "--consul-token TOKEN, ?token-file=PATH" in line and "$CONSUL_HTTP_TOKEN" in line


@pytest.mark.parametrize("way", ["--consul-token", "token-file", "$CONSUL_HTTP_TOKEN"])
def test_wrong_token_one_error(secured: Secured, way: str) -> None:
    args, env, source = {
        "--consul-token": (["--consul-token", secured.wrong], {}, secured.source),
        "token-file": ([], {}, secured.with_file(secured.wrong_file)),
        "$CONSUL_HTTP_TOKEN": ([], {"CONSUL_HTTP_TOKEN": secured.wrong}, secured.source),
    }[way]
    result = invoke("settings", "show", "--source", source, *args, env=env)
    assert result.exit_code == 1, result.stdout + result.stderr
    line = one_error(result)
    origin = f"token-file {secured.wrong_file}" if way == "token-file" else way
    assert f"does not know the token given ({origin}): ACL not found" in line, line
    assert "--consul-token TOKEN" in line, line
    secured.assert_not_shown(result.stdout + result.stderr)


def test_a_token_that_may_not_read_the_key_names_the_permission(
    secured: Secured, tmp_path: Path
) -> None:
    (tmp_path / "other").mkdir()
    other = Secured(secured.address, tmp_path / "other")  # its token reads another key
    result = invoke("settings", "show", "--source", secured.source,
                    "--consul-token", other.token)
    line = one_error(result)
    assert "denied permission to read (ACL): the token given (--consul-token)" in line, line
    assert f"needs key:read on '{secured.key}'" in line, line
    other.assert_not_shown(result.stderr)


@pytest.mark.parametrize(("content", "expected"), [
    (None, "cannot read the Consul token file {path}: No such file or directory"),
    ("", "Consul token file {path} is empty; expected one ACL token"),
    (" \n\t\n", "Consul token file {path} is empty; expected one ACL token"),
    ("two words", "Consul token file {path} holds more than one word"),
])
def test_unusable_token_file_one_error_naming_the_path(
    secured: Secured, tmp_path: Path, content: str | None, expected: str
) -> None:
    path = tmp_path / "token-file-under-test"
    if content is not None:
        path.write_text(content)
    result = invoke("settings", "show", "--source", secured.with_file(path))
    assert result.exit_code == 2, result.stdout + result.stderr
    assert expected.format(path=path) in one_error(result)


def test_unreadable_token_file(secured: Secured, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        path = tmp_path  # root reads any file: a directory cannot be read as one
        expected = "Is a directory"
    else:
        path = tmp_path / "locked"
        path.write_text(secured.token)
        path.chmod(0)
        expected = "Permission denied"
    line = one_error(invoke("settings", "show", "--source", secured.with_file(path)))
    assert f"cannot read the Consul token file {path}: {expected}" in line, line


def test_a_token_in_the_url_is_refused_without_showing_it(secured: Secured) -> None:
    result = invoke("settings", "show", "--source", f"{secured.source}?token={secured.token}")
    assert result.exit_code == 2
    assert "a token in the URL would be shown" in one_error(result)
    secured.assert_not_shown(result.stdout + result.stderr)


def _serve(source: str, tmp_path: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "aliecs_integration", "serve", "--settings", source,
         "--address", "127.0.0.1:0", "--run-numbers", str(tmp_path / "run_number")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "CONSUL_HTTP_TOKEN": "", **env},
    )


def test_serve_with_and_without_the_token(secured: Secured, tmp_path: Path) -> None:
    denied = _serve(secured.source, tmp_path, {})
    out, err = denied.communicate(timeout=120)
    assert denied.returncode == 1, out + err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "needs key:read on" in errors[0], err

    served = _serve(secured.with_file(secured.token_file), tmp_path, {"CONSUL_HTTP_TOKEN":
                                                                       secured.wrong})
    try:
        assert served.stderr is not None
        deadline = time.monotonic() + 120
        first = ""
        while time.monotonic() < deadline and not first.startswith("serving"):
            first = served.stderr.readline()
            if not first:
                break
        assert first.startswith("serving o2control.Control"), first
        assert f"settings {secured.source} (watched);" in first
        served.send_signal(signal.SIGTERM)
        out, err = served.communicate(timeout=120)
    finally:
        if served.poll() is None:
            served.kill()
            served.wait(10)
    assert served.returncode == 0, first + out + err
    secured.assert_not_shown(first + out + err)


def test_run_with_and_without_the_token(secured: Secured, tmp_path: Path) -> None:
    """`run` (the demo's engine against your own servers) loads its settings the same way."""
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text("environments:\n  - id: acl\n    detectors: [TPC]\n"
                        "    actions: [DEPLOY, destroy]\n")
    common = ["run", "--scenario", str(scenario), "--run-numbers", str(tmp_path / "rn")]
    denied = invoke(*common, "--settings", secured.source)
    assert denied.exit_code == 1, denied.stdout + denied.stderr
    assert f"needs key:read on '{secured.key}'" in one_error(denied)
    ran = invoke(*common, "--settings", secured.with_file(secured.token_file))
    assert ran.exit_code == 0, ran.stdout + ran.stderr
    assert f"settings: {secured.source}; scenario: {scenario}" in ran.stdout
    assert "nothing was published (enableKafka false" in ran.stdout
    secured.assert_not_shown(denied.stdout + denied.stderr + ran.stdout + ran.stderr)


def test_the_token_is_not_in_debug_logs(secured: Secured) -> None:
    """-vv logs the HTTP requests (urllib3, requests) and the settings: never the token."""
    for args in (["--consul-token", secured.token], ["--consul-token", secured.wrong]):
        result = invoke("-vv", "settings", "show", "--source", secured.source, *args)
        assert "DEBUG" in result.stderr, result.stderr  # the debug logs were on
        secured.assert_not_shown(result.stdout + result.stderr)


def _write_broker_and_wait(secured: Secured, broker: bytes,
                           applied: list[tuple[str, ...]]) -> None:
    """Write the settings document naming ``broker`` (management token), then wait up to
    30 s for the watch to apply something."""
    requests.put(f"http://{secured.address}/v1/kv/{secured.key}", headers=MANAGEMENT,
                 data=DOCUMENT.replace(b"acl-test-broker", broker), timeout=10
                 ).raise_for_status()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not applied:
        time.sleep(0.1)


def test_the_live_watch_works_with_a_token_that_reads_only_the_settings_key(
    secured: Secured,
) -> None:
    """serve's watch (blocking queries on the key and on the runtime-variable prefix) with the
    read-only token: a changed document is applied, the prefix it may not list is no error."""
    from aliecs_integration.settings.sources import load
    from aliecs_integration.settings.watch import SettingsWatcher

    start = load(secured.source, token=secured.token)
    applied: list[tuple[str, ...]] = []
    watcher = SettingsWatcher(secured.source, start,
                              lambda new: applied.append(new.kafka_endpoints),
                              token=secured.token, wait_s=2.0)
    watcher.start()
    try:
        time.sleep(1.0)  # both blocking queries established
        _write_broker_and_wait(secured, b"acl-other-broker", applied)
        status = watcher.status()
    finally:
        watcher.stop()
    assert applied == [("acl-other-broker:9092",)]
    assert status.applied == 1 and status.reachable, status
    assert status.watch_errors == 0, status.last_error


def test_the_live_watch_reads_a_rotated_token_file(secured: Secured) -> None:
    """?token-file=PATH: the watch reads the file again for each request, so a token rotated
    in the file (the old one deleted in Consul) keeps the watch working without a restart."""
    from aliecs_integration.settings.sources import load
    from aliecs_integration.settings.watch import SettingsWatcher

    name = f"read-{secured.key.replace('/', '-')}"
    answer = requests.put(f"http://{secured.address}/v1/acl/token", headers=MANAGEMENT,
                          timeout=10, json={"Policies": [{"Name": name}]})
    answer.raise_for_status()
    old_accessor, old_secret = answer.json()["AccessorID"], answer.json()["SecretID"]
    token_file = secured.token_file.with_name("rotated-token")
    token_file.write_text(old_secret)
    source = secured.with_file(token_file)
    applied: list[tuple[str, ...]] = []
    watcher = SettingsWatcher(source, load(source),
                              lambda new: applied.append(new.kafka_endpoints), wait_s=1.0)
    watcher.start()
    try:
        token_file.write_text(secured.token)  # rotated: the new token in the file ...
        requests.delete(f"http://{secured.address}/v1/acl/token/{old_accessor}",
                        headers=MANAGEMENT, timeout=10).raise_for_status()  # ... the old gone
        time.sleep(2.5)  # the blocking queries begun with the old token have ended
        _write_broker_and_wait(secured, b"acl-rotated-broker", applied)
        status = watcher.status()
    finally:
        watcher.stop()
    assert applied == [("acl-rotated-broker:9092",)]
    assert status.reachable, status.last_error
    secured.assert_not_shown(str(status))
    assert old_secret not in str(status)
