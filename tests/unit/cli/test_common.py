"""Error conversion and exit codes shared by every command; the table formatter."""

from __future__ import annotations

import errno

import click
import consul
import pytest
import requests
from confluent_kafka import KafkaError, KafkaException

from aliecs_integration.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    BadInput,
    CliError,
    convert,
    format_table,
    unexpected,
)
from aliecs_integration.errors import PluginError, SettingsError
from aliecs_integration.scenario.model import ScenarioError


def settings_error_caused_by(cause: BaseException | None) -> SettingsError:
    try:
        try:
            if cause is not None:
                raise cause
            raise ValueError("bad")
        except Exception as exc:
            raise SettingsError("nope", source="consul://x/key") from (exc if cause else None)
    except SettingsError as err:
        return err


@pytest.mark.parametrize(
    ("exc", "code", "text"),
    [
        (settings_error_caused_by(None), EXIT_BAD_INPUT, "consul://x/key: nope"),
        (settings_error_caused_by(requests.ConnectionError("refused")), EXIT_FAILURE, "nope"),
        (settings_error_caused_by(consul.ConsulException("500")), EXIT_FAILURE, "nope"),
        (ScenarioError("f.yaml: environments[0]: bad"), EXIT_BAD_INPUT, "f.yaml: environments"),
        (PluginError("plugin x\n  broken"), EXIT_FAILURE, "plugin x broken"),
        (KafkaException(KafkaError(KafkaError._TRANSPORT, "down")), EXIT_FAILURE, "Kafka: down"),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "/x/y"), EXIT_BAD_INPUT,
         "/x/y: No such file or directory"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), EXIT_FAILURE,
         "Connection refused"),
    ],
)
def test_expected_failures_become_one_line_with_a_code(
    exc: BaseException, code: int, text: str
) -> None:
    converted = convert(exc)
    assert converted is not None
    assert converted.exit_code == code
    assert isinstance(converted, BadInput) == (code == EXIT_BAD_INPUT)
    assert converted.format_message() == text or text in converted.format_message()
    assert "\n" not in converted.format_message()


def test_unexpected_failures_are_not_converted() -> None:
    assert convert(RuntimeError("bug")) is None
    assert convert(KeyError("k")) is None
    quiet = unexpected(KeyError("k"), verbose=False)
    assert quiet.format_message() == "unexpected KeyError: 'k' (run with -v for the traceback)"
    assert unexpected(KeyError("k"), verbose=True).format_message() == "unexpected KeyError: 'k'"


def test_error_line_format(capsys: pytest.CaptureFixture[str]) -> None:
    CliError("it broke").show()
    assert capsys.readouterr().err == "error: it broke\n"
    assert isinstance(BadInput("x"), click.ClickException)


def test_format_table_aligns_columns() -> None:
    assert format_table(("A", "LONGER"), [("x", 1), ("yyyy", "z")]).splitlines() == [
        "A     LONGER",
        "x     1",
        "yyyy  z",
    ]
