"""PluginHost: discovery, loading rules, isolation, listing, call functions."""

from __future__ import annotations

import importlib.metadata
import logging
import sys
import textwrap
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import attrs
import pytest

from aliecs_integration import hookspecs
from aliecs_integration.errors import PluginError
from aliecs_integration.hookspecs import hookimpl
from aliecs_integration.host import ENTRY_POINT_GROUP, PluginHost
from aliecs_integration.plugin import Plugin
from aliecs_integration.records import (
    CallContext,
    CallTraits,
    ConnectionState,
    CoreEvent,
    CoreEventKind,
    EnvironmentSnapshot,
    HostStartEvent,
    HostStopEvent,
    PluginContext,
)


@attrs.frozen
class FakeSettings:
    integration_plugins: tuple[str, ...] = ()
    raw: Mapping[str, Any] = attrs.field(factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)


def ep(name: str, value: str) -> importlib.metadata.EntryPoint:
    return importlib.metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


class Recorder(Plugin):
    pretty_name = "Recorder"
    seen: ClassVar[list[tuple[str, str, object]]] = []

    @hookimpl
    def on_core_event(self, event: CoreEvent) -> None:
        self.seen.append((self.name, "on_core_event", event))

    def connection_state(self) -> ConnectionState:
        return ConnectionState.READY


class Exploding(Plugin):
    @hookimpl
    def on_core_event(self, event: CoreEvent) -> None:
        raise RuntimeError("boom")


class FailsInit(Plugin):
    def __init__(self, context: PluginContext) -> None:
        raise OSError("cannot connect")


class NeedsEndpoint(Recorder):
    endpoint_setting = "myEndpoint"


class Exporter(Plugin):
    @hookimpl
    def register_call_functions(self) -> dict[str, Any]:
        return {"Hello": lambda ctx: f"hello {ctx.environment.id}"}


class BadHookName(Plugin):
    @hookimpl
    def on_no_such_hook(self, event: object) -> None:  # pragma: no cover - never called
        pass


class Wrapper(Plugin):
    @hookimpl(wrapper=True)
    def on_core_event(self, event: CoreEvent) -> Iterator[None]:  # pragma: no cover
        return (yield)


# entry points resolve "module:attr"; expose the test classes under this module's name
MOD = __name__


@pytest.fixture(autouse=True)
def _clear_recorder() -> None:
    Recorder.seen = []


def host_with(
    names: tuple[str, ...], eps: list[importlib.metadata.EntryPoint], **raw: Any
) -> PluginHost:
    host = PluginHost(FakeSettings(integration_plugins=names, raw=raw), entry_points=eps)
    host.start()
    return host


def test_always_on_loaded_and_optional_only_when_named() -> None:
    eps = [ep("core-kafka", f"{MOD}:Recorder"), ep("kafka", f"{MOD}:Recorder")]
    host = host_with((), eps)
    assert host.plugin_names() == ["core-kafka"]
    status = {s.name: s for s in host.list_plugins()}
    assert status["kafka"].loaded is False
    assert "not named in integrationPlugins" in status["kafka"].reason
    assert status["core-kafka"].state == "READY"
    assert status["core-kafka"].pretty_name == "Recorder"

    host2 = host_with(("kafka",), eps)
    assert sorted(host2.plugin_names()) == ["core-kafka", "kafka"]


def test_endpoint_setting_required(caplog: pytest.LogCaptureFixture) -> None:
    eps = [ep("mine", f"{MOD}:NeedsEndpoint")]
    host = host_with(("mine",), eps)
    status = {s.name: s for s in host.list_plugins()}["mine"]
    assert not status.loaded
    assert "setting 'myEndpoint' is missing" in status.reason
    host2 = host_with(("mine",), eps, myEndpoint="h:1")
    assert host2.plugin_names() == ["mine"]


def test_unknown_name_reported_and_others_load(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        host = host_with(("nosuch", "rec"), [ep("rec", f"{MOD}:Recorder")])
    assert host.plugin_names() == ["rec"]
    status = {s.name: s for s in host.list_plugins()}
    assert "no installed plugin provides 'nosuch'" in status["nosuch"].reason
    assert "nosuch" in caplog.text


def test_import_failure_and_init_failure_isolated(caplog: pytest.LogCaptureFixture) -> None:
    eps = [
        ep("broken", "no_such_module_xyz:Thing"),
        ep("failing", f"{MOD}:FailsInit"),
        ep("rec", f"{MOD}:Recorder"),
    ]
    with caplog.at_level(logging.ERROR):
        host = host_with(("broken", "failing", "rec"), eps)
    assert host.plugin_names() == ["rec"]
    status = {s.name: s for s in host.list_plugins()}
    assert status["broken"].reason.startswith("import failed")
    assert "cannot connect" in status["failing"].reason
    assert "plugin 'failing' not loaded" in caplog.text


def test_hook_exception_isolated_and_named(caplog: pytest.LogCaptureFixture) -> None:
    eps = [ep("bad", f"{MOD}:Exploding"), ep("rec", f"{MOD}:Recorder")]
    host = host_with(("bad", "rec"), eps)
    event = CoreEvent(kind=CoreEventKind.FRAMEWORK, message="x")
    with caplog.at_level(logging.ERROR):
        failures = host.fire(hookspecs.on_core_event, event)
    assert [f.plugin for f in failures] == ["bad"]
    assert "plugin 'bad' failed in on_core_event" in caplog.text
    assert [(n, h) for n, h, _ in Recorder.seen if _ is event] == [("rec", "on_core_event")]
    assert host.failure_count == {"bad": 1}


def test_invalid_hook_name_and_wrappers_refused() -> None:
    eps = [ep("bad", f"{MOD}:BadHookName"), ep("wrap", f"{MOD}:Wrapper"),
           ep("rec", f"{MOD}:Recorder")]
    host = host_with(("bad", "wrap", "rec"), eps)
    assert host.plugin_names() == ["rec"]
    status = {s.name: s for s in host.list_plugins()}
    assert "on_no_such_hook" in status["bad"].reason
    assert "hook wrappers are not supported" in status["wrap"].reason


def test_fire_unknown_hook_is_a_programming_error() -> None:
    host = host_with((), [])
    with pytest.raises(KeyError):
        host.fire(lambda event: None, object())


def test_call_functions_namespaced_by_plugin_name() -> None:
    host = host_with(("exp",), [ep("exp", f"{MOD}:Exporter")])
    fn = host.call_function("exp.Hello")
    assert fn is not None
    ctx = CallContext(environment=EnvironmentSnapshot(id="E1", state="STANDBY"), func="exp.Hello()",
                      trigger="enter_STANDBY", args="", traits=CallTraits(trigger="enter_STANDBY"))
    assert fn(ctx) == "hello E1"
    assert host.call_function("exp.Nope") is None
    assert host.call_function_names() == ["exp.Hello"]


def test_start_twice_refused_and_stop_unregisters() -> None:
    host = host_with((), [ep("core-kafka", f"{MOD}:Recorder")])
    with pytest.raises(PluginError):
        host.start()
    host.stop(timeout_s=1)
    assert host.plugin_names() == []
    assert host.fire(hookspecs.on_core_event, CoreEvent(kind=CoreEventKind.FRAMEWORK)) == []


def test_extra_plugins_registered() -> None:
    host = PluginHost(FakeSettings(), entry_points=[], extra_plugins={"x": Recorder})
    host.start()
    host.fire(hookspecs.on_core_event, CoreEvent(kind=CoreEventKind.MESOS_HEARTBEAT))
    assert [n for n, _, _ in Recorder.seen] == ["x"]


def test_entry_point_of_an_installed_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plugin shipped as a third party does: a distribution with an entry point."""
    site = tmp_path / "site"
    (site / "thirdparty_demo_plugin").mkdir(parents=True)
    (site / "thirdparty_demo_plugin" / "__init__.py").write_text(textwrap.dedent("""
        from aliecs_integration.hookspecs import hookimpl
        pretty_name = "Third party demo"
        received = []

        @hookimpl
        def on_core_event(event):
            received.append(event)
    """))
    info = site / "thirdparty_demo_plugin-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: thirdparty-demo-plugin\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ndemo = thirdparty_demo_plugin\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()

    host = PluginHost(FakeSettings(integration_plugins=("demo",)))
    host.start()
    assert "demo" in host.plugin_names()
    status = {s.name: s for s in host.list_plugins()}["demo"]
    assert status.pretty_name == "Third party demo"
    assert status.origin == "thirdparty-demo-plugin==1.2:thirdparty_demo_plugin"
    event = CoreEvent(kind=CoreEventKind.CORE_START, framework_id="f")
    host.fire(hookspecs.on_core_event, event)
    assert sys.modules["thirdparty_demo_plugin"].received == [event]
    host.stop(timeout_s=1)


class Slow(Plugin):
    @hookimpl
    def on_core_event(self, event: CoreEvent) -> None:
        time.sleep(0.05)


def test_slow_hook_logged_with_plugin_name(caplog: pytest.LogCaptureFixture) -> None:
    host = PluginHost(FakeSettings(), entry_points=[], extra_plugins={"slowpoke": Slow,
                                                                      "rec": Recorder},
                      slow_hook_s=0.01)
    host.start()
    with caplog.at_level(logging.WARNING):
        failures = host.fire(hookspecs.on_core_event, CoreEvent(kind=CoreEventKind.MESOS_HEARTBEAT))
    assert failures == []
    assert "plugin 'slowpoke' took" in caplog.text and "in on_core_event" in caplog.text
    assert "plugin 'rec' took" not in caplog.text
    assert [n for n, _, _ in Recorder.seen] == ["rec"]
    host.fire(hookspecs.on_core_event, CoreEvent(kind=CoreEventKind.MESOS_HEARTBEAT))
    assert host.slow_hooks() == {"slowpoke": 2}  # counted per plugin (the metrics read it)


class SlowStop(Plugin):
    @hookimpl
    def on_host_stop(self, event: object) -> None:
        time.sleep(0.05)


def test_flushing_at_stop_is_not_reported_as_slow(caplog: pytest.LogCaptureFixture) -> None:
    host = PluginHost(FakeSettings(), entry_points=[], extra_plugins={"flusher": SlowStop},
                      slow_hook_s=0.01)
    host.start()
    with caplog.at_level(logging.WARNING):
        assert host.stop(timeout_s=1).failures == []
    assert "took" not in caplog.text
    assert host.slow_hooks() == {}


class Spooling(Plugin):
    def spool_stats(self) -> dict[str, int]:
        return {"entries": 3, "bytes": 120, "replayed": 0, "trimmed": 0}


class BrokenSpool(Plugin):
    def spool_stats(self) -> dict[str, int]:
        raise RuntimeError("spool gone")


def test_spool_stats_by_plugin_from_those_that_have_one() -> None:
    host = PluginHost(FakeSettings(), entry_points=[],
                      extra_plugins={"spooler": Spooling, "plain": Recorder,
                                     "broken": BrokenSpool})
    host.start()
    assert host.spool_stats() == {
        "spooler": {"entries": 3, "bytes": 120, "replayed": 0, "trimmed": 0}}
    host.stop(timeout_s=1)


class UsesItsTimeout(Plugin):
    """Uses every second ``on_host_stop`` offers (a flush against a dead broker)."""

    @hookimpl
    def on_host_stop(self, event: HostStopEvent) -> None:
        time.sleep(event.timeout_s)


def test_stop_shares_one_deadline_between_plugins() -> None:
    host = PluginHost(FakeSettings(), entry_points=[],
                      extra_plugins={"slow1": UsesItsTimeout, "slow2": UsesItsTimeout,
                                     "slow3": UsesItsTimeout})
    host.start()
    started = time.monotonic()
    host.stop(timeout_s=0.6)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"{elapsed:.2f} s: each plugin got the whole timeout"


def test_listing_start_tells_plugins_not_to_publish() -> None:
    seen: list[HostStartEvent] = []

    class Recorder2(Plugin):
        @hookimpl
        def on_host_start(self, event: HostStartEvent) -> None:
            seen.append(event)

    host = PluginHost(FakeSettings(), entry_points=[], extra_plugins={"rec": Recorder2})
    host.start(listing=True)
    host.stop()
    assert [e.listing for e in seen] == [True]


class WithDefaults(Plugin):
    variable_defaults = MappingProxyType({"my_enabled": "false"})


class BadDefaults(Plugin):
    variable_defaults = MappingProxyType({"n": 3})  # type: ignore[dict-item]


def test_variable_defaults_collected_from_loaded_plugins(
    caplog: pytest.LogCaptureFixture
) -> None:
    eps = [ep("core-kafka", f"{MOD}:Recorder"), ep("mine", f"{MOD}:WithDefaults"),
           ep("bad", f"{MOD}:BadDefaults"), ep("off", f"{MOD}:WithDefaults")]
    host = host_with(("mine", "bad"), eps)
    assert host.variable_defaults() == {"my_enabled": "false"}
    assert "plugin 'bad': variable_defaults must map names to strings" in caplog.text
    assert len(host.instance_id) == 36  # the frameworkId of coreStartEvent, a UUID
    assert host.instance_id != host_with((), eps).instance_id


def test_the_legacy_plugin_owns_kafka_enabled() -> None:
    from aliecs_integration_plugins.kafka import KafkaPlugin

    assert dict(KafkaPlugin.variable_defaults) == {"kafka_enabled": "false"}


class StartsAndStops(Exporter):
    """Records its start, flush and stop (live settings: one plugin started and stopped)."""

    log: ClassVar[list[str]] = []

    @hookimpl
    def on_host_start(self, event: HostStartEvent) -> None:
        self.log.append(f"start {self.name}")

    @hookimpl
    def on_host_stop(self, event: HostStopEvent) -> None:
        self.log.append(f"stop {self.name}")

    def flush(self, timeout_s: float) -> Any:
        self.log.append(f"flush {self.name}")
        return None


def test_start_and_stop_one_plugin_while_running() -> None:
    StartsAndStops.log = []
    eps = [ep("core-kafka", f"{MOD}:Recorder"), ep("exp", f"{MOD}:StartsAndStops")]
    host = host_with((), eps)
    assert host.call_function("exp.Hello") is None
    status = host.start_plugin("exp")
    assert status.loaded and host.plugin("exp") is not None
    assert host.call_function("exp.Hello") is not None
    assert StartsAndStops.log == ["start exp"]  # only the new plugin's on_host_start
    assert host.start_plugin("exp").loaded and StartsAndStops.log == ["start exp"]

    report = host.stop_plugin("exp", timeout_s=1)
    assert report.failures == []
    assert StartsAndStops.log == ["start exp", "flush exp", "stop exp"]
    assert host.plugin("exp") is None and host.call_function("exp.Hello") is None
    assert host.call_function_names() == []
    listed = {s.name: s for s in host.list_plugins()}
    assert not listed["exp"].loaded and "not named" in listed["exp"].reason
    assert host.stop_plugin("exp").deliveries == {}  # not loaded: nothing to do
    with pytest.raises(PluginError, match="always loaded"):
        host.stop_plugin("core-kafka")


def test_start_plugin_nobody_provides_is_reported_not_raised() -> None:
    host = host_with((), [ep("core-kafka", f"{MOD}:Recorder")])
    status = host.start_plugin("nope")
    assert not status.loaded and "no installed plugin provides 'nope'" in status.reason


class Refuses(Plugin):
    def reconfigure(self, settings: Any) -> None:
        raise ValueError("cannot take these settings")


def test_reconfigure_gives_plugins_the_new_settings_and_isolates_refusals() -> None:
    eps = [ep("core-kafka", f"{MOD}:Recorder"), ep("bad", f"{MOD}:Refuses")]
    host = host_with(("bad",), eps)
    new = FakeSettings(integration_plugins=("bad",), raw={"x": 1})
    failures = host.reconfigure(new)  # type: ignore[arg-type]
    assert [(f.plugin, f.hook) for f in failures] == [("bad", "reconfigure")]
    assert host.settings is new
    core: Any = host.plugin("core-kafka")
    assert core.settings is new  # the Plugin default: self.settings returns the new ones
    bad: Any = host.plugin("bad")
    assert bad.settings is not new
