import IPVS
import IPVSModel

/// Renders the kernel's IPVS table for people (like `ipvsadm -Ln`) or for programs (JSON), straight into
/// bytes: a node's table can hold a hundred thousand real servers.
///
/// The JSON schema is documented in `Docs/show-json.md`; fields may be added, never renamed.
struct TableReport {
    var info: IPVSInfo
    var virtualServers: [VirtualServerState]
    /// The Service port (`namespace/name:port`) each owned virtual server belongs to.
    var owners: [VirtualServerKey: String] = [:]

    /// The table in `ipvsadm -Ln` layout, with each owned virtual server's Service appended.
    func text() -> [UInt8] {
        var out = TextBuffer()
        out.line("IP Virtual Server version \(info.version) (size=\(info.connectionTableSize))")
        out.line("Prot LocalAddress:Port Scheduler Flags")
        out.line("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn")
        for state in sorted() {
            let server = state.server
            switch server.key {
            case .address(let transportProtocol, let address, let port):
                out.append(transportProtocol.name, width: 4)
                out.append(" ")
                out.endpoint(address, port)
            case .firewallMark(let mark, let family):
                out.append("FWM  \(mark)\(family == .ipv6 ? " IPv6" : "")")
            }
            out.append(" ")
            out.append(server.scheduler.rawValue)
            if server.flags.contains(.persistent) {
                out.append(" persistent ")
                out.decimal(server.persistenceTimeout)
                if server.persistenceNetmask != VirtualServer.hostNetmask(for: server.key.family) {
                    out.append(" mask \(Self.netmaskDescription(server))")
                }
            }
            let otherFlags = server.flags.userSettable.subtracting(.persistent)
            if !otherFlags.isEmpty { out.append(" (\(otherFlags.names.joined(separator: ",")))") }
            if let owner = owners[server.key] { out.append("  # \(owner)") }
            out.newline()
            for real in state.realServers.sorted(by: { $0.server.key < $1.server.key }) {
                out.append("  -> ")
                let start = out.bytes.count
                out.endpoint(real.server.address, real.server.port)
                out.pad(from: start, to: 28)
                out.append(" ")
                out.append(real.server.forwardingMethod.description, width: 7)
                out.append(" ")
                var start2 = out.bytes.count
                out.decimal(real.server.weight)
                out.pad(from: start2, to: 6)
                out.append(" ")
                start2 = out.bytes.count
                out.decimal(real.activeConnections)
                out.pad(from: start2, to: 10)
                out.append(" ")
                out.decimal(real.inactiveConnections)
                out.newline()
            }
        }
        return out.bytes
    }

    /// The table as JSON (schema in `Docs/show-json.md`).
    func json() -> [UInt8] {
        var writer = JSONWriter()
        writer.beginObject()
        writer.field("ipvsVersion", info.version.description)
        writer.field("connectionTableSize", info.connectionTableSize)
        writer.beginArray(key: "virtualServers")
        for state in sorted() {
            let server = state.server
            writer.beginObject()
            writer.field("family", server.key.family.description)
            switch server.key {
            case .address(let transportProtocol, let address, let port):
                writer.field("protocol", transportProtocol.name)
                writer.field("address", address: address)
                writer.field("port", port)
                writer.nullField("fwmark")
            case .firewallMark(let mark, _):
                writer.nullField("protocol")
                writer.nullField("address")
                writer.nullField("port")
                writer.field("fwmark", mark)
            }
            writer.field("scheduler", server.scheduler.rawValue)
            writer.field("flags", strings: server.flags.names)
            writer.field("persistenceTimeout", server.flags.contains(.persistent) ? server.persistenceTimeout : 0)
            writer.field("service", owners[server.key])
            writer.beginArray(key: "realServers")
            for real in state.realServers.sorted(by: { $0.server.key < $1.server.key }) {
                writer.beginObject()
                writer.field("address", address: real.server.address)
                writer.field("port", real.server.port)
                writer.field("weight", real.server.weight)
                writer.field("forwardingMethod", real.server.forwardingMethod.description)
                writer.field("activeConnections", real.activeConnections)
                writer.field("inactiveConnections", real.inactiveConnections)
                writer.endObject()
            }
            writer.endArray()
            writer.endObject()
        }
        writer.endArray()
        writer.endObject()
        return writer.bytes + [UInt8(ascii: "\n")]
    }

    private func sorted() -> [VirtualServerState] {
        virtualServers.sorted { $0.server.key < $1.server.key }
    }

    private static func netmaskDescription(_ server: VirtualServer) -> String {
        guard server.key.family == .ipv4 else { return "\(server.persistenceNetmask)" }
        return IPAddress(ipv4: UInt32(bigEndian: server.persistenceNetmask)).description
    }
}

/// Text output as bytes, with the column padding `ipvsadm` uses.
private struct TextBuffer {
    var bytes: [UInt8] = []

    mutating func append(_ text: String) { bytes.append(contentsOf: text.utf8) }

    /// Left-aligned in a column of `width` characters (never truncated).
    mutating func append(_ text: String, width: Int) {
        let start = bytes.count
        append(text)
        pad(from: start, to: width)
    }

    mutating func pad(from start: Int, to width: Int) {
        let written = bytes.count - start
        if written < width { bytes.append(contentsOf: repeatElement(UInt8(ascii: " "), count: width - written)) }
    }

    mutating func decimal(_ value: some BinaryInteger) { appendDecimal(value, to: &bytes) }

    /// `10.0.0.1:80` or `[fd00::1]:80`.
    mutating func endpoint(_ address: IPAddress, _ port: UInt16) {
        if address.family == .ipv6 { bytes.append(UInt8(ascii: "[")) }
        address.write(to: &bytes)
        if address.family == .ipv6 { bytes.append(UInt8(ascii: "]")) }
        bytes.append(UInt8(ascii: ":"))
        decimal(port)
    }

    mutating func line(_ text: String) {
        append(text)
        newline()
    }

    mutating func newline() { bytes.append(UInt8(ascii: "\n")) }
}
