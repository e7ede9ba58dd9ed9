import IPVS

/// Renders the kernel's IPVS table for people (like `ipvsadm -Ln`) or for programs (JSON).
///
/// The JSON schema is documented in `Docs/show-json.md`; fields may be added, never renamed.
struct TableReport {
    var info: IPVSInfo
    var virtualServers: [VirtualServerState]
    /// The Service port (`namespace/name:port`) each owned virtual server belongs to.
    var owners: [VirtualServerKey: String] = [:]

    /// The table in `ipvsadm -Ln` layout, with each owned virtual server's Service appended.
    func text() -> String {
        var lines = [
            "IP Virtual Server version \(info.version) (size=\(info.connectionTableSize))",
            "Prot LocalAddress:Port Scheduler Flags",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
        ]
        for state in sorted() {
            let server = state.server
            var line: String
            switch server.key {
            case .address(let transportProtocol, let address, let port):
                line =
                    "\(transportProtocol.name.padding(to: 4)) \(address.bracketedDescription):\(port) \(server.scheduler)"
            case .firewallMark(let mark, let family):
                line = "FWM  \(mark)\(family == .ipv6 ? " IPv6" : "") \(server.scheduler)"
            }
            if server.flags.contains(.persistent) {
                line += " persistent \(server.persistenceTimeout)"
                if server.persistenceNetmask != VirtualServer.hostNetmask(for: server.key.family) {
                    line += " mask \(Self.netmaskDescription(server))"
                }
            }
            let otherFlags = server.flags.userSettable.subtracting(.persistent)
            if !otherFlags.isEmpty { line += " (\(otherFlags.names.joined(separator: ",")))" }
            if let owner = owners[server.key] { line += "  # \(owner)" }
            lines.append(line)
            for real in state.realServers.sorted(by: { $0.server.key < $1.server.key }) {
                lines.append(
                    "  -> \(real.server.key.description.padding(to: 28)) "
                        + "\(real.server.forwardingMethod.description.padding(to: 7)) "
                        + "\(String(real.server.weight).padding(to: 6)) "
                        + "\(String(real.activeConnections).padding(to: 10)) \(real.inactiveConnections)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The table as JSON (schema in `Docs/show-json.md`).
    func json() -> String {
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
                writer.field("address", address.description)
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
                writer.field("address", real.server.address.description)
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
        return writer.output + "\n"
    }

    private func sorted() -> [VirtualServerState] {
        virtualServers.sorted { $0.server.key < $1.server.key }
    }

    private static func netmaskDescription(_ server: VirtualServer) -> String {
        guard server.key.family == .ipv4 else { return "\(server.persistenceNetmask)" }
        return IPAddress(ipv4: UInt32(bigEndian: server.persistenceNetmask)).description
    }
}

extension String {
    /// Left-aligns in a column of `width` characters (never truncates).
    func padding(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
