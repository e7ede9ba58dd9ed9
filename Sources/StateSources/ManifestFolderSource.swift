import Foundation
import KubernetesModel
import Logging

/// Manifest files and folders, read again whenever a file changes (checked every `pollInterval`).
///
/// Each file is validated on its own. A file with any problem (a half-written file, a typo) keeps its last
/// good content in use, so one bad edit never takes down the Services of other files.
package struct ManifestFolderSource: ClusterSource {
    package let paths: [String]
    package let pollInterval: Duration
    package let logger: Logger

    package init(paths: [String], pollInterval: Duration = .milliseconds(200), logger: Logger) {
        self.paths = paths
        self.pollInterval = pollInterval
        self.logger = logger
    }

    package func run(update: @escaping @Sendable (ClusterUpdate) async -> Void) async throws {
        var fingerprints: [String: FileFingerprint] = [:]
        var goodContent: [String: ManifestSet] = [:]
        var previous: ManifestSet?
        while !Task.isCancelled {
            var ignored: [ManifestProblem] = []
            let files = ManifestLoader.manifestFiles(paths, problems: &ignored)
            let current = Dictionary(uniqueKeysWithValues: files.map { ($0, FileFingerprint(path: $0)) })
            if current != fingerprints || previous == nil {
                var problems: [ManifestProblem] = []
                for file in files where current[file] != fingerprints[file] || goodContent[file] == nil {
                    do {
                        goodContent[file] = try ManifestLoader.load(paths: [file])
                    } catch {
                        problems += error.problems
                        logger.error(
                            "manifest file has problems; its last good content stays in use",
                            metadata: [
                                "file": "\(file)", "problems": "\(error.problems.count)",
                                "first": "\(error.problems.first?.description ?? "")",
                            ])
                    }
                }
                for file in goodContent.keys where current[file] == nil { goodContent[file] = nil }
                fingerprints = current
                let snapshot = merge(files.compactMap { goodContent[$0] }, problems: &problems)
                let changes = SnapshotDifference.count(from: previous, to: snapshot)
                if previous == nil || changes.services + changes.endpoints + changes.nodes > 0 || !problems.isEmpty {
                    previous = snapshot
                    await update(
                        ClusterUpdate(
                            changes: [.everything(snapshot)], serviceChanges: changes.services,
                            endpointChanges: changes.endpoints,
                            problems: problems))
                }
            }
            try await Task.sleep(for: pollInterval)
        }
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
            merged.warnings += set.warnings
        }
        return merged
    }
}

/// What tells a changed file: its size and modification time.
struct FileFingerprint: Hashable {
    var size: Int64
    var modified: Double

    init(path: String) {
        var info = stat()
        if stat(path, &info) == 0 {
            size = Int64(info.st_size)
            modified = Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
        } else {
            size = -1
            modified = 0
        }
    }
}
