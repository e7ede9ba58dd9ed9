import IPVSModel

/// The lines `ipvsadm -Sn` prints for a table, sorted, so a test can compare the kernel's own dump
/// (read by ipvsadm) with what it expects. ipvsadm saves neither thresholds nor the persistence
/// netmask of IPv6 services.
func ipvsadmRules(_ table: [(VirtualServer, [RealServer])]) -> [String] {
    var lines: [String] = []
    for (server, reals) in table {
        let service = ipvsadmService(server.key)
        var line = "-A \(service) -s \(server.scheduler)"
        if server.flags.contains(.persistent) {
            line += " -p \(server.persistenceTimeout)"
            if server.persistenceNetmask != VirtualServer.hostNetmask(for: server.key.family) {
                line += " -M \(server.persistenceNetmask)"
            }
        }
        let schedulerFlags = [(ServiceFlags.schedulerFlag1, "fallback"), (.schedulerFlag2, "port")]
            .filter { server.flags.contains($0.0) }.map { "\(server.scheduler)-\($0.1)" }
        if !schedulerFlags.isEmpty { line += " -b \(schedulerFlags.joined(separator: ","))" }
        lines.append(line)
        for real in reals {
            let method = ["-m", "-i", "-g"][
                [ForwardingMethod.masquerade, .tunnel, .directRoute].firstIndex(of: real.forwardingMethod)!]
            lines.append("-a \(service) -r \(real.key) \(method) -w \(real.weight)")
        }
    }
    return lines.sorted()
}

private func ipvsadmService(_ key: VirtualServerKey) -> String {
    switch key {
    case .address(let transportProtocol, let address, let port):
        let flag = transportProtocol == .tcp ? "-t" : transportProtocol == .udp ? "-u" : "--sctp-service"
        return "\(flag) \(address.bracketedDescription):\(port)"
    case .firewallMark(let mark, let family):
        return family == .ipv4 ? "-f \(mark)" : "-f \(mark) -6"
    }
}
