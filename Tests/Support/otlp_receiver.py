#!/usr/bin/env python3
"""An OTLP receiver for the test suite, built on the official OpenTelemetry protobuf definitions.

Serves OTLP/gRPC (grpcio with opentelemetry-proto's generated services) and OTLP/HTTP (protobuf and JSON) on
127.0.0.1, each on a free port, and prints {"grpc": port, "http": port} as its first line. Control endpoints on
the HTTP port:
  POST /control/script   JSON list of responses for the next requests (any protocol), each one of:
                         {"http_status": 503, "retry_after": "2", "message": "..."}
                         {"grpc_code": 8, "retry_info_ms": 100, "message": "..."}
                         {"partial": 3, "message": "..."}          (accepted, some rejected)
                         {"delay_ms": 3000}                         (answer late, then accept)
                         {"ok": true}
  POST /control/down     JSON {"down": true|false}: while down every export gets 503 (HTTP) / UNAVAILABLE (gRPC)
  GET  /received         everything accepted so far, normalised (ids in hex, attributes as a dict)
  GET  /stats            counts: requests, spans, logs, points, unique and duplicate keys
  POST /control/reset    forget everything
A request that is answered with an error is not recorded. The process stops when stdin closes.

With `--tls DIR` it also writes a test PKI to DIR (ca.pem, server.pem/server-key.pem for 127.0.0.1,
client.pem/client-key.pem signed by the same CA, other-ca.pem that signed nothing) and serves the same services
over TLS: "grpc_tls" (gRPC, HTTP/2 over TLS), "grpc_mtls" (gRPC requiring a client certificate) and "https"
(OTLP/HTTP over TLS), whose ports join the first line.
"""
import base64
import gzip
import json
import sys
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietHTTPServer(ThreadingHTTPServer):
    """Clients that hang up first (a cancelled or shut-down request) are expected, not an error to print."""

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)

import grpc
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

LOCK = threading.Lock()
STATE = {}


def reset():
    with LOCK:
        STATE.clear()
        STATE.update(script=[], down=False, requests=0, failed=0, spans=[], logs=[], metrics=[], keys={}, duplicates=0,
                     headers=[], protocols=[])


reset()

REQUESTS = {
    "traces": (trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse, "rejected_spans"),
    "logs": (logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse, "rejected_log_records"),
    "metrics": (metrics_service_pb2.ExportMetricsServiceRequest, metrics_service_pb2.ExportMetricsServiceResponse, "rejected_data_points"),
}


def next_behaviour():
    with LOCK:
        if STATE["down"]:
            return {"down": True}
        if STATE["script"]:
            return STATE["script"].pop(0)
    return {}


def hexid(b64):
    return base64.b64decode(b64).hex() if b64 else ""


def any_value(v):
    if v is None:
        return None
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    if "intValue" in v:
        return int(v["intValue"])
    if "bytesValue" in v:
        return "b64:" + v["bytesValue"]
    if "arrayValue" in v:
        return [any_value(x) for x in v["arrayValue"].get("values", [])]
    if "kvlistValue" in v:
        return {kv["key"]: any_value(kv.get("value")) for kv in v["kvlistValue"].get("values", [])}
    return None


def attrs(items):
    return {kv["key"]: any_value(kv.get("value")) for kv in items or []}


def keep(bucket, key, item):
    """Stores an arrived item, counting it as a duplicate when an item with the same key arrived before."""
    STATE["duplicates"] += 1 if key in STATE["keys"] else 0
    STATE["keys"][key] = True
    STATE[bucket].append(item)


def record(signal, message, protocol, headers):
    d = json_format.MessageToDict(message)
    with LOCK:
        STATE["requests"] += 1
        STATE["headers"].append(headers)
        STATE["protocols"].append(protocol)
        for rs in d.get("resourceSpans", []) + d.get("resourceLogs", []) + d.get("resourceMetrics", []):
            resource = attrs(rs.get("resource", {}).get("attributes"))
            for ss in rs.get("scopeSpans", []):
                scope = ss.get("scope", {})
                for s in ss.get("spans", []):
                    item = {
                        "resource": resource, "scope": scope.get("name", ""), "scopeVersion": scope.get("version", ""),
                        "traceId": hexid(s.get("traceId")), "spanId": hexid(s.get("spanId")),
                        "parentSpanId": hexid(s.get("parentSpanId")), "name": s.get("name", ""),
                        "kind": s.get("kind", "SPAN_KIND_UNSPECIFIED"),
                        "start": int(s.get("startTimeUnixNano", 0)), "end": int(s.get("endTimeUnixNano", 0)),
                        "attributes": attrs(s.get("attributes")),
                        "events": [{"name": e.get("name", ""), "time": int(e.get("timeUnixNano", 0)), "attributes": attrs(e.get("attributes"))} for e in s.get("events", [])],
                        "links": [{"traceId": hexid(l.get("traceId")), "spanId": hexid(l.get("spanId")), "attributes": attrs(l.get("attributes"))} for l in s.get("links", [])],
                        "status": {"code": s.get("status", {}).get("code", "STATUS_CODE_UNSET"), "message": s.get("status", {}).get("message", "")},
                    }
                    keep("spans", "span:" + item["spanId"], item)
            for sl in rs.get("scopeLogs", []):
                scope = sl.get("scope", {})
                for r in sl.get("logRecords", []):
                    item = {
                        "resource": resource, "scope": scope.get("name", ""),
                        "time": int(r.get("timeUnixNano", 0)), "severityNumber": r.get("severityNumber", "SEVERITY_NUMBER_UNSPECIFIED"),
                        "severityText": r.get("severityText", ""), "body": any_value(r.get("body")),
                        "attributes": attrs(r.get("attributes")), "traceId": hexid(r.get("traceId")), "spanId": hexid(r.get("spanId")),
                    }
                    keep("logs", "log:%s:%s" % (item["time"], item["body"]), item)
            for sm in rs.get("scopeMetrics", []):
                scope = sm.get("scope", {})
                for m in sm.get("metrics", []):
                    for kind in ("sum", "gauge", "histogram"):
                        if kind not in m:
                            continue
                        body = m[kind]
                        for p in body.get("dataPoints", []):
                            item = {
                                "resource": resource, "scope": scope.get("name", ""), "name": m.get("name", ""),
                                "unit": m.get("unit", ""), "kind": kind, "attributes": attrs(p.get("attributes")),
                                "temporality": body.get("aggregationTemporality", ""), "monotonic": body.get("isMonotonic", False),
                                "start": int(p.get("startTimeUnixNano", 0)), "time": int(p.get("timeUnixNano", 0)),
                            }
                            if "asInt" in p:
                                item["value"] = int(p["asInt"])
                            elif "asDouble" in p:
                                item["value"] = p["asDouble"]
                            if kind == "histogram":
                                item.update(count=int(p.get("count", 0)), sum=p.get("sum", 0), min=p.get("min"), max=p.get("max"),
                                            bucketCounts=[int(c) for c in p.get("bucketCounts", [])], explicitBounds=p.get("explicitBounds", []))
                            STATE["metrics"].append(item)


def retry_info_status(code, message, delay_ms):
    def varint(v):
        out = bytearray()
        while True:
            b = v & 0x7F
            v >>= 7
            out.append(b | (0x80 if v else 0))
            if not v:
                return bytes(out)

    def field(num, payload):
        return varint(num << 3 | 2) + varint(len(payload)) + payload

    def field_varint(num, v):
        return varint(num << 3) + varint(v)

    duration = field_varint(1, delay_ms // 1000) + field_varint(2, (delay_ms % 1000) * 1_000_000)
    retry_info = field(1, duration)
    any_msg = field(1, b"type.googleapis.com/google.rpc.RetryInfo") + field(2, retry_info)
    return field_varint(1, code) + field(2, message.encode()) + field(3, any_msg)


def hex_ids_to_base64(node):
    if isinstance(node, dict):
        for k, v in list(node.items()):
            if k in ("traceId", "spanId", "parentSpanId") and isinstance(v, str):
                node[k] = base64.b64encode(bytes.fromhex(v)).decode()
            else:
                hex_ids_to_base64(v)
    elif isinstance(node, list):
        for v in node:
            hex_ids_to_base64(v)


class HTTPHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", content_type="application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with LOCK:
            if self.path == "/received":
                body = {"spans": STATE["spans"], "logs": STATE["logs"], "metrics": STATE["metrics"], "headers": STATE["headers"], "protocols": STATE["protocols"]}
            elif self.path == "/stats":
                body = {"requests": STATE["requests"], "failed": STATE["failed"], "spans": len(STATE["spans"]), "logs": len(STATE["logs"]),
                        "points": len(STATE["metrics"]), "unique": len(STATE["keys"]), "duplicates": STATE["duplicates"]}
            else:
                body = None
        if body is None:
            return self.reply(404, b"{}")
        self.reply(200, json.dumps(body).encode())

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        data = self.rfile.read(length)
        if self.path.startswith("/control/"):
            with LOCK:
                if self.path == "/control/script":
                    STATE["script"] = json.loads(data)
                elif self.path == "/control/down":
                    STATE["down"] = json.loads(data)["down"]
            if self.path == "/control/reset":
                reset()
            return self.reply(200, b"{}")
        signal = self.path.rsplit("/", 1)[-1]
        if signal not in REQUESTS or not self.path.startswith("/v1/"):
            return self.reply(404, b'{"message": "unknown path"}')
        request_type, response_type, rejected_field = REQUESTS[signal]
        is_json = self.headers.get("Content-Type", "").startswith("application/json")
        if self.headers.get("Content-Encoding", "") == "gzip":
            data = gzip.decompress(data)
        behaviour = next_behaviour()
        if behaviour.get("down"):
            with LOCK:
                STATE["failed"] += 1
            return self.reply(503, b'{"message": "receiver is down"}')
        if "delay_ms" in behaviour:
            time.sleep(behaviour["delay_ms"] / 1000)
        if "http_status" in behaviour:
            headers = [("Retry-After", behaviour["retry_after"])] if "retry_after" in behaviour else []
            with LOCK:
                STATE["failed"] += 1
            return self.reply(behaviour["http_status"], json.dumps({"code": 3, "message": behaviour.get("message", "scripted")}).encode(), headers=headers)
        message = request_type()
        try:
            if is_json:
                doc = json.loads(data)
                hex_ids_to_base64(doc)
                json_format.ParseDict(doc, message, ignore_unknown_fields=False)
            else:
                message.ParseFromString(data)
        except Exception as error:  # noqa: BLE001
            with LOCK:
                STATE["failed"] += 1
            return self.reply(400, json.dumps({"code": 3, "message": "cannot decode: %s" % error}).encode())
        record(signal, message, "http/json" if is_json else "http/protobuf", dict(self.headers.items()))
        response = response_type()
        if "partial" in behaviour:
            setattr(response.partial_success, rejected_field, behaviour["partial"])
            response.partial_success.error_message = behaviour.get("message", "scripted partial")
        if is_json:
            self.reply(200, json_format.MessageToJson(response).encode())
        else:
            self.reply(200, response.SerializeToString(), content_type="application/x-protobuf")


def grpc_export(signal):
    request_type, response_type, rejected_field = REQUESTS[signal]

    def export(request, context):
        behaviour = next_behaviour()
        if behaviour.get("down"):
            with LOCK:
                STATE["failed"] += 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "receiver is down")
        if "delay_ms" in behaviour:
            time.sleep(behaviour["delay_ms"] / 1000)
        if "grpc_code" in behaviour:
            code = behaviour["grpc_code"]
            message = behaviour.get("message", "scripted")
            if "retry_info_ms" in behaviour:
                context.set_trailing_metadata([("grpc-status-details-bin", retry_info_status(code, message, behaviour["retry_info_ms"]))])
            with LOCK:
                STATE["failed"] += 1
            status = next(s for s in grpc.StatusCode if s.value[0] == code)
            context.abort(status, message)
        record(signal, request, "grpc", {k: v for k, v in context.invocation_metadata() if not k.endswith("-bin")})
        response = response_type()
        if "partial" in behaviour:
            setattr(response.partial_success, rejected_field, behaviour["partial"])
            response.partial_success.error_message = behaviour.get("message", "scripted partial")
        return response

    return export


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    Export = staticmethod(grpc_export("traces"))


class LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    Export = staticmethod(grpc_export("logs"))


class MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    Export = staticmethod(grpc_export("metrics"))


def write_pki(directory):
    """A CA, a server certificate for 127.0.0.1, a client certificate, and an unrelated CA, as PEM files."""
    import datetime
    import ipaddress
    import os

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def certificate(common_name, key, issuer_name, issuer_key, ca=False, server=False, client=False):
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                   .issuer_name(issuer_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        if client:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def write(name, data):
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)

    def pem_key(key):
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    os.makedirs(directory, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "TelemetryFlow test CA")])
    ca = certificate("TelemetryFlow test CA", ca_key, ca_name, ca_key, ca=True)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Unrelated CA")])
    other = certificate("Unrelated CA", other_key, other_name, other_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = certificate("127.0.0.1", server_key, ca_name, ca_key, server=True)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = certificate("export-tests client", client_key, ca_name, ca_key, client=True)
    pem = serialization.Encoding.PEM
    write("ca.pem", ca.public_bytes(pem))
    write("other-ca.pem", other.public_bytes(pem))
    write("server.pem", server.public_bytes(pem))
    write("server-key.pem", pem_key(server_key))
    write("client.pem", client.public_bytes(pem))
    write("client-key.pem", pem_key(client_key))
    return ca.public_bytes(pem), server.public_bytes(pem), pem_key(server_key)


def grpc_server():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(LogsService(), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(MetricsService(), server)
    return server


def http_server(tls_context=None):
    http = QuietHTTPServer(("127.0.0.1", 0), HTTPHandler)
    http.daemon_threads = True
    if tls_context is not None:
        http.socket = tls_context.wrap_socket(http.socket, server_side=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    return http


def main():
    servers = [grpc_server()]
    ports = {"grpc": servers[0].add_insecure_port("127.0.0.1:0")}
    https = []
    if "--tls" in sys.argv:
        import os
        import ssl

        directory = sys.argv[sys.argv.index("--tls") + 1]
        ca, certificate, key = write_pki(directory)
        for name, require_client in (("grpc_tls", False), ("grpc_mtls", True)):
            server = grpc_server()
            credentials = grpc.ssl_server_credentials([(key, certificate)], root_certificates=ca if require_client else None,
                                                      require_client_auth=require_client)
            ports[name] = server.add_secure_port("127.0.0.1:0", credentials)
            servers.append(server)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(os.path.join(directory, "server.pem"), os.path.join(directory, "server-key.pem"))
        context.set_alpn_protocols(["http/1.1"])
        https.append(http_server(context))
        ports["https"] = https[0].server_address[1]
    for server in servers:
        server.start()
    http = http_server()
    ports["http"] = http.server_address[1]
    print(json.dumps(ports), flush=True)
    sys.stdin.read()  # the test closes stdin (or dies) to stop us
    for server in servers:
        server.stop(0)
    for server in [http] + https:
        server.shutdown()


if __name__ == "__main__":
    main()
