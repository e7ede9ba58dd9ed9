import KubernetesModel
import Logging
import Synchronization

/// One resource's list and watch, as client-go's reflector runs them, into the store the source's informers share:
/// listed, then watched from the list's resource version; listed again when that version expired (410); after any
/// other failure, tried again with exponential backoff, resuming the watch where it stopped.
struct Informer<Object: KubernetesObject>: Sendable {
    /// The source whose client, logger, page size, watch timeout and backoff the informer uses.
    let source: KubernetesAPISource
    let resource: Resource<Object>
    let store: ObjectStore
    let failing: FailingKinds

    /// Lists, then watches, until cancelled; hands out an update after each list and each batch of watch events
    /// once every kind has been listed.
    func run(update: @escaping @Sendable (ClusterUpdate) async -> Void) async throws {
        var resourceVersion: String?
        var failures = 0
        /// Whether a list of this kind was ever taken: the store then holds its last good view.
        var listed = false
        /// Whether updates went on without this kind (its list refused for good).
        var goneOnWithout = false
        while !Task.isCancelled {
            do {
                if resourceVersion == nil {
                    let (listing, version, problems) = try await list(relist: listed)
                    store.replace(resource.kind, with: listing, problems: problems)
                    resourceVersion = version
                    listed = true
                    failures = 0
                    source.logger.info(
                        "listed",
                        metadata: [
                            "kind": "\(resource.kind)", "objects": "\(listing.seen.count)",
                            "resourceVersion": "\(version)",
                        ])
                    if let ready = store.takeUpdate() { await update(ready) }
                    failing.succeeded(resource.kind)
                }
                try await source.client.watch(
                    resource.path, selector: resource.selector, resourceVersion: resourceVersion!,
                    timeoutSeconds: source.watchTimeoutSeconds, of: Object.self,
                    onOpen: {
                        // The server answers again: the view is current, and the next failure starts a new backoff.
                        failures = 0
                        failing.succeeded(resource.kind)
                    }
                ) { events in
                    for event in events { try apply(event, resourceVersion: &resourceVersion) }
                    if let ready = store.takeUpdate() { await update(ready) }
                }
            } catch let error as APIError where error.isExpired {
                source.logger.info(
                    "resource version expired; listing again",
                    metadata: ["kind": "\(resource.kind)", "error": "\(error)"])
                resourceVersion = nil
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                failures += 1
                let delay = backoff(after: failures)
                let metadata: Logger.Metadata = [
                    "kind": "\(resource.kind)", "error": "\(error)", "retryIn": "\(delay)",
                ]
                if !listed, resource.mayGoOnWithout(error) {
                    // Refused for good (no RBAC for Nodes, an API server without ServiceCIDRs): proxying goes on
                    // without it, and picks it up once a list succeeds. Not a stale view: there is nothing to wait
                    // for. Said once as a warning: the same answer every 30 s is no news.
                    if !goneOnWithout {
                        goneOnWithout = true
                        var first = metadata
                        first["meaning"] = "\(resource.withoutIt)"
                        source.logger.warning(
                            "list refused; going on without this kind, and asking again", metadata: first)
                        store.replace(resource.kind, with: Listing<Object>(), problems: [])
                        if let ready = store.takeUpdate() { await update(ready) }
                    } else {
                        source.logger.debug("list still refused; going on without this kind", metadata: metadata)
                    }
                } else {
                    failing.failed(resource.kind, reason: "\(error)")
                    source.logger.warning(
                        "API server unreachable or refused; the kernel keeps its last good state", metadata: metadata)
                }
                try await Task.sleep(for: delay)
            }
        }
    }

    /// Lists every object of a resource, page by page, keeping only those that differ from what the store knows:
    /// a relist at 10,000 Services holds one copy of the cluster, not two.
    ///
    /// An object that fails to decode or validate is left as the store knows it (its name counts as seen, so a
    /// relist does not remove it); on a relist, one whose name cannot even be read fails the whole list, since its
    /// last good version could not be told from the others.
    private func list(relist: Bool) async throws -> (Listing<Object>, String, [ManifestProblem]) {
        var listing = Listing<Object>()
        var problems: [ManifestProblem] = []
        var token: String?
        var version = ""
        repeat {
            let page = try await source.client.listPage(
                resource.path, selector: resource.selector, limit: source.pageSize, continueToken: token,
                itemKind: resource.kind.rawValue)
            for item in page.items {
                switch resource.validated(item) {
                case .success(let object):
                    let name = object.metadata.objectName
                    listing.seen.insert(name)
                    if !store.holds(resource.kind, object) { listing.changed[name] = object }
                case .failure(let problem):
                    if let name = problem.location?.name.map(resource.objectName(parsing:)) {
                        listing.seen.insert(name)
                    } else if relist {
                        throw UnreadableListItem(problem: problem)
                    }
                    problems.append(problem)
                }
            }
            token = page.continueToken
            version = page.resourceVersion
        } while token != nil
        return (listing, version, problems)
    }

    private func apply(_ event: WatchEvent<Object>, resourceVersion: inout String?) throws {
        switch event {
        case .added(let item), .modified(let item):
            switch resource.validated(item) {
            case .success(let object):
                store.upsert(resource.kind, object, resourceVersion: object.metadata.resourceVersion)
                if let version = object.metadata.resourceVersion { resourceVersion = version }
            case .failure(let problem):
                // The last good version (if any) stays in use.
                store.record(problem)
            }
        case .deleted(let item):
            if case .object(let object, _) = item {
                store.remove(
                    resource.kind, object.metadata.objectName, resourceVersion: object.metadata.resourceVersion)
                if let version = object.metadata.resourceVersion { resourceVersion = version }
            }
        case .bookmark(let version):
            resourceVersion = version
        case .error(let error):
            throw error
        }
    }

    private func backoff(after failures: Int) -> Duration {
        let factor = 1 << min(failures - 1, 16)
        return min(source.initialBackoff * factor, source.maximumBackoff)
    }
}

/// The kinds whose requests fail now; says at every failure that the view is stale, and that it is current again
/// once the last failing kind succeeds.
final class FailingKinds: Sendable {
    private let kinds = Mutex<Set<ResourceKind>>([])
    private let report: @Sendable (SourceCondition) -> Void

    init(report: @escaping @Sendable (SourceCondition) -> Void) { self.report = report }

    func failed(_ kind: ResourceKind, reason: String) {
        kinds.withLock { _ = $0.insert(kind) }
        report(.stale("\(kind.rawValue): \(reason)"))
    }

    func succeeded(_ kind: ResourceKind) {
        let recovered = kinds.withLock { $0.remove(kind) != nil && $0.isEmpty }
        if recovered { report(.current) }
    }
}

/// An object of a relist whose name cannot be read: its last good version could not be kept, so the list is not
/// taken.
struct UnreadableListItem: Error, CustomStringConvertible {
    var problem: ManifestProblem
    var description: String { "a listed object cannot be read, not even its name: \(problem)" }
}
