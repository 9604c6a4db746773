import Foundation
import Testing
import TelemetryFlow
import TelemetryFlowCore
import TelemetryFlowStorage
import TelemetryFlowTransport

/// TLS against the receiver's TLS services (a test CA, a server certificate for 127.0.0.1, a client certificate):
/// HTTP/2 over TLS for gRPC, verification on by default, CA files, host names, mutual TLS, OTLP/HTTP over TLS.
@Suite(.serialized) struct TLSTests {
    /// An empty ExportTraceServiceRequest: a valid message that exports nothing.
    static let emptyRequest: [UInt8] = []

    func call(_ receiver: Receiver, port: String, host: String = "127.0.0.1", tls: TLSOptions) async throws(TelemetryFlowError) -> GRPCResponse {
        try await GRPC.unary(
            receiver.client, url: "https://\(host):\(receiver.ports[port]!)/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            message: Self.emptyRequest, timeout: .seconds(5), compress: false, tls: tls)
    }

    @Test func gRPCCallsRunOverHTTP2WithTLS() async throws {
        let receiver = try Receiver(tls: true)
        let tls = TLSOptions(certificateAuthorityFile: receiver.pkiFile("ca.pem"))
        // Several calls in a row: on libcurl < 8 each gets its own connection, from 8.0 they share one.
        for _ in 0..<3 {
            let response = try await call(receiver, port: "grpc_tls", tls: tls)
            #expect(response.status == .ok, "\(response.message)")
            #expect(response.http.httpVersion == 20)
        }
    }

    @Test func verificationIsOnByDefault() async throws {
        let receiver = try Receiver(tls: true)
        let failures: [(String, TLSOptions, String)] = [
            ("system CAs only", TLSOptions(), "127.0.0.1"),
            ("an unrelated CA", TLSOptions(certificateAuthorityFile: receiver.pkiFile("other-ca.pem")), "127.0.0.1"),
            ("a host name the certificate does not name", TLSOptions(certificateAuthorityFile: receiver.pkiFile("ca.pem")), "localhost"),
        ]
        for (what, tls, host) in failures {
            let error = await #expect(throws: TelemetryFlowError.self, "\(what)") {
                _ = try await call(receiver, port: "grpc_tls", host: host, tls: tls)
            }
            #expect(error?.code == .transport, "\(what): \(String(describing: error))")
            #expect(error?.message.contains("SSL") == true || error?.message.contains("certificate") == true, "\(what): \(String(describing: error))")
        }
        // Only an explicit insecure skips verification.
        let response = try await call(receiver, port: "grpc_tls", tls: TLSOptions(insecure: true))
        #expect(response.status == .ok)
        #expect(try await receiver.stats()["failed"] == 0)
    }

    @Test(arguments: ["grpc", "http/protobuf", "http/json"])
    func everySignalArrivesOverTLS(protocolName: String) async throws {
        let receiver = try Receiver(tls: true)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tflow-tls-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try makeLog(dir)
        defer { log.close() }
        let last = try await recordWorkload(log)
        var configuration = exporterConfiguration("otlp", protocolName, receiver)
        configuration.otlp!.endpoint = "https://127.0.0.1:\(receiver.ports[protocolName == "grpc" ? "grpc_tls" : "https"]!)"
        configuration.otlp!.certificateFile = receiver.pkiFile("ca.pem")
        configuration.otlp!.compression = .gzip
        let pipeline = try await ExportPipeline(log: log, exporters: [configuration], registry: .standard(), resource: testResource)
        pipeline.start()
        #expect(await pipeline.waitUntilHandled(through: last, timeout: .seconds(30)), "\(pipeline.status)")
        await pipeline.stop()
        let stats = try await receiver.stats()
        #expect(stats["spans"] == 10 && stats["logs"] == 24 && stats["points"] == 3 && stats["failed"] == 0, "\(stats)")
        let received = try await receiver.received()
        let spans = try #require(received["spans"] as? [[String: Any]])
        #expect(spans.map { $0["name"] as? String } == (0..<10).map { sampleSpan($0).name })
    }

    @Test func mutualTLSSendsTheClientCertificate() async throws {
        let receiver = try Receiver(tls: true)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tflow-mtls-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try makeLog(dir)
        defer { log.close() }
        for n in 0..<5 { _ = log.append(.spanEnded(sampleSpan(n), scope: testScope), timestampUnixNano: 1) }
        _ = try await log.flush()
        let batch = try log.read(after: 0)
        var configuration = exporterConfiguration("otlp", "grpc", receiver)
        configuration.otlp!.endpoint = "https://127.0.0.1:\(receiver.ports["grpc_mtls"]!)"
        configuration.otlp!.certificateFile = receiver.pkiFile("ca.pem")

        // Without a client certificate the server refuses the handshake: retryable, nothing delivered.
        let anonymous = try PluginRegistry.standard().makeExporter(configuration)
        let refused = await anonymous.export(batch)
        await anonymous.shutdown()
        guard case .retryable = refused else {
            Issue.record("expected a retryable failure, got \(refused)")
            return
        }
        #expect(try await receiver.stats()["spans"] == 0)

        configuration.otlp!.clientCertificateFile = receiver.pkiFile("client.pem")
        configuration.otlp!.clientKeyFile = receiver.pkiFile("client-key.pem")
        let exporter = try PluginRegistry.standard().makeExporter(configuration)
        #expect(await exporter.export(batch) == .success)
        await exporter.shutdown()
        #expect(try await receiver.stats()["spans"] == 5)
    }

    @Test func tlsConfigurationErrorsAreClear() throws {
        let registry = PluginRegistry.standard()
        var configuration = ExporterConfiguration.otlp(OTLPExporterConfiguration(endpoint: "https://127.0.0.1:4317", protocol: .grpc), name: "secure")
        configuration.otlp!.certificateFile = "/nonexistent/ca.pem"
        let missing = #expect(throws: TelemetryFlowError.self) { try registry.makeExporter(configuration) }
        #expect(missing?.code == .invalidConfiguration && missing?.message.contains("/nonexistent/ca.pem") == true, "\(String(describing: missing))")

        configuration.otlp!.certificateFile = nil
        configuration.otlp!.clientCertificateFile = "/etc/hostname"
        let unpaired = #expect(throws: TelemetryFlowError.self) { try registry.makeExporter(configuration) }
        #expect(unpaired?.code == .invalidConfiguration && unpaired?.message.contains("client key") == true, "\(String(describing: unpaired))")

        // The variables name files that must be readable when they are read.
        let pki = LogDirectory()
        try FileManager.default.createDirectory(atPath: pki.path, withIntermediateDirectories: true)
        for name in ["ca.pem", "client.pem", "client-key.pem"] { try "pem".write(toFile: pki.path + "/" + name, atomically: true, encoding: .utf8) }
        var fromEnvironment = TelemetryFlow.Configuration()
        try fromEnvironment.applyEnvironment([
            "OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318", "OTEL_EXPORTER_OTLP_CERTIFICATE": pki.path + "/ca.pem",
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": pki.path + "/client.pem", "OTEL_EXPORTER_OTLP_CLIENT_KEY": pki.path + "/client-key.pem",
        ])
        let environment = try #require(fromEnvironment.exporters.first)
        #expect(environment.otlp!.certificateFile == pki.path + "/ca.pem")
        #expect(environment.otlp!.clientCertificateFile == pki.path + "/client.pem" && environment.otlp!.clientKeyFile == pki.path + "/client-key.pem")
    }
}

/// The libcurl-version rule of Docs/Export.md, checked on whichever libcurl runs the suite: before 8.0 every
/// gRPC call gets its own connection; from 8.0 calls reuse one connection and run on it as concurrent streams.
@Suite(.serialized) struct HTTP2ConnectionTests {
    @Test(arguments: ["grpc", "grpc_tls"])
    func gRPCCallsFollowTheInstalledLibcurlsConnectionRule(port: String) async throws {
        let receiver = try Receiver(tls: true)
        let url = "\(port == "grpc" ? "http" : "https")://127.0.0.1:\(receiver.ports[port]!)/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        let tls = TLSOptions(certificateAuthorityFile: receiver.pkiFile("ca.pem"))
        @Sendable func call(_ client: HTTPClient) async throws -> Int {
            let response = try await GRPC.unary(client, url: url, message: [], timeout: .seconds(5), compress: false, tls: tls)
            #expect(response.status == .ok && response.http.httpVersion == 20)
            return response.http.newConnections
        }
        func concurrently(_ client: HTTPClient) async throws -> Int {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<4 { group.addTask { try await call(client) } }
                return try await group.reduce(0, +)
            }
        }
        let cold = try HTTPClient()
        defer { cold.shutdown() }
        let coldConcurrent = try await concurrently(cold)
        let client = try HTTPClient()
        defer { client.shutdown() }
        var sequential: [Int] = []
        for _ in 0..<4 { sequential.append(try await call(client)) }
        let warmConcurrent = try await concurrently(client)
        print("HTTP/2 connection rule checked on libcurl \(client.capabilities.versionString) (reuse: \(client.capabilities.reusesHTTP2Connections))")
        if client.capabilities.reusesHTTP2Connections {
            #expect(coldConcurrent == 1, "four calls started together share one new connection")
            #expect(sequential == [1, 0, 0, 0])
            #expect(warmConcurrent == 0)
        } else {
            #expect(coldConcurrent == 4)
            #expect(sequential == [1, 1, 1, 1])
            #expect(warmConcurrent == 4)
        }
    }
}
