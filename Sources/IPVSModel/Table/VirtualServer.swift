/// What identifies a virtual server in the kernel's table.
public enum VirtualServerKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// A service at an address and port for one transport protocol.
    case address(TransportProtocol, IPAddress, port: UInt16)
    /// A service for packets carrying a firewall mark.
    case firewallMark(UInt32, family: AddressFamily)

    /// The address family of the service.
    public var family: AddressFamily {
        switch self {
        case .address(_, let address, _): address.family
        case .firewallMark(_, let family): family
        }
    }

    /// The service's address, or `nil` for a firewall-mark service.
    public var address: IPAddress? {
        if case .address(_, let address, _) = self { address } else { nil }
    }

    /// The transport protocol, or `nil` for a firewall-mark service (which matches every protocol).
    public var transportProtocol: TransportProtocol? {
        if case .address(let transportProtocol, _, _) = self { transportProtocol } else { nil }
    }

    /// Written as `ipvsadm -Ln` writes it: `TCP 10.0.0.1:80`, `UDP [fd00::1]:53`, `FWM 7 IPv6`.
    public var description: String {
        switch self {
        case .address(let transportProtocol, let address, let port):
            "\(transportProtocol) \(address.bracketedDescription):\(port)"
        case .firewallMark(let mark, let family):
            family == .ipv4 ? "FWM \(mark)" : "FWM \(mark) IPv6"
        }
    }

    public static func < (lhs: VirtualServerKey, rhs: VirtualServerKey) -> Bool {
        switch (lhs, rhs) {
        case (.address(let lp, let la, let lport), .address(let rp, let ra, let rport)):
            (la, lport, lp.rawValue) < (ra, rport, rp.rawValue)
        case (.firewallMark(let lm, let lf), .firewallMark(let rm, let rf)):
            (lm, lf == .ipv4 ? 0 : 1) < (rm, rf == .ipv4 ? 0 : 1)
        case (.address, .firewallMark): true
        case (.firewallMark, .address): false
        }
    }
}

/// A virtual server: what the kernel balances, and how.
public struct VirtualServer: Sendable, Hashable {
    /// What identifies the virtual server.
    public var key: VirtualServerKey
    /// The scheduling algorithm.
    public var scheduler: Scheduler
    /// Service flags; the kernel adds ``ServiceFlags/hashed`` to every service it holds.
    public var flags: ServiceFlags
    /// How long, in seconds, a client sticks to its real server when ``ServiceFlags/persistent`` is set.
    public var persistenceTimeout: UInt32
    /// The client address mask for persistence: an IPv4 netmask value (`0xFFFFFFFF` for /32) or an IPv6
    /// prefix length (128).
    public var persistenceNetmask: UInt32

    /// Creates a virtual server.
    /// - Parameter persistenceTimeout: Seconds; a nonzero value also sets ``ServiceFlags/persistent``.
    public init(
        _ key: VirtualServerKey,
        scheduler: Scheduler = .roundRobin,
        flags: ServiceFlags = [],
        persistenceTimeout: UInt32 = 0,
        persistenceNetmask: UInt32? = nil
    ) {
        self.key = key
        self.scheduler = scheduler
        self.flags = persistenceTimeout > 0 ? flags.union(.persistent) : flags
        self.persistenceTimeout = persistenceTimeout
        self.persistenceNetmask = persistenceNetmask ?? Self.hostNetmask(for: key.family)
    }

    /// The netmask that makes persistence per client address: /32 for IPv4, /128 for IPv6.
    public static func hostNetmask(for family: AddressFamily) -> UInt32 {
        family == .ipv4 ? 0xFFFF_FFFF : 128
    }

    /// Whether two virtual servers are configured the same, ignoring flags only the kernel sets.
    public func hasSameSettings(as other: VirtualServer) -> Bool {
        key == other.key && scheduler == other.scheduler && flags.userSettable == other.flags.userSettable
            && persistenceNetmask == other.persistenceNetmask
            && (flags.contains(.persistent) ? persistenceTimeout == other.persistenceTimeout : true)
    }
}

/// A virtual server as the kernel reports it, with counters and, when asked for, its real servers.
public struct VirtualServerState: Sendable, Hashable {
    public var server: VirtualServer
    public var statistics: Statistics {
        get { storedStatistics.statistics }
        set { storedStatistics = StoredStatistics(newValue) }
    }
    private var storedStatistics: StoredStatistics
    public var realServers: [RealServerState]

    public init(server: VirtualServer, statistics: Statistics = Statistics(), realServers: [RealServerState] = []) {
        self.server = server
        self.storedStatistics = StoredStatistics(statistics)
        self.realServers = realServers
    }
}

extension VirtualServerKey: LosslessStringConvertible {
    /// Parses what ``description`` writes: `TCP 10.0.0.1:80`, `UDP [fd00::1]:53`, `FWM 7`, `FWM 7 IPv6`.
    public init?(_ text: String) {
        let words = text.split(separator: " ")
        if words.first == "FWM" {
            guard words.count == 2 || (words.count == 3 && words[2] == "IPv6"), let mark = UInt32(words[1]), mark != 0
            else { return nil }
            self = .firewallMark(mark, family: words.count == 3 ? .ipv6 : .ipv4)
            return
        }
        guard words.count == 2, let transportProtocol = TransportProtocol(name: String(words[0])),
            let colon = words[1].lastIndex(of: ":"), let port = UInt16(words[1][words[1].index(after: colon)...])
        else { return nil }
        var host = words[1][..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard let address = IPAddress(String(host)) else { return nil }
        self = .address(transportProtocol, address, port: port)
    }
}
