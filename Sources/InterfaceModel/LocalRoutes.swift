import InternetAddress
import KernelErrors

/// Who made a route: the kernel's `rtm_protocol` (`ip route ... proto N`), which it keeps with the route and does not
/// interpret above `static` (4).
public struct RouteProtocol: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt8

    public init(rawValue: UInt8) {
        self.rawValue = rawValue
    }

    /// The kernel made the route (an address's own route). The corresponding C constant is `RTPROT_KERNEL`.
    public static let kernel = RouteProtocol(rawValue: 2)
    /// Made at boot, the default of `ip route add`. The corresponding C constant is `RTPROT_BOOT`.
    public static let boot = RouteProtocol(rawValue: 3)
    /// Made by an administrator. The corresponding C constant is `RTPROT_STATIC`.
    public static let `static` = RouteProtocol(rawValue: 4)

    /// ipvs-proxy's own number, on every route it makes, so that its routes are known as its own without its state
    /// folder (`cleanup` finds them by it): 166, which neither the kernel (`RTPROT_*`), iproute2's `rt_protos` nor
    /// FRR uses. Docs/architecture.md, "Routes of the local table", says why this number.
    public static let ipvsProxy = RouteProtocol(rawValue: 166)

    public var description: String {
        switch self {
        case .kernel: "kernel"
        case .boot: "boot"
        case .static: "static"
        case .ipvsProxy: "ipvs-proxy (\(rawValue))"
        default: "\(rawValue)"
        }
    }
}

/// A route of type `local` in the kernel's `local` table, scope host, on one link: every address of its network is
/// the node's own (IPVS sees packets to it), though no link holds the address.
public struct LocalRoute: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The addresses the route makes local: a service range, or one address (`/32`, `/128`).
    public var network: IPNetwork
    /// The link the route names (the dummy link).
    public var linkIndex: Int32
    /// Who made it.
    public var routeProtocol: RouteProtocol

    public init(network: IPNetwork, linkIndex: Int32, routeProtocol: RouteProtocol = .ipvsProxy) {
        self.network = network
        self.linkIndex = linkIndex
        self.routeProtocol = routeProtocol
    }

    public var description: String { "local \(network) on link \(linkIndex) proto \(routeProtocol)" }

    public static func < (lhs: LocalRoute, rhs: LocalRoute) -> Bool {
        (lhs.network, lhs.linkIndex, lhs.routeProtocol.rawValue)
            < (rhs.network, rhs.linkIndex, rhs.routeProtocol.rawValue)
    }
}

/// A route of the kernel's `local` table as a dump reports it: any type, protocol and link (the kernel's own routes
/// for bound addresses, broadcast routes, others' routes, and local routes such as ``LocalRoute``).
public struct TableRoute: Sendable, Hashable, CustomStringConvertible {
    /// The route's type. The corresponding C constants are `RTN_*`.
    public struct Kind: RawRepresentable, Sendable, Hashable {
        public var rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }

        /// `RTN_UNICAST`.
        public static let unicast = Kind(rawValue: 1)
        /// `RTN_LOCAL`: the covered addresses are the node's own.
        public static let local = Kind(rawValue: 2)
        /// `RTN_BROADCAST`.
        public static let broadcast = Kind(rawValue: 3)
        /// `RTN_MULTICAST`.
        public static let multicast = Kind(rawValue: 5)
    }

    public var network: IPNetwork
    public var kind: Kind
    public var routeProtocol: RouteProtocol
    /// `RT_SCOPE_*` (host 254, link 253, universe 0).
    public var scope: UInt8
    /// The routing table (the local table is 255).
    public var table: UInt32
    /// The output link, 0 when the route names none.
    public var linkIndex: Int32

    public init(
        network: IPNetwork, kind: Kind, routeProtocol: RouteProtocol, scope: UInt8, table: UInt32, linkIndex: Int32
    ) {
        self.network = network
        self.kind = kind
        self.routeProtocol = routeProtocol
        self.scope = scope
        self.table = table
        self.linkIndex = linkIndex
    }

    /// The route as a ``LocalRoute`` when it is one (type local), else `nil`.
    public var localRoute: LocalRoute? {
        kind == .local ? LocalRoute(network: network, linkIndex: linkIndex, routeProtocol: routeProtocol) : nil
    }

    public var description: String {
        "type \(kind.rawValue) \(network) on link \(linkIndex) table \(table) proto \(routeProtocol) scope \(scope)"
    }
}

/// A local route to add or delete.
public enum RouteChange: Sendable, Hashable, CustomStringConvertible {
    case add(LocalRoute)
    case delete(LocalRoute)

    public var route: LocalRoute {
        switch self {
        case .add(let route), .delete(let route): route
        }
    }

    public var description: String {
        switch self {
        case .add(let route): "add \(route)"
        case .delete(let route): "delete \(route)"
        }
    }
}

/// A route change that the kernel refused.
public struct RouteChangeFailure: Sendable, Hashable, CustomStringConvertible {
    public let index: Int
    public let change: RouteChange
    public let error: KernelCallError

    public init(index: Int, change: RouteChange, error: KernelCallError) {
        self.index = index
        self.change = change
        self.error = error
    }

    public var description: String { "change \(index): \(error)" }
}
