/// What identifies a real server within its virtual server.
public struct RealServerKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(_ address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    /// `10.0.0.1:80` or `[fd00::1]:80`.
    public var description: String { "\(address.bracketedDescription):\(port)" }

    public static func < (lhs: RealServerKey, rhs: RealServerKey) -> Bool {
        (lhs.address, lhs.port) < (rhs.address, rhs.port)
    }
}

/// A real server: a backend that a virtual server forwards to.
public struct RealServer: Sendable, Hashable {
    public var address: IPAddress
    public var port: UInt16
    /// The scheduling weight; 0 takes the server out of scheduling while its connections live on.
    public var weight: Int32
    public var forwardingMethod: ForwardingMethod
    /// Connection limits; 0 means none.
    public var upperThreshold: UInt32
    public var lowerThreshold: UInt32

    public init(
        _ address: IPAddress,
        port: UInt16,
        weight: Int32 = 1,
        forwardingMethod: ForwardingMethod = .masquerade,
        upperThreshold: UInt32 = 0,
        lowerThreshold: UInt32 = 0
    ) {
        self.address = address
        self.port = port
        self.weight = weight
        self.forwardingMethod = forwardingMethod
        self.upperThreshold = upperThreshold
        self.lowerThreshold = lowerThreshold
    }

    public var key: RealServerKey { RealServerKey(address, port: port) }
}

/// A real server as the kernel reports it, with its connection counts.
public struct RealServerState: Sendable, Hashable {
    public var server: RealServer
    public var activeConnections: UInt32
    public var inactiveConnections: UInt32
    public var persistentConnections: UInt32
    public var statistics: Statistics {
        get { storedStatistics.statistics }
        set { storedStatistics = StoredStatistics(newValue) }
    }
    private var storedStatistics: StoredStatistics

    public init(
        server: RealServer,
        activeConnections: UInt32 = 0,
        inactiveConnections: UInt32 = 0,
        persistentConnections: UInt32 = 0,
        statistics: Statistics = Statistics()
    ) {
        self.server = server
        self.activeConnections = activeConnections
        self.inactiveConnections = inactiveConnections
        self.persistentConnections = persistentConnections
        self.storedStatistics = StoredStatistics(statistics)
    }

    /// Whether any connection still uses this server.
    public var hasConnections: Bool { activeConnections > 0 || inactiveConnections > 0 }
}

/// Traffic counters and rates of a virtual or real server.
public struct Statistics: Sendable, Hashable {
    public var connections: UInt64 = 0
    public var incomingPackets: UInt64 = 0
    public var outgoingPackets: UInt64 = 0
    public var incomingBytes: UInt64 = 0
    public var outgoingBytes: UInt64 = 0
    /// Connections per second.
    public var connectionRate: UInt64 = 0
    public var incomingPacketRate: UInt64 = 0
    public var outgoingPacketRate: UInt64 = 0
    public var incomingByteRate: UInt64 = 0
    public var outgoingByteRate: UInt64 = 0

    public init() {}
}

/// Statistics kept out of line, and not at all while they are zero: a sync remembers 100,000 real servers at
/// 10,000 Services, and their counters (80 bytes each) were most of that memory, though planning never reads them.
struct StoredStatistics: Sendable, Hashable {
    private final class Box: Sendable {
        let statistics: Statistics
        init(_ statistics: Statistics) { self.statistics = statistics }
    }

    private let box: Box?

    init(_ statistics: Statistics) {
        box = statistics == Statistics() ? nil : Box(statistics)
    }

    var statistics: Statistics { box?.statistics ?? Statistics() }

    static func == (lhs: StoredStatistics, rhs: StoredStatistics) -> Bool { lhs.statistics == rhs.statistics }

    func hash(into hasher: inout Hasher) { hasher.combine(statistics) }
}
