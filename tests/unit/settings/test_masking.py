"""Secrets are masked by key name and inside values: never printed by `settings show`."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from aliecs_integration.cli.main import cli
from aliecs_integration.settings.secrets import masked, masked_text, redact_url

SETTINGS = """\
kafkaEndpoints: [127.0.0.1:1]
kafkaProducer:
  properties:
    sasl.oauthbearer.config: "clientId=me clientSecret=S3cr3t-oauth scope=x"
    sasl.oauthbearer.extensions: "logicalCluster=lc,clientSecret=S3cr3t-ext"
myPluginApiKey: S3cr3t-apikey
credentials: {user: u, pass: S3cr3t-cred}
dcsEndpoint: "http://operator:S3cr3t-url@dcs:80/x"
"""


def test_settings_show_prints_no_secret(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SETTINGS)
    for fmt in ("table", "json"):
        result = CliRunner().invoke(cli, ["settings", "show", "--source", str(path),
                                          "--format", fmt])
        assert result.exit_code == 0, result.stderr
        assert "S3cr3t" not in result.stdout + result.stderr, result.stdout
        assert "logicalCluster=lc,clientSecret=***" in result.stdout, result.stdout


def test_consul_url_password_is_never_printed() -> None:
    result = CliRunner().invoke(cli, ["settings", "show", "--source",
                                      "consul://operator:S3cr3t-url@127.0.0.1:1"])
    assert result.exit_code == 1
    assert "S3cr3t" not in result.stdout + result.stderr, result.stderr


def test_masking_rules() -> None:
    assert masked_text("a=1 password=x token: 'y z' apiKey=q") == (
        "a=1 password=*** token: *** apiKey=***")
    assert redact_url("consul://u:p@h:1/k") == "consul://u:***@h:1/k"
    assert redact_url("consul://h:1/k") == "consul://h:1/k"
    assert masked({"x": ["http://a:b@c"]}) == {"x": ["http://a:***@c"]}
