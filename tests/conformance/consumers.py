"""Reading a scenario's topics back and decoding them the way the reference's consumers do.

Every message is decoded twice: with the Python protobuf runtime (``json_format.MessageToDict``)
and with protobufjs in Node (``node/decode.js``: ``protobuf.load``, ``Type.decode``,
``toObject``), as ALICE Bookkeeping and the Control GUI do. The rules of each consumer
(Bookkeeping, QC, the Control GUI) are applied to the decoded messages by the tests.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from aliecs_integration.pb import events_pb2, kafka_pb2

REPO = Path(__file__).resolve().parents[2]
DECODER = Path(__file__).resolve().parent / "node" / "decode.js"


def node_modules() -> str:
    """Install protobufjs into the cache when missing (``dev/node-deps``); its node_modules."""
    done = subprocess.run([str(REPO / "dev" / "node-deps")], capture_output=True, text=True,
                          check=False, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"dev/node-deps failed: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


def message_type(root: str, topic: str) -> str:
    """The protobuf type written to ``topic`` (core topics: ``events.Event``)."""
    name = topic.removeprefix(root + ".")
    if name == "env_list.RUNNING":
        return "kafka.ActiveRunsList"
    if name.startswith(("env_state.", "env_leave_state.")) or name.endswith("start_activity"):
        return "kafka.NewStateNotification"
    return "events.Event"


_PY_TYPES: dict[str, type[Message]] = {
    "events.Event": events_pb2.Event,
    "kafka.ActiveRunsList": kafka_pb2.ActiveRunsList,
    "kafka.NewStateNotification": kafka_pb2.NewStateNotification,
}


@attrs.frozen
class Decoded:
    """One message read back: where it was, its bytes, and both decodings."""

    topic: str
    key: str
    value: bytes
    type_name: str
    python: dict[str, Any]
    node: dict[str, Any]

    @property
    def canonical(self) -> bool:
        """The bytes equal a parse and deterministic re-serialization of themselves."""
        parsed = _PY_TYPES[self.type_name].FromString(self.value)
        return parsed.SerializeToString(deterministic=True) == self.value


def decode_python(type_name: str, value: bytes) -> dict[str, Any]:
    message = _PY_TYPES[type_name].FromString(value)
    return MessageToDict(message, preserving_proto_field_name=True)


def decode_node(requests: Sequence[tuple[str, bytes]], modules: str) -> list[dict[str, Any]]:
    """Decode every (type, bytes) with protobufjs in one Node process, in order."""
    lines = "".join(json.dumps({"type": t, "b64": base64.b64encode(v).decode()}) + "\n"
                    for t, v in requests)
    done = subprocess.run(["node", str(DECODER), str(REPO)], input=lines, capture_output=True,
                          text=True, check=False, timeout=300,
                          env={**os.environ, "NODE_PATH": modules})
    if done.returncode != 0:
        raise RuntimeError(f"node decoder failed ({done.returncode}): {done.stderr.strip()}")
    results = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    if len(results) != len(requests):
        raise RuntimeError(f"node decoder returned {len(results)} results for "
                           f"{len(requests)} messages: {done.stderr.strip()}")
    return results


def decode_all(root: str, messages: Iterable[Any], modules: str) -> list[Decoded]:
    """``messages``: confluent-kafka messages read back, in topic/partition order."""
    raw = [(str(m.topic()), m.key().decode() if m.key() is not None else "", bytes(m.value()))
           for m in messages]
    types = [message_type(root, topic) for topic, _, _ in raw]
    node = decode_node([(t, v) for t, (_, _, v) in zip(types, raw, strict=True)], modules)
    return [Decoded(topic, key, value, t, decode_python(t, value), js)
            for (topic, key, value), t, js in zip(raw, types, node, strict=True)]


def payload(event: dict[str, Any]) -> dict[str, Any]:
    """An integrated-service event's payload, parsed as JSON (raises when it is not)."""
    text = event["integratedServiceEvent"].get("payload", "")
    parsed = json.loads(text)
    assert isinstance(parsed, dict), text
    return parsed
