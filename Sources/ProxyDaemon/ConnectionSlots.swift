import Synchronization

/// The HTTP servers of the daemon, as the metrics' `endpoint` label names them.
package enum HTTPEndpointKind: String, CaseIterable, Sendable {
    /// `/healthz` and `/livez` (`--healthz-bind-address`).
    case healthz
    /// `/metrics`, `/proxyMode`, `/configz` (`--metrics-bind-address`).
    case metrics
    /// The health-check node ports of LoadBalancer Services with externalTrafficPolicy Local.
    case healthCheckNodePort = "health-check-node-port"
}

/// How many connections the HTTP servers hold open, and for how long.
package struct HTTPConnectionLimits: Sendable, Equatable {
    /// The most connections one server (one listening socket) holds at once. A probe or a scrape holds its
    /// connection for a few milliseconds, so even hundreds of load-balancer probers stay far below; past this a
    /// server refuses, so a flood of one port cannot take every slot of the process's budget by itself.
    package static let defaultMaximumPerServer = 1024
    /// How long a connection may stay open from its accept: sending its request, and taking the answer.
    /// Kubelet's and load balancers' probes send their request at once and time out within seconds themselves.
    package static let defaultRequestTimeout = Duration.seconds(5)

    package var maximumPerServer = defaultMaximumPerServer
    package var requestTimeout = defaultRequestTimeout

    package init(maximumPerServer: Int = defaultMaximumPerServer, requestTimeout: Duration = defaultRequestTimeout) {
        self.maximumPerServer = maximumPerServer
        self.requestTimeout = requestTimeout
    }
}

/// A count of slots under a limit, taken and given back from any thread: one server's connections, or the
/// descriptors every HTTP server of the process holds together.
package final class ConnectionSlots: Sendable {
    /// The most slots `take()` hands out.
    package let limit: Int
    private let used = Atomic<Int>(0)

    package init(limit: Int) {
        self.limit = limit
    }

    /// Slots without a limit, for servers run alone (tests).
    package static var unlimited: ConnectionSlots { ConnectionSlots(limit: .max) }

    /// The slots taken now.
    package var inUse: Int { used.load(ordering: .relaxed) }

    /// Takes a slot, unless all `limit` are taken.
    func take() -> Bool {
        var current = used.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = used.compareExchange(
                expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    /// Takes a slot whatever is taken already: for a listening socket, which the daemon needs open whatever the
    /// connections hold, and which leaves that much less room for them.
    func takeAlways() {
        used.add(1, ordering: .relaxed)
    }

    /// Gives a slot back.
    func give() {
        used.subtract(1, ordering: .relaxed)
    }
}

extension ConnectionSlots {
    /// Descriptors kept back for what a sync and the sources open while they run, on top of what the process
    /// holds when the budget is made: the API client's connections (at most 8 to the API server, AsyncHTTPClient's
    /// default, plus name resolution), the token and CA files read again, the manifest folder's walk (a
    /// descriptor per folder level and the file being read), the ownership record's read and temporary file,
    /// nftables' and conntrack's netlink sockets, the lazily made descriptors of NIO and Dispatch. That comes to
    /// about 30; four times as much leaves room for what was not foreseen.
    package static let syncReserve = 128

    /// The process-wide budget of the HTTP servers: the descriptor soft limit, less the descriptors open now
    /// (netlink sockets, the state lock, NIO's event loops, ...) and `reserve`. Listening sockets opened later
    /// take their slots from it too (``takeAlways()``), so that connections never take the process to its limit.
    package static func processBudget(softLimit: UInt64, openNow: Int, reserve: Int = syncReserve)
        -> ConnectionSlots
    {
        let soft = Int(clamping: softLimit)
        return ConnectionSlots(limit: max(0, soft - openNow - reserve))
    }
}
