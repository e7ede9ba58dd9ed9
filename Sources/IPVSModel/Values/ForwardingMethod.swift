/// How IPVS forwards packets to a real server.
public struct ForwardingMethod: RawRepresentable, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// The kernel's `IP_VS_CONN_F_*` forwarding value.
    public let rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Network address translation. The corresponding C constant is `IP_VS_CONN_F_MASQ`.
    public static let masquerade = ForwardingMethod(rawValue: 0)
    /// Delivery to the local node. The corresponding C constant is `IP_VS_CONN_F_LOCALNODE`.
    public static let localNode = ForwardingMethod(rawValue: 1)
    /// IP-in-IP tunnelling. The corresponding C constant is `IP_VS_CONN_F_TUNNEL`.
    public static let tunnel = ForwardingMethod(rawValue: 2)
    /// Direct routing. The corresponding C constant is `IP_VS_CONN_F_DROUTE`.
    public static let directRoute = ForwardingMethod(rawValue: 3)
    /// Cache bypass. The corresponding C constant is `IP_VS_CONN_F_BYPASS`.
    public static let bypass = ForwardingMethod(rawValue: 4)

    public static let allCases: [ForwardingMethod] = [.masquerade, .localNode, .tunnel, .directRoute, .bypass]

    /// The name `ipvsadm -L` prints: `Masq`, `Local`, `Tunnel`, `Route`, `Bypass`.
    public var description: String {
        switch self {
        case .masquerade: "Masq"
        case .localNode: "Local"
        case .tunnel: "Tunnel"
        case .directRoute: "Route"
        case .bypass: "Bypass"
        default: "\(rawValue)"
        }
    }
}

/// Flags of a virtual server.
public struct ServiceFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Connections from one client stick to one real server. The corresponding C constant is `IP_VS_SVC_F_PERSISTENT`.
    public static let persistent = ServiceFlags(rawValue: 0x1)
    /// Set by the kernel on every service in its hash table. The corresponding C constant is `IP_VS_SVC_F_HASHED`.
    public static let hashed = ServiceFlags(rawValue: 0x2)
    /// Schedule each UDP datagram on its own. The corresponding C constant is `IP_VS_SVC_F_ONEPACKET`.
    public static let onePacket = ServiceFlags(rawValue: 0x4)
    /// Scheduler-specific flag 1 (`sh`/`mh`: fall back to another server). The C constant is `IP_VS_SVC_F_SCHED1`.
    public static let schedulerFlag1 = ServiceFlags(rawValue: 0x8)
    /// Scheduler-specific flag 2 (`sh`/`mh`: hash the port too). The C constant is `IP_VS_SVC_F_SCHED2`.
    public static let schedulerFlag2 = ServiceFlags(rawValue: 0x10)
    /// Scheduler-specific flag 3. The corresponding C constant is `IP_VS_SVC_F_SCHED3`.
    public static let schedulerFlag3 = ServiceFlags(rawValue: 0x20)

    /// The flags a user sets; the kernel adds ``hashed`` on its own.
    public var userSettable: ServiceFlags { subtracting(.hashed) }

    /// Flag names as `ipvsadm` shows them, in bit order.
    public var names: [String] {
        let named: [(ServiceFlags, String)] = [
            (.persistent, "persistent"), (.hashed, "hashed"), (.onePacket, "one-packet"),
            (.schedulerFlag1, "flag-1"), (.schedulerFlag2, "flag-2"), (.schedulerFlag3, "flag-3"),
        ]
        return named.filter { contains($0.0) }.map(\.1)
    }
}
