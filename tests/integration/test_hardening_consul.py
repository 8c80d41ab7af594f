"""Consul writes and access against real agents (issue 12): a push is one transaction (all or
nothing), variable names cannot escape their prefix, and an ACL-enabled agent gets a token
through --consul-token or $CONSUL_HTTP_TOKEN, with a 403 that says what is missing."""

from __future__ import annotations

import uuid
from pathlib import Path

import consul
import pytest
import requests
from click.testing import CliRunner, Result

from aliecs_integration.cli.main import cli
from tests.servers import CONSUL_ACL_MANAGEMENT_TOKEN

MANAGEMENT = {"X-Consul-Token": CONSUL_ACL_MANAGEMENT_TOKEN}


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def one_error(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def token_for(address: str, rules: str) -> str:
    """A token whose policy is ``rules`` (HCL), created with the management token."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    policy = requests.put(f"http://{address}/v1/acl/policy", headers=MANAGEMENT, timeout=10,
                          json={"Name": name, "Rules": rules})
    policy.raise_for_status()
    token = requests.put(f"http://{address}/v1/acl/token", headers=MANAGEMENT, timeout=10,
                         json={"Policies": [{"Name": name}]})
    token.raise_for_status()
    secret: str = token.json()["SecretID"]
    return secret


def kv(address: str, key: str) -> bytes | None:
    host, _, port = address.rpartition(":")
    client = consul.Consul(host=host, port=int(port), token=CONSUL_ACL_MANAGEMENT_TOKEN)
    _, item = client.kv.get(key, token=CONSUL_ACL_MANAGEMENT_TOKEN)
    return None if item is None else (item["Value"] or b"")


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text("kafkaEndpoints: [127.0.0.1:19092]\nruntimeVars: {kafka_enabled: false}\n")
    return path


def test_push_with_a_vars_only_token_writes_nothing(
    consul_acl_address: str, settings_file: Path
) -> None:
    root = f"t{uuid.uuid4().hex[:8]}"
    token = token_for(consul_acl_address, f'key_prefix "{root}/runtime/" {{ policy = "write" }}')
    requests.put(f"http://{consul_acl_address}/v1/kv/{root}/runtime/aliecs/vars/kafka_enabled",
                 data=b"true", headers=MANAGEMENT, timeout=10).raise_for_status()
    from aliecs_integration.errors import SettingsError
    from aliecs_integration.settings.sources import push_to_consul

    with pytest.raises(SettingsError) as info:
        push_to_consul(consul_acl_address, settings_file, token=token,
                       settings_key=f"{root}/components/settings",
                       vars_prefix=f"{root}/runtime/aliecs/vars/")
    message = str(info.value)
    assert "rolled the transaction back, nothing was written" in message, message
    assert "lacks permission 'key:write'" in message and "--consul-token" in message, message
    assert token not in message
    # all or nothing: the variable the token could write is unchanged, the document absent
    assert kv(consul_acl_address, f"{root}/runtime/aliecs/vars/kafka_enabled") == b"true"
    assert kv(consul_acl_address, f"{root}/components/settings") is None


def test_settings_push_cli_refuses_path_traversal(
    consul_address: str, consul_client: consul.Consul, settings_file: Path
) -> None:
    evil = f"evil{uuid.uuid4().hex[:8]}"
    result = invoke("settings", "push", str(settings_file), "--consul", consul_address,
                    "--key", f"t{evil}/settings", "--var", f"../../../../{evil}=PWNED")
    assert result.exit_code == 2, result.stdout + result.stderr
    assert "variable name" in one_error(result)
    assert consul_client.kv.get(evil)[1] is None
    assert consul_client.kv.get(f"t{evil}/settings")[1] is None


def test_push_writes_everything_in_one_transaction(
    consul_address: str, consul_client: consul.Consul, settings_file: Path
) -> None:
    key = f"t{uuid.uuid4().hex[:8]}/settings"
    result = invoke("settings", "push", str(settings_file), "--consul", consul_address,
                    "--key", key, "--var", "dcs_enabled=true")
    assert result.exit_code == 0, result.stderr
    assert "(3 keys in one Consul transaction: all or nothing)" in result.stdout
    assert consul_client.kv.get(key)[1]["Value"] == settings_file.read_bytes()
    assert consul_client.kv.get("o2/runtime/aliecs/vars/dcs_enabled")[1]["Value"] == b"true"


def test_acl_token_from_option_or_environment_and_a_403_that_says_what_to_do(
    consul_acl_address: str, settings_file: Path
) -> None:
    key = f"t{uuid.uuid4().hex[:8]}/settings"
    requests.put(f"http://{consul_acl_address}/v1/kv/{key}", data=settings_file.read_bytes(),
                 headers=MANAGEMENT, timeout=10).raise_for_status()
    token = token_for(consul_acl_address,
                      f'key "{key}" {{ policy = "read" }}\n'
                      'key_prefix "o2/runtime/" { policy = "read" }')
    source = f"consul://{consul_acl_address}/{key}"

    denied = invoke("settings", "show", "--source", source, env={"CONSUL_HTTP_TOKEN": ""})
    assert denied.exit_code == 1, denied.stdout + denied.stderr
    line = one_error(denied)
    assert "denied permission to read (ACL): no token was given" in line, line
    assert f"needs key:read on '{key}'" in line and "--consul-token" in line, line

    by_option = invoke("settings", "show", "--source", source, "--consul-token", token,
                       env={"CONSUL_HTTP_TOKEN": ""})
    assert by_option.exit_code == 0, by_option.stderr
    assert "127.0.0.1:19092" in by_option.stdout
    by_env = invoke("settings", "show", "--source", source, env={"CONSUL_HTTP_TOKEN": token})
    assert by_env.exit_code == 0, by_env.stderr
    for result in (denied, by_option, by_env):
        assert token not in result.stdout + result.stderr
