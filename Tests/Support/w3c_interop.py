"""W3C propagation as the official OpenTelemetry Python API does it, for the client's interoperability test.

  python3 w3c_interop.py produce            prints the headers of a fixed context as JSON
  python3 w3c_interop.py consume '<json>'   extracts the headers given and prints the context as JSON
"""
import json
import sys

from opentelemetry import baggage, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator


def produce():
    span = trace.SpanContext(trace_id=0x5B8AA5A2D2C872E8321CF37308D69DF2, span_id=0x051581BF3CB55C13, is_remote=False,
                             trace_flags=trace.TraceFlags(1), trace_state=trace.TraceState([("vendor", "opaque1")]))
    ctx = trace.set_span_in_context(trace.NonRecordingSpan(span))
    ctx = baggage.set_baggage("tenant", "acme", ctx)
    ctx = baggage.set_baggage("user.id", "42", ctx)
    headers = {}
    TraceContextTextMapPropagator().inject(headers, ctx)
    W3CBaggagePropagator().inject(headers, ctx)
    print(json.dumps(headers))


def consume(headers):
    ctx = TraceContextTextMapPropagator().extract(headers)
    ctx = W3CBaggagePropagator().extract(headers, ctx)
    span = trace.get_current_span(ctx).get_span_context()
    print(json.dumps({
        "valid": span.is_valid, "traceId": "%032x" % span.trace_id, "spanId": "%016x" % span.span_id,
        "sampled": bool(span.trace_flags & 1), "remote": span.is_remote,
        "traceState": span.trace_state.to_header(), "baggage": dict(baggage.get_all(ctx)),
    }))


if __name__ == "__main__":
    if sys.argv[1] == "produce":
        produce()
    else:
        consume(json.loads(sys.argv[2]))
