import IPVSModel

/// What a sync did, or (in a dry run) would do: each part's report, merged. Each part's file names its own report
/// (`report.table`, `report.addresses`, ...).
package struct SyncReport: Sendable {
    package var dryRun: Bool
    /// How many times the parts were planned (more than once after races with other writers).
    package var attempts = 0
    /// Whether the last plan looked at everything, or only at what a change touched (``SyncScope``).
    package var lookedAtEverything = true
    /// How long each phase took, in order.
    package var timings: [(phase: String, duration: Duration)] = []
    /// Each part's report, and the parts in the order their reports are told.
    private var reports = PartValues()
    private var failuresInOrder: [@Sendable (PartValues) -> [String]] = []
    private var resultsInOrder: [@Sendable (PartValues) -> [(kind: String, succeeded: Int, refused: Int)]] = []

    package init(dryRun: Bool) {
        self.dryRun = dryRun
    }

    /// The report of a part (an empty one when the sync had no such part).
    package subscript<Part: KernelPart>(part: Part.Type) -> Part.Report {
        reports.get(part) ?? Part.Report()
    }

    /// Makes room for a part's report, so that it is told in the parts' order.
    mutating func include<Part: KernelPart>(_ part: Part.Type) {
        guard reports.get(part, as: Part.Report.self) == nil else { return }
        reports.set(Part.Report(), for: part)
        failuresInOrder.append { $0.get(part, as: Part.Report.self)?.failureDescriptions ?? [] }
        resultsInOrder.append { $0.get(part, as: Part.Report.self)?.operationResults ?? [] }
    }

    /// Changes a part's report in place.
    mutating func modify<Part: KernelPart, Result>(
        _ part: Part.Type, _ body: (inout Part.Report) throws -> Result
    ) rethrows -> Result {
        try reports.modify(part, initial: Part.Report(), body)
    }

    /// Whether the kernel refused anything that the sync could not resolve.
    package var hasFailures: Bool { !failureDescriptions.isEmpty }

    /// Every refusal that stands, in words, part by part.
    package var failureDescriptions: [String] { failuresInOrder.flatMap { $0(reports) } }

    /// Every kernel operation sent, by kind, with how many the kernel accepted and refused.
    package var operationResults: [(kind: String, succeeded: Int, refused: Int)] {
        resultsInOrder.flatMap { $0(reports) }.filter { $0.succeeded + $0.refused > 0 }.sorted { $0.kind < $1.kind }
    }
}

/// Measures how long each phase of a sync takes.
struct Stopwatch {
    private(set) var timings: [(phase: String, duration: Duration)] = []

    /// Runs `body`, timed as `phase` when it has a name.
    mutating func time<Result>(_ phase: String?, _ body: () throws -> Result) rethrows -> Result {
        guard let phase else { return try body() }
        let start = ContinuousClock.now
        defer { timings.append((phase, ContinuousClock.now - start)) }
        return try body()
    }
}
