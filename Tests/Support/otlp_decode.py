#!/usr/bin/env python3
"""Decodes OTLP protobuf bytes with the official opentelemetry-proto definitions and prints JSON.

usage: otlp_decode.py span|log|event FILE
"""
import json
import sys

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

kind, path = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
message = {"span": Span, "log": LogRecord, "event": Span.Event}[kind]()
message.ParseFromString(data)
# Unknown fields mean our field numbers disagree with the official definitions.
def unknown_count(msg):
    try:
        from google.protobuf import unknown_fields
        count = len(unknown_fields.UnknownFieldSet(msg))
    except (ImportError, NotImplementedError):
        count = len(msg.UnknownFields())
    for field, value in msg.ListFields():
        if field.message_type is None:
            continue
        repeated = getattr(field, "is_repeated", None)
        if repeated is None:
            repeated = field.label == field.LABEL_REPEATED
        items = value if repeated else [value]
        for item in items:
            count += unknown_count(item)
    return count


if unknown_count(message):
    print("unknown fields present: our field numbers disagree with opentelemetry-proto", file=sys.stderr)
    sys.exit(3)
out = MessageToDict(message, preserving_proto_field_name=True)
# Ids as hex, as OTLP/JSON writes them, so the test compares them directly.
for key in ("trace_id", "span_id", "parent_span_id"):
    if hasattr(message, key) and getattr(message, key):
        out[key] = getattr(message, key).hex()
if kind == "span":
    out["links"] = [dict(MessageToDict(l, preserving_proto_field_name=True), trace_id=l.trace_id.hex(), span_id=l.span_id.hex()) for l in message.links]
print(json.dumps(out, sort_keys=True))
