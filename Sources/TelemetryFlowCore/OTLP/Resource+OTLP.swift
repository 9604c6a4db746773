// MARK: OTLP JSON

extension InstrumentationScope {
    package func writeOTLPJSON(into j: inout JSONWriter) {
        j.object { j in
            j.field("name", name)
            if !version.isEmpty { j.field("version", version) }
        }
    }
}

// MARK: OTLP JSON

extension Resource {
    package func writeOTLPJSON(into j: inout JSONWriter) {
        j.object { j in attributes.writeOTLPJSON(into: &j) }
    }
}
