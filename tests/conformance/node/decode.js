// Decode protobuf messages as ALICE Bookkeeping and the Control GUI do: protobufjs loads the
// .proto files (protobuf.load), Type.decode, Type.toObject.
//
// usage: node decode.js REPO_ROOT < requests > results
//   request, one JSON object per line: {"type": "events.Event", "b64": "<base64 bytes>"}
//   result, one JSON line per request, in order: the decoded object, or {"__error__": "..."}
// toObject options: 64-bit integers and enums as strings, fields absent from the wire omitted
// (the same conventions as Python's json_format.MessageToDict).
"use strict";
const fs = require("fs");
const path = require("path");
const protobuf = require("protobufjs");

const repo = process.argv[2];
if (!repo) {
  process.stderr.write("usage: node decode.js REPO_ROOT\n");
  process.exit(2);
}
const root = new protobuf.Root();
// events.proto imports "protos/common.proto": resolve imports from the repository root.
root.resolvePath = (origin, target) =>
  path.isAbsolute(target) ? target : path.join(repo, target);
root.loadSync([path.join(repo, "protos/events.proto"), path.join(repo, "protos/kafka.proto")]);
root.resolveAll();

const input = fs.readFileSync(0, "utf8");
const out = [];
for (const line of input.split("\n")) {
  if (!line.trim()) continue;
  try {
    const request = JSON.parse(line);
    const type = root.lookupType(request.type);
    const message = type.decode(Buffer.from(request.b64, "base64"));
    out.push(JSON.stringify(type.toObject(message, { longs: String, enums: String })));
  } catch (err) {
    out.push(JSON.stringify({ __error__: String(err) }));
  }
}
process.stdout.write(out.join("\n") + (out.length ? "\n" : ""));
