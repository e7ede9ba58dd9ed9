/// An IPVS scheduling algorithm, named as the kernel names it.
public struct Scheduler: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// The kernel's name for the scheduler (`rr`, `wlc`, ...).
    public let rawValue: String

    /// Wraps a name the kernel reported, without validation. Use ``init(validating:)`` for input.
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Accepts only the names of schedulers the Linux kernel has (``known``).
    /// - Throws: ``UnknownSchedulerError`` listing the valid names.
    public init(validating name: String) throws(UnknownSchedulerError) {
        guard let scheduler = Self.known.first(where: { $0.rawValue == name }) else {
            throw UnknownSchedulerError(name: name)
        }
        self = scheduler
    }

    /// Round robin.
    public static let roundRobin = Scheduler(rawValue: "rr")
    /// Weighted round robin.
    public static let weightedRoundRobin = Scheduler(rawValue: "wrr")
    /// Least connection.
    public static let leastConnection = Scheduler(rawValue: "lc")
    /// Weighted least connection (the kernel's default).
    public static let weightedLeastConnection = Scheduler(rawValue: "wlc")
    /// Locality-based least connection.
    public static let localityBasedLeastConnection = Scheduler(rawValue: "lblc")
    /// Locality-based least connection with replication.
    public static let localityBasedLeastConnectionWithReplication = Scheduler(rawValue: "lblcr")
    /// Destination hashing.
    public static let destinationHashing = Scheduler(rawValue: "dh")
    /// Source hashing.
    public static let sourceHashing = Scheduler(rawValue: "sh")
    /// Shortest expected delay.
    public static let shortestExpectedDelay = Scheduler(rawValue: "sed")
    /// Never queue.
    public static let neverQueue = Scheduler(rawValue: "nq")
    /// Weighted failover.
    public static let weightedFailover = Scheduler(rawValue: "fo")
    /// Weighted overflow.
    public static let weightedOverflow = Scheduler(rawValue: "ovf")
    /// Maglev hashing.
    public static let maglevHashing = Scheduler(rawValue: "mh")
    /// Weighted random twos choice (Linux 6.2 and later).
    public static let weightedRandomTwosChoice = Scheduler(rawValue: "twos")

    /// Every scheduler the Linux kernel provides; whether a running kernel has its module is another matter.
    public static let known: [Scheduler] = [
        .roundRobin, .weightedRoundRobin, .leastConnection, .weightedLeastConnection,
        .localityBasedLeastConnection, .localityBasedLeastConnectionWithReplication, .destinationHashing,
        .sourceHashing, .shortestExpectedDelay, .neverQueue, .weightedFailover, .weightedOverflow,
        .maglevHashing, .weightedRandomTwosChoice,
    ]

    /// The kernel module that implements this scheduler.
    public var moduleName: String { "ip_vs_\(rawValue)" }

    public var description: String { rawValue }
}

/// A scheduler name that no Linux kernel provides.
public struct UnknownSchedulerError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The name that was given.
    public let name: String

    public var description: String {
        "unknown IPVS scheduler '\(name)'; valid schedulers: \(Scheduler.known.map(\.rawValue).joined(separator: ", "))"
    }
}
