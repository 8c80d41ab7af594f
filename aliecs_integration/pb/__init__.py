"""Generated protobuf bindings of ``protos/*.proto``; do not edit (see ../schema.py)."""
