import IPVSModel

/// What a sync did, or (in a dry run) would do: each part's report, merged.
package struct SyncReport: Sendable {
    package var dryRun: Bool
    /// The IPVS table's operations, refusals, blocked keys, draining real servers and reads.
    package var table = IPVSTablePart.Report()
    /// The service addresses bound and unbound, and the refusals.
    package var addresses = ServiceAddressPart.Report()
    /// The nftables transactions and their element changes.
    package var nftables = NFTablesPart.Report()
    /// The stale UDP and SCTP flows deleted.
    package var flows = ConntrackPart.Report()
    /// How many times the parts were planned (more than once after races with other writers).
    package var attempts = 0
    /// How long each phase took, in order.
    package var timings: [(phase: String, duration: Duration)] = []

    package init(dryRun: Bool) {
        self.dryRun = dryRun
    }

    /// Whether the kernel refused anything that the sync could not resolve.
    package var hasFailures: Bool {
        !table.failures.isEmpty || !addresses.failures.isEmpty || !nftables.failures.isEmpty || !flows.failures.isEmpty
    }

    /// Every refusal that stands, in words.
    package var failureDescriptions: [String] {
        table.failures.map(\.error.description) + addresses.failures.map(\.error.description)
            + nftables.failures.map(\.description) + flows.failures.map(\.description)
    }

    /// IPVS operations and address changes sent (the nftables half counts its set elements on its own).
    package var writeOperations: Int { table.operations.count + addresses.bound.count + addresses.unbound.count }

    /// Every kernel operation sent, by kind, with how many the kernel accepted and refused.
    package var operationResults: [(kind: String, succeeded: Int, refused: Int)] {
        var results: [String: (succeeded: Int, refused: Int)] = [:]
        let refusedIndexes = Set(table.refused.map(\.index))
        for (index, operation) in table.operations.enumerated() {
            if refusedIndexes.contains(index) {
                results[operation.kind.rawValue, default: (0, 0)].refused += 1
            } else {
                results[operation.kind.rawValue, default: (0, 0)].succeeded += 1
            }
        }
        let addressCounts = addresses.counts
        results["bind-address"] = (addressCounts.bound, addressCounts.refusedBinds)
        results["unbind-address"] = (addressCounts.unbound, addressCounts.refusedUnbinds)
        return results.map { (kind: $0.key, succeeded: $0.value.succeeded, refused: $0.value.refused) }
            .filter { $0.succeeded + $0.refused > 0 }
            .sorted { $0.kind < $1.kind }
    }

}

/// Measures how long each phase of a sync takes.
struct Stopwatch {
    private(set) var timings: [(phase: String, duration: Duration)] = []

    mutating func time<Result>(_ phase: String, _ body: () throws -> Result) rethrows -> Result {
        let start = ContinuousClock.now
        defer { timings.append((phase, ContinuousClock.now - start)) }
        return try body()
    }
}
