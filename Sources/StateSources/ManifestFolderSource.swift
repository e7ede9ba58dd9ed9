import Foundation
import KubernetesModel
import Logging

/// Manifest files and folders, read again whenever a file changes (checked every `pollInterval`).
///
/// Each file is validated on its own. A file with any problem (a typo, a half-written file) keeps its last good
/// content in use, so one bad edit never takes down the Services of other files. A read that fails (a path that is
/// missing, a folder or file that cannot be opened or read) delivers nothing: the last good view stays, the source
/// says it is stale, and the next poll reads again. Until every file has been read and found good once, nothing is
/// delivered at all, so that a restart never removes what an earlier process made for a file it cannot read yet.
package struct ManifestFolderSource: ClusterSource {
    package let paths: [String]
    package let pollInterval: Duration
    package let logger: Logger
    package let reader: any ManifestReader

    package init(
        paths: [String], pollInterval: Duration = .milliseconds(200), logger: Logger,
        reader: any ManifestReader = FileSystemManifestReader()
    ) {
        self.paths = paths
        self.pollInterval = pollInterval
        self.logger = logger
        self.reader = reader
    }

    package func run(
        update: @escaping @Sendable (ClusterUpdate) async -> Void,
        condition: @escaping @Sendable (SourceCondition) -> Void
    ) async throws {
        var view = ManifestFolderView(paths: paths, reader: reader)
        var reported: SourceCondition?
        while !Task.isCancelled {
            let poll = view.poll()
            for (file, problems) in poll.newProblems {
                logger.error(
                    view.hasPublished
                        ? "manifest file has problems; its last good content stays in use"
                        : "manifest file has problems; nothing is applied until every file reads and is valid",
                    metadata: [
                        "file": "\(file)", "problems": "\(problems.count)",
                        "first": "\(problems.first?.description ?? "")",
                    ])
            }
            // A failed read is reported at every poll (each is a read that failed); a current view once.
            if poll.condition != .current || reported != .current { condition(poll.condition) }
            reported = poll.condition
            if let ready = poll.update { await update(ready) }
            try await Task.sleep(for: pollInterval)
        }
    }
}

/// The folder source's view of its files, advanced one poll at a time: what each file last held when it was good,
/// and what was handed out. Pure but for its reader.
struct ManifestFolderView {
    /// One file as last read.
    private struct KnownFile {
        var fingerprint: FileFingerprint
        /// Its last good content; `nil` until it reads without problems.
        var good: ManifestSet?
    }

    /// What one poll found.
    struct Poll {
        /// The update to hand out, if the view changed and every read succeeded.
        var update: ClusterUpdate?
        var condition: SourceCondition
        /// Files read in this poll that have problems, with them.
        var newProblems: [(file: String, problems: [ManifestProblem])] = []
    }

    let paths: [String]
    let reader: any ManifestReader
    private var known: [String: KnownFile] = [:]
    /// What was last handed out; `nil` before the first update.
    private var published: ManifestSet?
    /// A file was read, added or removed since the last update.
    private var dirty = true

    init(paths: [String], reader: any ManifestReader) {
        self.paths = paths
        self.reader = reader
    }

    var hasPublished: Bool { published != nil }

    mutating func poll() -> Poll {
        let (files, listing) = reader.files(under: paths)
        if let failure = listing.first(where: \.isReadFailure) {
            return Poll(condition: .stale(failure.description))
        }
        var poll = Poll(condition: .current)
        var problems: [ManifestProblem] = []
        for file in files {
            let fingerprint: FileFingerprint
            do {
                fingerprint = try reader.fingerprint(of: file)
            } catch {
                return Poll(condition: .stale(error.description), newProblems: poll.newProblems)
            }
            guard known[file]?.fingerprint != fingerprint else { continue }
            do {
                let content = try reader.load(file)
                known[file] = KnownFile(fingerprint: fingerprint, good: content)
            } catch {
                if let failure = error.problems.first(where: \.isReadFailure) {
                    // Not recorded as read: the next poll reads it again.
                    return Poll(condition: .stale(failure.description), newProblems: poll.newProblems)
                }
                known[file] = KnownFile(fingerprint: fingerprint, good: known[file]?.good)
                problems += error.problems
                poll.newProblems.append((file, error.problems))
            }
            dirty = true
        }
        let listed = Set(files)
        for file in known.keys where !listed.contains(file) {
            known[file] = nil
            dirty = true
        }
        if published == nil, let waiting = files.first(where: { known[$0]?.good == nil }) {
            poll.condition = .stale("\(waiting): has problems, and no good content yet")
            return poll
        }
        guard dirty || !problems.isEmpty else { return poll }
        dirty = false
        let snapshot = merge(files.compactMap { known[$0]?.good }, problems: &problems)
        let changes = SnapshotDifference.count(from: published, to: snapshot)
        if published == nil || changes.services + changes.endpoints + changes.nodes + changes.serviceCIDRs > 0
            || !problems.isEmpty
        {
            published = snapshot
            poll.update = ClusterUpdate(
                changes: [.everything(snapshot)], serviceChanges: changes.services,
                endpointChanges: changes.endpoints, serviceCIDRChanges: changes.serviceCIDRs, problems: problems)
        }
        return poll
    }

    /// Joins the files' objects; an object defined in two files keeps the first file's version.
    private func merge(_ sets: [ManifestSet], problems: inout [ManifestProblem]) -> ManifestSet {
        // One file's objects are unique already (loading checks that): share them rather than copy.
        if sets.count == 1 { return sets[0] }
        var merged = ManifestSet()
        var services: [ObjectName: ObjectLocation] = [:]
        var slices: [ObjectName: ObjectLocation] = [:]
        var endpoints: [ObjectName: ObjectLocation] = [:]
        var nodes: [ObjectName: ObjectLocation] = [:]
        var serviceCIDRs: [ObjectName: ObjectLocation] = [:]
        func keep<Object>(_ located: Located<Object>, _ name: ObjectName, in seen: inout [ObjectName: ObjectLocation])
            -> Bool
        {
            if let first = seen[name] {
                problems.append(ManifestProblem(at: located.location, "defined twice; also at \(first); ignored"))
                return false
            }
            seen[name] = located.location
            return true
        }
        for set in sets {
            merged.services += set.services.filter { keep($0, $0.object.metadata.objectName, in: &services) }
            merged.endpointSlices += set.endpointSlices.filter { keep($0, $0.object.metadata.objectName, in: &slices) }
            merged.endpoints += set.endpoints.filter { keep($0, $0.object.metadata.objectName, in: &endpoints) }
            merged.nodes += set.nodes.filter { keep($0, $0.object.metadata.objectName, in: &nodes) }
            // Carried along, unused yet: the service ranges' routes will come from them (issue 23).
            merged.serviceCIDRs += set.serviceCIDRs.filter {
                keep($0, $0.object.metadata.objectName, in: &serviceCIDRs)
            }
            merged.warnings += set.warnings
        }
        return merged
    }
}
