import Foundation
import KubernetesModel
import Logging
import Synchronization
import TestSupport
import Testing

@testable import StateSources

/// The file system as it is, but for the faults a test puts in: a listing, a look at a file, or a read that fails
/// with `EMFILE`, as when the process has run out of descriptors.
private final class FaultyReader: ManifestReader {
    private struct Faults {
        var listing = false
        var fingerprints: Set<String> = []
        var reads: Set<String> = []
    }
    private let faults = Mutex(Faults())
    private let real = FileSystemManifestReader()

    func failListing(_ fail: Bool) { faults.withLock { $0.listing = fail } }
    func failFingerprint(of file: String, _ fail: Bool) {
        faults.withLock { if fail { $0.fingerprints.insert(file) } else { $0.fingerprints.remove(file) } }
    }
    func failReading(_ file: String, _ fail: Bool) {
        faults.withLock { if fail { $0.reads.insert(file) } else { $0.reads.remove(file) } }
    }

    func files(under paths: [String]) -> (files: [String], problems: [ManifestProblem]) {
        if faults.withLock({ $0.listing }) {
            return ([], [ManifestProblem.readFailure(paths[0], "cannot read this folder", errno: EMFILE)])
        }
        return real.files(under: paths)
    }

    func fingerprint(of file: String) throws(ManifestProblem) -> FileFingerprint {
        if faults.withLock({ $0.fingerprints.contains(file) }) {
            throw .readFailure(file, "cannot look at", errno: EMFILE)
        }
        return try real.fingerprint(of: file)
    }

    func load(_ file: String) throws(ManifestErrors) -> ManifestSet {
        if faults.withLock({ $0.reads.contains(file) }) {
            throw ManifestErrors([.readFailure(file, "cannot open", errno: EMFILE)])
        }
        return try real.load(file)
    }
}

private func manifest(_ name: String, clusterIP: String, endpoints: [String] = ["10.244.0.1"]) -> String {
    """
    apiVersion: v1
    kind: Service
    metadata: {name: \(name), namespace: lab}
    spec:
      clusterIP: \(clusterIP)
      ports: [{name: web, port: 80, protocol: TCP, targetPort: 8080}]
    ---
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: {name: \(name)-1, namespace: lab, labels: {kubernetes.io/service-name: \(name)}}
    addressType: IPv4
    ports: [{name: web, port: 8080, protocol: TCP}]
    endpoints:
    \(endpoints.map { "- {addresses: [\"\($0)\"], conditions: {ready: true}}" }.joined(separator: "\n"))

    """
}

@discardableResult
private func write(_ text: String, _ folder: String, _ name: String) throws -> String {
    let path = (folder as NSString).appendingPathComponent(name)
    // Written aside and renamed, so a poll never sees half a file unless a test means it to.
    try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    return path
}

/// The Services an update hands out, by name, and each one's endpoint count.
private func services(_ update: ClusterUpdate?) -> [String: Int]? {
    guard let update, case .everything(let set) = update.changes.first else { return nil }
    var result: [String: Int] = [:]
    for service in set.services {
        let name = service.object.metadata.name ?? ""
        result[name] = set.endpointSlices.filter { $0.object.serviceName == name }
            .reduce(0) { $0 + ($1.object.endpoints?.count ?? 0) }
    }
    return result
}

/// A ServiceCIDR named `name` over `cidrs`, as YAML.
private func serviceCIDR(_ cidrs: String..., name: String = "kubernetes") -> String {
    "apiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\nmetadata: {name: \(name)}\n"
        + "spec: {cidrs: [\(cidrs.map { "\"\($0)\"" }.joined(separator: ", "))]}\n"
}

/// The ServiceCIDRs an update hands out, by name, and each one's ranges.
private func serviceCIDRs(_ update: ClusterUpdate?) -> [String: [String]]? {
    guard let update, case .everything(let set) = update.changes.first else { return nil }
    return Dictionary(
        set.serviceCIDRs.map { ($0.object.metadata.name ?? "", $0.object.spec?.cidrs ?? []) },
        uniquingKeysWith: { first, _ in first })
}

private func isStale(_ poll: ManifestFolderView.Poll, mentioning text: String) -> Bool {
    guard case .stale(let reason) = poll.condition else { return false }
    return reason.contains(text)
}

@Suite("The manifest folder source: a failed read is never an empty one", .timeLimit(.minutes(2)))
struct ManifestFolderSourceTests {
    @Test func aFolderThatCannotBeListedKeepsTheLastGoodView() throws {
        try withTemporaryFolder("manifests") { folder in
            try write(manifest("web", clusterIP: "10.96.0.1"), folder, "web.yaml")
            let api = try write(manifest("api", clusterIP: "10.96.0.2"), folder, "api.yaml")
            let reader = FaultyReader()
            var view = ManifestFolderView(paths: [folder], reader: reader)
            #expect(services(view.poll().update) == ["web": 1, "api": 1])

            reader.failListing(true)
            try FileManager.default.removeItem(atPath: api)
            let failed = view.poll()
            #expect(failed.update == nil)
            #expect(isStale(failed, mentioning: "Too many open files"), "\(failed.condition)")

            reader.failListing(false)
            let recovered = view.poll()
            #expect(recovered.condition == .current)
            #expect(services(recovered.update) == ["web": 1], "the deletion made meanwhile arrives")
        }
    }

    /// A folder moved away (a deploy tool replacing it) is a read that fails, not an empty folder; a folder emptied
    /// on purpose does remove the Services.
    @Test func aMissingFolderIsNotAnEmptyOneButAnEmptiedFolderIs() throws {
        try withTemporaryFolder("manifests") { parent in
            let folder = (parent as NSString).appendingPathComponent("live")
            let away = (parent as NSString).appendingPathComponent("away")
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
            let web = try write(manifest("web", clusterIP: "10.96.0.1"), folder, "web.yaml")
            var view = ManifestFolderView(paths: [folder], reader: FileSystemManifestReader())
            #expect(services(view.poll().update) == ["web": 1])

            try FileManager.default.moveItem(atPath: folder, toPath: away)
            let moved = view.poll()
            #expect(moved.update == nil)
            #expect(isStale(moved, mentioning: "no such file or folder"), "\(moved.condition)")
            try FileManager.default.moveItem(atPath: away, toPath: folder)
            let back = view.poll()
            #expect(back.condition == .current)
            #expect(back.update == nil, "nothing changed")

            try FileManager.default.removeItem(atPath: web)
            let emptied = view.poll()
            #expect(emptied.condition == .current)
            #expect(services(emptied.update) == [:])
        }
    }

    @Test func aChangedFileThatCannotBeReadHoldsEveryChangeBackUntilItCan() throws {
        try withTemporaryFolder("manifests") { folder in
            let web = try write(manifest("web", clusterIP: "10.96.0.1"), folder, "web.yaml")
            try write(manifest("api", clusterIP: "10.96.0.2"), folder, "api.yaml")
            let reader = FaultyReader()
            var view = ManifestFolderView(paths: [folder], reader: reader)
            _ = view.poll()

            try write(
                manifest("web", clusterIP: "10.96.0.1", endpoints: ["10.244.0.1", "10.244.0.2"]), folder, "web.yaml")
            reader.failReading(web, true)
            let failed = view.poll()
            #expect(failed.update == nil)
            #expect(isStale(failed, mentioning: "web.yaml: cannot open: Too many open files"), "\(failed.condition)")
            #expect(view.poll().update == nil, "read again at every poll")

            reader.failReading(web, false)
            let recovered = view.poll()
            #expect(recovered.condition == .current)
            #expect(services(recovered.update) == ["web": 2, "api": 1])
        }
    }

    @Test func aFileThatCannotBeLookedAtIsAFailedRead() throws {
        try withTemporaryFolder("manifests") { folder in
            let web = try write(manifest("web", clusterIP: "10.96.0.1"), folder, "web.yaml")
            let reader = FaultyReader()
            var view = ManifestFolderView(paths: [folder], reader: reader)
            _ = view.poll()
            reader.failFingerprint(of: web, true)
            let failed = view.poll()
            #expect(failed.update == nil)
            #expect(isStale(failed, mentioning: "cannot look at"), "\(failed.condition)")
            reader.failFingerprint(of: web, false)
            #expect(view.poll().condition == .current)
        }
    }

    /// A restart must not remove what an earlier process made for a file it cannot read yet: nothing goes out
    /// until every file has been read.
    @Test func atStartNothingIsDeliveredUntilEveryFileReads() throws {
        try withTemporaryFolder("manifests") { folder in
            try write(manifest("web", clusterIP: "10.96.0.1"), folder, "web.yaml")
            let api = try write(manifest("api", clusterIP: "10.96.0.2"), folder, "api.yaml")
            let reader = FaultyReader()
            reader.failReading(api, true)
            var view = ManifestFolderView(paths: [folder], reader: reader)
            for _ in 0..<3 {
                let poll = view.poll()
                #expect(poll.update == nil)
                #expect(isStale(poll, mentioning: "api.yaml"), "\(poll.condition)")
            }
            reader.failReading(api, false)
            #expect(services(view.poll().update) == ["web": 1, "api": 1])
        }
    }

    /// A half-written file at start holds the first update back, as an unreadable one does; once the daemon is
    /// running, a broken file keeps its last good content.
    @Test func atStartAFileWithProblemsHoldsBackTheFirstUpdateAndLaterKeepsItsLastGoodContent() throws {
        try withTemporaryFolder("manifests") { folder in
            try write(manifest("web", clusterIP: "10.96.0.1"), folder, "web.yaml")
            let whole = manifest("api", clusterIP: "10.96.0.2")
            try write(String(whole.prefix(whole.count / 2)), folder, "api.yaml")
            var view = ManifestFolderView(paths: [folder], reader: FileSystemManifestReader())
            let waiting = view.poll()
            #expect(waiting.update == nil)
            #expect(isStale(waiting, mentioning: "api.yaml: has problems, and no good content yet"))
            #expect(waiting.newProblems.map(\.file).contains { $0.hasSuffix("api.yaml") })
            #expect(view.poll().newProblems.isEmpty, "problems are told once per change of the file")

            try write(whole, folder, "api.yaml")
            #expect(services(view.poll().update) == ["web": 1, "api": 1])

            try write("apiVersion: v1\nkind: Service\nmetadata: [broken\n", folder, "web.yaml")
            let broken = view.poll()
            #expect(broken.condition == .current)
            #expect(services(broken.update) == ["web": 1, "api": 1], "web keeps its last good content")
            #expect(broken.update?.problems.isEmpty == false)
        }
    }

    /// ServiceCIDRs ride along in the snapshot, unused as yet (the service ranges' routes will come from them): a
    /// change to one alone is an update, and one defined in two files keeps the first file's.
    @Test func serviceCIDRsAreCarriedAlong() throws {
        try withTemporaryFolder("manifests") { folder in
            try write(manifest("web", clusterIP: "10.96.0.1"), folder, "a-web.yaml")
            try write(serviceCIDR("10.96.0.0/12"), folder, "b-ranges.yaml")
            var view = ManifestFolderView(paths: [folder], reader: FileSystemManifestReader())
            #expect(serviceCIDRs(view.poll().update) == ["kubernetes": ["10.96.0.0/12"]])

            try write(serviceCIDR("10.96.0.0/12", "fd00:10:96::/108"), folder, "b-ranges.yaml")
            let changed = view.poll()
            #expect(serviceCIDRs(changed.update) == ["kubernetes": ["10.96.0.0/12", "fd00:10:96::/108"]])
            #expect(services(changed.update) == ["web": 1])

            try write(serviceCIDR("10.100.0.0/16"), folder, "c-more.yaml")
            let twice = view.poll()
            #expect(serviceCIDRs(twice.update) == ["kubernetes": ["10.96.0.0/12", "fd00:10:96::/108"]])
            #expect(twice.update?.problems.contains { $0.description.contains("c-more.yaml") } == true)
        }
    }

    /// A ConfigMap volume replaces its files by swapping one symlink (`..data`) atomically.
    @Test func anAtomicSymlinkSwapIsOneChange() throws {
        try withTemporaryFolder("manifests") { folder in
            let manager = FileManager.default
            func version(_ name: String, _ files: [String: String]) throws {
                let directory = (folder as NSString).appendingPathComponent(name)
                try manager.createDirectory(atPath: directory, withIntermediateDirectories: false)
                for (file, text) in files { try write(text, directory, file) }
                let temporary = (folder as NSString).appendingPathComponent("..data_tmp")
                try manager.createSymbolicLink(atPath: temporary, withDestinationPath: name)
                #expect(rename(temporary, (folder as NSString).appendingPathComponent("..data")) == 0)
            }
            try version("..2026_12_07_1", ["web.yaml": manifest("web", clusterIP: "10.96.0.1")])
            try manager.createSymbolicLink(
                atPath: (folder as NSString).appendingPathComponent("web.yaml"), withDestinationPath: "..data/web.yaml")
            var view = ManifestFolderView(paths: [folder], reader: FileSystemManifestReader())
            #expect(services(view.poll().update) == ["web": 1])

            try version(
                "..2026_12_07_2",
                ["web.yaml": manifest("web", clusterIP: "10.96.0.1", endpoints: ["10.244.0.1", "10.244.0.3"])])
            let swapped = view.poll()
            #expect(swapped.condition == .current)
            #expect(services(swapped.update) == ["web": 2])
        }
    }

    /// The running source says `stale` at every failed poll and `current` once when it reads again.
    @Test func theSourceSaysWhenItsViewIsStale() async throws {
        try await withTemporaryFolder("manifests") { folder in
            try write(manifest("web", clusterIP: "10.96.0.1"), folder, "web.yaml")
            let reader = FaultyReader()
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            let source = ManifestFolderSource(
                paths: [folder], pollInterval: .milliseconds(10), logger: logger, reader: reader)
            let said = Mutex<[SourceCondition]>([])
            let updates = Mutex(0)
            let task = Task {
                try await source.run(
                    update: { _ in updates.withLock { $0 += 1 } },
                    condition: { condition in said.withLock { $0.append(condition) } })
            }
            defer { task.cancel() }
            func wait(_ condition: () -> Bool) async throws -> Bool {
                for _ in 0..<500 {
                    if condition() { return true }
                    try await Task.sleep(for: .milliseconds(10))
                }
                return false
            }
            #expect(try await wait { updates.withLock { $0 } == 1 })
            reader.failListing(true)
            #expect(try await wait { said.withLock { $0.filter { $0 != .current }.count } >= 3 })
            reader.failListing(false)
            #expect(try await wait { said.withLock { $0.last } == .current })
            let conditions = said.withLock { $0 }
            #expect(conditions.filter { $0 == .current }.count == 2, "once at start, once when it read again")
            #expect(updates.withLock { $0 } == 1, "nothing changed: no update")
        }
    }
}
