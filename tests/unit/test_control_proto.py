"""protos/o2control.proto keeps the reference's names and numbers, field by field.

REFERENCE is transcribed from the reference core's o2control.proto (AliceO2Group/Control,
core/protos/o2control.proto, as generated into its o2control.pb.go): message -> {number:
(name, type, label)}. Our additions (Optype EXIT and RECOVER) are listed separately.
"""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FieldDescriptor

from aliecs_integration.pb import o2control_pb2

S, I32, I64, U32, B = "string", "int32", "int64", "uint32", "bool"
MAP = "map"
REP = "repeated"


def _m(name: str) -> str:
    return f"o2control.{name}"


REFERENCE: dict[str, dict[int, tuple[str, str, str]]] = {
    "SubscribeRequest": {1: ("id", S, "")},
    "GetFrameworkInfoRequest": {},
    "Version": {1: ("major", I32, ""), 2: ("minor", I32, ""), 3: ("patch", I32, ""),
                4: ("build", S, ""), 5: ("productName", S, ""), 6: ("versionStr", S, "")},
    "GetFrameworkInfoReply": {
        1: ("frameworkId", S, ""), 2: ("environmentsCount", I32, ""), 3: ("tasksCount", I32, ""),
        4: ("state", S, ""), 5: ("hostsCount", I32, ""), 6: ("instanceName", S, ""),
        7: ("version", _m("Version"), ""), 8: ("configurationEndpoint", S, ""),
        9: ("detectorsInInstance", S, REP), 10: ("activeDetectors", S, REP),
        11: ("availableDetectors", S, REP), 12: ("timestamp", I64, "")},
    "GetEnvironmentsRequest": {1: ("showAll", B, ""), 2: ("showTaskInfos", B, "")},
    "GetEnvironmentsReply": {1: ("frameworkId", S, ""),
                             2: ("environments", _m("EnvironmentInfo"), REP),
                             3: ("timestamp", I64, "")},
    "EnvironmentInfo": {
        1: ("id", S, ""), 2: ("createdWhen", I64, ""), 3: ("state", S, ""),
        4: ("tasks", _m("ShortTaskInfo"), REP), 5: ("rootRole", S, ""),
        6: ("currentRunNumber", U32, ""), 7: ("defaults", S, MAP), 8: ("vars", S, MAP),
        9: ("userVars", S, MAP), 10: ("numberOfFlps", I32, ""),
        11: ("includedDetectors", S, REP), 12: ("description", S, ""),
        13: ("numberOfHosts", I32, ""), 14: ("integratedServicesData", S, MAP),
        15: ("numberOfTasks", I32, ""), 16: ("currentTransition", S, ""),
        17: ("numberOfActiveTasks", I32, ""), 18: ("numberOfInactiveTasks", I32, "")},
    "NewEnvironmentRequest": {1: ("workflowTemplate", S, ""), 2: ("vars", S, MAP),
                              3: ("public", B, ""), 4: ("autoTransition", B, ""),
                              5: ("requestUser", "common.User", "")},
    "NewEnvironmentReply": {1: ("environment", _m("EnvironmentInfo"), ""), 2: ("public", B, ""),
                            3: ("timestamp", I64, "")},
    "GetEnvironmentRequest": {1: ("id", S, ""), 2: ("showWorkflowTree", B, "")},
    "GetEnvironmentReply": {1: ("environment", _m("EnvironmentInfo"), ""),
                            2: ("workflow", _m("RoleInfo"), ""), 3: ("public", B, ""),
                            4: ("timestamp", I64, "")},
    "ControlEnvironmentRequest": {
        1: ("id", S, ""), 2: ("type", _m("ControlEnvironmentRequest.Optype"), ""),
        3: ("requestUser", "common.User", "")},
    "ControlEnvironmentReply": {
        1: ("id", S, ""), 2: ("state", S, ""), 3: ("currentRunNumber", U32, ""),
        4: ("startOfTransition", I64, ""), 5: ("endOfTransition", I64, ""),
        6: ("transitionDuration", I64, ""), 7: ("timestamp", I64, "")},
    "DestroyEnvironmentRequest": {
        1: ("id", S, ""), 2: ("keepTasks", B, ""), 3: ("allowInRunningState", B, ""),
        4: ("force", B, ""), 5: ("requestUser", "common.User", "")},
    "DestroyEnvironmentReply": {1: ("cleanupTasksReply", _m("CleanupTasksReply"), ""),
                                2: ("timestamp", I64, "")},
    "GetActiveDetectorsReply": {1: ("detectors", S, REP), 2: ("timestamp", I64, "")},
    "GetAvailableDetectorsReply": {1: ("detectors", S, REP), 2: ("timestamp", I64, "")},
    "ShortTaskInfo": {
        1: ("name", S, ""), 2: ("locked", B, ""), 3: ("taskId", S, ""), 4: ("status", S, ""),
        5: ("state", S, ""), 6: ("className", S, ""),
        7: ("deploymentInfo", _m("TaskDeploymentInfo"), ""), 8: ("pid", S, ""),
        9: ("sandboxStdout", S, ""), 10: ("claimable", B, ""), 11: ("critical", B, "")},
    "TaskDeploymentInfo": {1: ("hostname", S, ""), 2: ("agentId", S, ""), 3: ("offerId", S, ""),
                           4: ("executorId", S, "")},
    "GetTasksRequest": {},
    "GetTasksReply": {1: ("tasks", _m("ShortTaskInfo"), REP), 2: ("timestamp", I64, "")},
    "CleanupTasksReply": {1: ("killedTasks", _m("ShortTaskInfo"), REP),
                          2: ("runningTasks", _m("ShortTaskInfo"), REP),
                          3: ("timestamp", I64, "")},
    "GetRolesRequest": {1: ("envId", S, ""), 2: ("pathSpec", S, "")},
    "RoleInfo": {
        1: ("name", S, ""), 2: ("status", S, ""), 3: ("state", S, ""), 4: ("fullPath", S, ""),
        5: ("taskIds", S, REP), 6: ("roles", _m("RoleInfo"), REP), 7: ("defaults", S, MAP),
        8: ("vars", S, MAP), 9: ("userVars", S, MAP), 10: ("consolidatedStack", S, MAP),
        11: ("description", S, "")},
    "GetRolesReply": {1: ("roles", _m("RoleInfo"), REP), 2: ("timestamp", I64, "")},
    "GetWorkflowTemplatesRequest": {
        1: ("repoPattern", S, ""), 2: ("revisionPattern", S, ""), 3: ("allBranches", B, ""),
        4: ("allTags", B, ""), 5: ("allWorkflows", B, "")},
    "VarSpecMessage": {
        1: ("defaultValue", S, ""), 2: ("type", _m("VarSpecMessage.Type"), ""),
        3: ("label", S, ""), 4: ("description", S, ""),
        5: ("widget", _m("VarSpecMessage.UiWidget"), ""), 6: ("panel", S, ""),
        7: ("allowedValues", S, REP), 8: ("index", I32, ""), 9: ("visibleIf", S, ""),
        10: ("enabledIf", S, ""), 11: ("rows", U32, "")},
    "WorkflowTemplateInfo": {
        1: ("repo", S, ""), 2: ("template", S, ""), 3: ("revision", S, ""),
        4: ("varSpecMap", _m("VarSpecMessage"), MAP), 5: ("description", S, "")},
    "GetWorkflowTemplatesReply": {1: ("workflowTemplates", _m("WorkflowTemplateInfo"), REP),
                                  2: ("timestamp", I64, "")},
    "Empty": {},
    "ListIntegratedServicesReply": {1: ("services", _m("IntegratedServiceInfo"), MAP),
                                    2: ("timestamp", I64, "")},
    "IntegratedServiceInfo": {1: ("name", S, ""), 2: ("enabled", B, ""), 3: ("endpoint", S, ""),
                              4: ("connectionState", S, ""), 5: ("data", S, "")},
}

REFERENCE_ENUMS = {
    "ControlEnvironmentRequest.Optype": {"NOOP": 0, "START_ACTIVITY": 1, "STOP_ACTIVITY": 2,
                                         "CONFIGURE": 3, "RESET": 4, "GO_ERROR": 5, "DEPLOY": 6},
    "VarSpecMessage.UiWidget": {"editBox": 0, "slider": 1, "listBox": 2, "dropDownBox": 3,
                                "comboBox": 4, "radioButtonBox": 5, "checkBox": 6},
    "VarSpecMessage.Type": {"string": 0, "number": 1, "bool": 2, "list": 3, "map": 4},
}
OUR_ENUM_ADDITIONS = {"ControlEnvironmentRequest.Optype": {"EXIT": 101, "RECOVER": 102}}

# rpc name -> (request, response, server-streaming), as in the reference's service
REFERENCE_RPCS = {
    "GetFrameworkInfo": ("GetFrameworkInfoRequest", "GetFrameworkInfoReply", False),
    "GetEnvironments": ("GetEnvironmentsRequest", "GetEnvironmentsReply", False),
    "NewEnvironment": ("NewEnvironmentRequest", "NewEnvironmentReply", False),
    "GetEnvironment": ("GetEnvironmentRequest", "GetEnvironmentReply", False),
    "ControlEnvironment": ("ControlEnvironmentRequest", "ControlEnvironmentReply", False),
    "DestroyEnvironment": ("DestroyEnvironmentRequest", "DestroyEnvironmentReply", False),
    "GetActiveDetectors": ("Empty", "GetActiveDetectorsReply", False),
    "GetAvailableDetectors": ("Empty", "GetAvailableDetectorsReply", False),
    "NewEnvironmentAsync": ("NewEnvironmentRequest", "NewEnvironmentReply", False),
    "GetTasks": ("GetTasksRequest", "GetTasksReply", False),
    "GetRoles": ("GetRolesRequest", "GetRolesReply", False),
    "GetWorkflowTemplates": ("GetWorkflowTemplatesRequest", "GetWorkflowTemplatesReply", False),
    "Subscribe": ("SubscribeRequest", "events.Event", True),
    "GetIntegratedServices": ("Empty", "ListIntegratedServicesReply", False),
}

SCALARS = {FieldDescriptor.TYPE_STRING: S, FieldDescriptor.TYPE_INT32: I32,
           FieldDescriptor.TYPE_INT64: I64, FieldDescriptor.TYPE_UINT32: U32,
           FieldDescriptor.TYPE_BOOL: B}
POOL = descriptor_pool.Default()


def _describe(field: FieldDescriptor) -> tuple[str, str, str]:
    message = field.message_type
    if message is not None and message.GetOptions().map_entry:
        value = message.fields_by_name["value"]
        inner = _describe(value)[1]
        return field.name, inner, MAP
    if message is not None:
        kind = str(message.full_name)
    elif field.enum_type is not None:
        kind = str(field.enum_type.full_name)
    else:
        kind = SCALARS[field.type]
    return field.name, kind, REP if field.is_repeated else ""


def test_package_and_file() -> None:
    assert o2control_pb2.DESCRIPTOR.package == "o2control"
    assert o2control_pb2.DESCRIPTOR.name == "protos/o2control.proto"
    assert [d.name for d in o2control_pb2.DESCRIPTOR.dependencies] == ["protos/events.proto"]


def test_every_message_of_the_subset_is_declared_and_nothing_else() -> None:
    assert set(o2control_pb2.DESCRIPTOR.message_types_by_name) == set(REFERENCE)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_fields_match_the_reference(name: str) -> None:
    desc = POOL.FindMessageTypeByName(f"o2control.{name}")
    actual = {f.number: _describe(f) for f in desc.fields}
    assert actual == REFERENCE[name]


@pytest.mark.parametrize("name", sorted(REFERENCE_ENUMS))
def test_enums_match_the_reference_plus_our_additions(name: str) -> None:
    enum = POOL.FindEnumTypeByName(f"o2control.{name}")
    expected = {**REFERENCE_ENUMS[name], **OUR_ENUM_ADDITIONS.get(name, {})}
    assert {v.name: v.number for v in enum.values} == expected


def test_service_rpcs_match_the_reference() -> None:
    service = o2control_pb2.DESCRIPTOR.services_by_name["Control"]
    assert service.full_name == "o2control.Control"
    actual = {}
    for method in service.methods:
        request = method.input_type.full_name.removeprefix("o2control.")
        response = method.output_type.full_name.removeprefix("o2control.")
        actual[method.name] = (request, response, method.server_streaming)
        assert not method.client_streaming
    assert actual == REFERENCE_RPCS
