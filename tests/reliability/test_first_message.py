"""The very first message of a topic that does not exist yet (auto-creation is off on the broker)
is delivered: an integrated service never seen before reports through the environment manager."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from aliecs_integration.engine.manager import EnvironmentManager
from aliecs_integration.engine.run_numbers import RunNumberStore
from aliecs_integration.pb import events_pb2
from aliecs_integration.records import OpStatus
from tests.kafka_helpers import read_topic
from tests.reliability import flush_core, started_host

pytestmark = pytest.mark.reliability


def test_first_message_on_a_brand_new_topic_is_delivered(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    service = f"svc{uuid.uuid4().hex[:8]}"
    topic = f"{topic_prefix}.integrated_service.{service}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    assert topic not in admin.list_topics(timeout=10).topics
    host = started_host(kafka_bootstrap, topic_prefix)
    manager = EnvironmentManager(host, settings_runtime_vars={},
                                 run_numbers=RunNumberStore(tmp_path / "run_number"))
    try:
        env = manager.create(detectors=("TPC",))
        manager.report_integrated_service_event(env.id, service.upper(), f"{service}.Hello()",
                                                OpStatus.DONE_OK, payload="first")
        report = flush_core(host, 60)
        assert report.undelivered == 0 and report.failed == 0 and report.dropped == 0, report
    finally:
        manager.close()
        host.stop(timeout_s=30)
    messages = read_topic(kafka_bootstrap, topic, 1, settle=1.0)
    assert len(messages) == 1
    event = events_pb2.Event.FromString(messages[0].value()).integratedServiceEvent
    assert (event.operationName, event.payload, event.environmentId) == (
        f"{service}.Hello()", "first", env.id)
    assert messages[0].key() == env.id.encode()
