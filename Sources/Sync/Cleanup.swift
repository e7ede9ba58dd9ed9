extension Syncer {
    /// What a cleanup removed, or would remove: each part's removal. Each part's file names what it tells
    /// (`report.deletedVirtualServers`, ...).
    package struct CleanupReport: Sendable {
        private var removals = PartValues()
        private var failuresInOrder: [@Sendable (PartValues) -> [String]] = []

        /// The removal of a part (an empty one when the syncer has no such part).
        package subscript<Part: KernelPart>(part: Part.Type) -> Part.Removal {
            removals.get(part) ?? Part.Removal()
        }

        mutating func set<Part: KernelPart>(_ removal: Part.Removal, of part: Part.Type) {
            if removals.get(part, as: Part.Removal.self) == nil {
                failuresInOrder.append { $0.get(part, as: Part.Removal.self)?.failureDescriptions ?? [] }
            }
            removals.set(removal, for: part)
        }

        /// Every refusal, in words, part by part.
        package var failureDescriptions: [String] { failuresInOrder.flatMap { $0(removals) } }
    }

    /// Removes everything ipvs-proxy owns, part by part, and nothing else: every part first says what it would
    /// remove (so that a read that fails changes nothing), then each removes it.
    package func cleanup(dryRun: Bool = false) throws -> CleanupReport {
        try locked.withLock { locked in
            locked.memory = nil
            var owned = try locked.ownership.current()
            var report = CleanupReport()
            for part in parts { try readRemoval(part, owned: owned, into: &report) }
            guard !dryRun else { return report }
            for part in parts { try remove(part, owned: &owned, report: &report) }
            if owned.isEmpty {
                try locked.ownership.remove()
            } else {
                try locked.ownership.record(owned)
            }
            return report
        }
    }

    private func readRemoval<Part: KernelPart>(
        _ part: Part, owned: OwnershipRecord, into report: inout CleanupReport
    ) throws {
        report.set(try part.removal(owned: owned), of: Part.self)
    }

    private func remove<Part: KernelPart>(
        _ part: Part, owned: inout OwnershipRecord, report: inout CleanupReport
    ) throws {
        var removal = report[Part.self]
        try part.remove(&removal, owned: &owned)
        report.set(removal, of: Part.self)
    }
}
