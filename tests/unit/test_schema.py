"""The generated bindings match docs/wire-schema.md field for field, and stay current."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from aliecs_integration import schema
from aliecs_integration.pb import common_pb2, events_pb2, kafka_pb2

REPO = Path(__file__).resolve().parents[2]

# Transcribed from docs/wire-schema.md: message -> {number: (name, type, label)}.
# type is a scalar name or a message/enum full name; label is "", "optional", "repeated" or "map".
S, I32, I64, U32, U64, B = "string", "int32", "int64", "uint32", "uint64", "bool"
SPEC: dict[str, dict[int, tuple[str, str, str]]] = {
    "common.User": {1: ("externalId", I32, "optional"), 2: ("id", I32, "optional"),
                    3: ("name", S, "")},
    "common.WorkflowTemplateInfo": {1: ("name", S, ""), 2: ("description", S, ""),
                                    3: ("path", S, ""), 4: ("public", B, "")},
    "common.BeamInfo": {1: ("stableBeamsStart", I64, ""), 2: ("stableBeamsEnd", I64, ""),
                        3: ("fillNumber", I32, ""), 4: ("fillingSchemeName", S, ""),
                        5: ("beamType", S, ""), 6: ("beamMode", "common.BeamMode", "")},
    "events.Ev_MetaEvent_MesosHeartbeat": {},
    "events.Ev_MetaEvent_CoreStart": {1: ("frameworkId", S, "")},
    "events.Ev_MetaEvent_FrameworkEvent": {1: ("frameworkId", S, ""), 2: ("message", S, "")},
    "events.Ev_EnvironmentEvent": {
        1: ("environmentId", S, ""), 2: ("state", S, ""), 3: ("runNumber", U32, ""),
        4: ("error", S, ""), 5: ("message", S, ""), 6: ("transition", S, ""),
        7: ("transitionStep", S, ""), 8: ("transitionStatus", "events.OpStatus", ""),
        9: ("vars", "events.Ev_EnvironmentEvent.VarsEntry", "map"),
        10: ("lastRequestUser", "common.User", ""),
        11: ("workflowTemplateInfo", "common.WorkflowTemplateInfo", "")},
    "events.Traits": {1: ("trigger", S, ""), 2: ("await", S, ""), 3: ("timeout", S, ""),
                      4: ("critical", B, "")},
    "events.Ev_TaskEvent": {
        1: ("name", S, ""), 2: ("taskid", S, ""), 3: ("state", S, ""), 4: ("status", S, ""),
        5: ("hostname", S, ""), 6: ("className", S, ""), 7: ("traits", "events.Traits", ""),
        8: ("environmentId", S, ""), 9: ("path", S, "")},
    "events.Ev_CallEvent": {
        1: ("func", S, ""), 2: ("callStatus", "events.OpStatus", ""), 3: ("return", S, ""),
        4: ("traits", "events.Traits", ""), 5: ("output", S, ""), 6: ("error", S, ""),
        7: ("environmentId", S, ""), 8: ("path", S, "")},
    "events.Ev_RoleEvent": {1: ("name", S, ""), 2: ("status", S, ""), 3: ("state", S, ""),
                            4: ("rolePath", S, ""), 5: ("environmentId", S, "")},
    "events.Ev_IntegratedServiceEvent": {
        1: ("name", S, ""), 2: ("error", S, ""), 3: ("operationName", S, ""),
        4: ("operationStatus", "events.OpStatus", ""), 5: ("operationStep", S, ""),
        6: ("operationStepStatus", "events.OpStatus", ""), 7: ("environmentId", S, ""),
        8: ("payload", S, "")},
    "events.Ev_RunEvent": {
        1: ("environmentId", S, ""), 2: ("runNumber", U32, ""), 3: ("state", S, ""),
        4: ("error", S, ""), 5: ("transition", S, ""),
        6: ("transitionStatus", "events.OpStatus", ""),
        8: ("lastRequestUser", "common.User", "")},
    "events.Ev_BeamModeEvent": {1: ("timestamp", I64, ""), 2: ("beamInfo", "common.BeamInfo", "")},
    "events.Event": {
        1: ("timestamp", I64, ""), 2: ("timestampNano", I64, ""),
        11: ("environmentEvent", "events.Ev_EnvironmentEvent", "oneof"),
        12: ("taskEvent", "events.Ev_TaskEvent", "oneof"),
        13: ("roleEvent", "events.Ev_RoleEvent", "oneof"),
        14: ("callEvent", "events.Ev_CallEvent", "oneof"),
        15: ("integratedServiceEvent", "events.Ev_IntegratedServiceEvent", "oneof"),
        16: ("runEvent", "events.Ev_RunEvent", "oneof"),
        101: ("frameworkEvent", "events.Ev_MetaEvent_FrameworkEvent", "oneof"),
        102: ("mesosHeartbeatEvent", "events.Ev_MetaEvent_MesosHeartbeat", "oneof"),
        103: ("coreStartEvent", "events.Ev_MetaEvent_CoreStart", "oneof"),
        200: ("beamModeEvent", "events.Ev_BeamModeEvent", "oneof")},
    "kafka.EnvInfo": {
        1: ("environmentId", S, ""), 2: ("runNumber", U32, "optional"),
        3: ("runType", S, "optional"), 4: ("state", S, ""), 5: ("detectors", S, "repeated"),
        6: ("enterStateTimestamp", U64, "")},
    "kafka.NewStateNotification": {1: ("envInfo", "kafka.EnvInfo", ""), 2: ("timestamp", U64, "")},
    "kafka.ActiveRunsList": {1: ("activeRuns", "kafka.EnvInfo", "repeated"),
                             2: ("timestamp", U64, "")},
}

ENUMS = {
    "common.SpecialUserId": {"INVALID": 0, "LHC": 60, "TIMER": 65},
    "common.BeamMode": {name: number for number, name in enumerate((
        "UNKNOWN", "SETUP", "ABORT", "INJECTION_PROBE_BEAM", "INJECTION_SETUP_BEAM",
        "INJECTION_PHYSICS_BEAM", "PREPARE_RAMP", "RAMP", "FLAT_TOP", "SQUEEZE", "ADJUST",
        "STABLE_BEAMS", "LOST_BEAMS", "UNSTABLE_BEAMS", "BEAM_DUMP_WARNING", "BEAM_DUMP",
        "RAMP_DOWN", "CYCLING", "RECOVERY", "INJECT_AND_DUMP", "CIRCULATE_AND_DUMP", "NO_BEAM",
    ))},
    "events.OpStatus": {"NULL": 0, "STARTED": 1, "ONGOING": 2, "DONE_OK": 3, "DONE_ERROR": 4,
                        "DONE_TIMEOUT": 5},
}

SCALAR_NAMES = {
    FieldDescriptor.TYPE_STRING: S, FieldDescriptor.TYPE_INT32: I32,
    FieldDescriptor.TYPE_INT64: I64, FieldDescriptor.TYPE_UINT32: U32,
    FieldDescriptor.TYPE_UINT64: U64, FieldDescriptor.TYPE_BOOL: B,
}

POOL = descriptor_pool.Default()


def _type_of(field: FieldDescriptor) -> str:
    if field.message_type is not None:
        return str(field.message_type.full_name)
    if field.enum_type is not None:
        return str(field.enum_type.full_name)
    return SCALAR_NAMES[field.type]


def _label_of(field: FieldDescriptor) -> str:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        return "map"
    if field.is_repeated:
        return "repeated"
    oneof = field.containing_oneof
    if oneof is not None:
        return "optional" if oneof.name.startswith("_") else "oneof"
    return ""


@pytest.mark.parametrize("full_name", sorted(SPEC))
def test_message_fields_match_spec(full_name: str) -> None:
    desc: Descriptor = POOL.FindMessageTypeByName(full_name)
    actual = {f.number: (f.name, _type_of(f), _label_of(f)) for f in desc.fields}
    assert actual == SPEC[full_name]


def test_packages_and_file_names() -> None:
    assert common_pb2.DESCRIPTOR.name == "protos/common.proto"
    assert common_pb2.DESCRIPTOR.package == "common"
    assert events_pb2.DESCRIPTOR.name == "protos/events.proto"
    assert events_pb2.DESCRIPTOR.package == "events"
    assert kafka_pb2.DESCRIPTOR.name == "protos/kafka.proto"
    assert kafka_pb2.DESCRIPTOR.package == "kafka"
    proto = descriptor_pb2.FileDescriptorProto()
    events_pb2.DESCRIPTOR.CopyToProto(proto)
    assert list(proto.dependency) == ["protos/common.proto"]
    assert list(proto.public_dependency) == [0]


@pytest.mark.parametrize("full_name", sorted(ENUMS))
def test_enums_match_spec(full_name: str) -> None:
    enum = POOL.FindEnumTypeByName(full_name)
    assert {v.name: v.number for v in enum.values} == ENUMS[full_name]


def test_reserved_ranges() -> None:
    proto = descriptor_pb2.DescriptorProto()
    events_pb2.Event.DESCRIPTOR.CopyToProto(proto)
    # protobuf stores reserved ranges end-exclusive
    assert [(r.start, r.end) for r in proto.reserved_range] == [(3, 11), (17, 101), (104, 200)]
    run = descriptor_pb2.DescriptorProto()
    events_pb2.Ev_RunEvent.DESCRIPTOR.CopyToProto(run)
    assert [(r.start, r.end) for r in run.reserved_range] == [(7, 8)]
    assert [o.name for o in events_pb2.Event.DESCRIPTOR.oneofs] == ["Payload"]


def _fill(msg: object, rng: random.Random, depth: int = 0) -> None:
    """Set every field of ``msg`` (recursively) to a random non-default value."""
    desc = msg.DESCRIPTOR  # type: ignore[attr-defined]
    for field in desc.fields:
        if field.containing_oneof is not None and not field.containing_oneof.name.startswith("_"):
            continue  # oneof members are tested one by one
        _set(msg, field, rng, depth)


def _set(msg: object, field: FieldDescriptor, rng: random.Random, depth: int) -> None:
    name = field.name
    label = _label_of(field)
    if label == "map":
        getattr(msg, name)["k"] = "v"
    elif field.message_type is not None:
        sub = getattr(msg, name).add() if label == "repeated" else getattr(msg, name)
        if depth < 3:
            _fill(sub, rng, depth + 1)
        if label != "repeated":
            sub.SetInParent()
    else:
        value = _scalar(field, rng)
        if label == "repeated":
            getattr(msg, name).append(value)
        else:
            setattr(msg, name, value)


def _scalar(field: FieldDescriptor, rng: random.Random) -> object:
    if field.enum_type is not None:
        return field.enum_type.values[-1].number
    return {S: "x\u00e9", I32: -rng.randint(1, 2**31 - 1), I64: rng.randint(1, 2**62),
            U32: 2**32 - 1, U64: 2**64 - 1, B: True}[SCALAR_NAMES[field.type]]


@pytest.mark.parametrize("full_name", sorted(SPEC))
def test_round_trip_every_message(full_name: str) -> None:
    cls = message_factory.GetMessageClass(POOL.FindMessageTypeByName(full_name))
    msg = cls()
    _fill(msg, random.Random(full_name))
    assert cls.FromString(msg.SerializeToString()) == msg


@pytest.mark.parametrize("member", [f.name for f in events_pb2.Event.DESCRIPTOR.oneofs[0].fields])
def test_event_oneof_round_trip(member: str) -> None:
    event = events_pb2.Event(timestamp=1, timestampNano=1_000_000)
    _set(event, events_pb2.Event.DESCRIPTOR.fields_by_name[member], random.Random(member), 0)
    decoded = events_pb2.Event.FromString(event.SerializeToString())
    assert decoded.WhichOneof("Payload") == member
    assert decoded == event


def test_generated_modules_are_current(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools is a dev dependency")
    written = schema.generate(REPO, tmp_path)
    assert written
    for path in written:
        committed = REPO / "aliecs_integration" / "pb" / path.name
        assert committed.read_text() == path.read_text(), (
            f"{committed} is stale: run python -m aliecs_integration.schema"
        )


def test_fdset_resolves_event(tmp_path: Path) -> None:
    out, size = schema.write_fdset(tmp_path / "fdset")
    assert out == tmp_path / "fdset" / "events.fdset"
    assert size == out.stat().st_size > 0
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    assert [f.name for f in fds.file] == list(schema.PROTO_FILES)
    pool = descriptor_pool.DescriptorPool()  # a fresh pool, like pq builds from the file
    for file_proto in fds.file:
        pool.Add(file_proto)
    event_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("events.Event"))
    payload = events_pb2.Event(
        timestamp=5, runEvent=events_pb2.Ev_RunEvent(environmentId="E", runNumber=7)
    ).SerializeToString()
    decoded = event_cls.FromString(payload)
    assert decoded.runEvent.runNumber == 7
    assert decoded.runEvent.environmentId == "E"
