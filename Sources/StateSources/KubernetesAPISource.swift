import Foundation
import KubernetesModel
import Logging
import Synchronization

/// Services, EndpointSlices and the proxy's own Node from a Kubernetes API server: listed, then watched from the
/// list's resource version with bookmarks, Services and slices with kube-proxy's label selector (no
/// `service-proxy-name`, no `headless`), the Node by its name. An expired resource version (410) means a fresh
/// list; a dropped connection or an error means a retry with exponential backoff, resuming the watch where it
/// stopped.
///
/// A read either succeeds whole or changes nothing: a list is taken only when every page arrived and each is a
/// page of the list asked for (never a `Status`, `{}` or another kind), and an object that fails to decode or
/// validate keeps its last good version, on a relist as on a watch. Nothing is delivered until every kind has been
/// listed once (the Node: or refused for good, 401, 403 or 404, so that a cluster without the RBAC for it still
/// gets its Services), and nothing while the server is unreachable, so the kernel keeps the last good state.
package struct KubernetesAPISource: ClusterSource {
    package let client: KubernetesAPIClient
    package let logger: Logger
    /// The node whose Node object is watched.
    package let nodeName: String
    package var pageSize = 500
    /// How long one watch request lasts before the server ends it (and it is started again).
    package var watchTimeoutSeconds = 300
    /// The first retry delay; doubled per failure up to ``maximumBackoff``.
    package var initialBackoff: Duration = .milliseconds(500)
    package var maximumBackoff: Duration = .seconds(30)

    package init(client: KubernetesAPIClient, nodeName: String, logger: Logger) {
        self.client = client
        self.nodeName = nodeName
        self.logger = logger
    }

    package func run(
        update: @escaping @Sendable (ClusterUpdate) async -> Void,
        condition: @escaping @Sendable (SourceCondition) -> Void
    ) async throws {
        let store = ObjectStore()
        let failing = FailingKinds(report: condition)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await inform(Resource<Service>.services, store: store, failing: failing, update: update)
            }
            group.addTask {
                try await inform(Resource<EndpointSlice>.endpointSlices, store: store, failing: failing, update: update)
            }
            group.addTask {
                try await inform(Resource<Node>.node(named: nodeName), store: store, failing: failing, update: update)
            }
            try await group.next()
            group.cancelAll()
        }
    }

    private func inform<Object: KubernetesObject>(
        _ resource: Resource<Object>, store: ObjectStore, failing: FailingKinds,
        update: @escaping @Sendable (ClusterUpdate) async -> Void
    ) async throws {
        let kind = resource.kind.rawValue
        var resourceVersion: String?
        var failures = 0
        /// Whether a list of this kind was ever taken: the store then holds its last good view.
        var listed = false
        /// Whether updates went on without this kind (its list refused for good).
        var goneOnWithout = false
        while !Task.isCancelled {
            do {
                if resourceVersion == nil {
                    let (listing, version, problems) = try await list(resource, against: store, relist: listed)
                    store.replace(resource.kind, with: listing, problems: problems)
                    resourceVersion = version
                    listed = true
                    failures = 0
                    logger.info(
                        "listed",
                        metadata: [
                            "kind": "\(resource.kind)", "objects": "\(listing.seen.count)",
                            "resourceVersion": "\(version)",
                        ])
                    if let ready = store.takeUpdate() { await update(ready) }
                    failing.succeeded(kind)
                }
                try await client.watch(
                    resource.path, selector: resource.selector, resourceVersion: resourceVersion!,
                    timeoutSeconds: watchTimeoutSeconds, of: Object.self,
                    onOpen: {
                        // The server answers again: the view is current, and the next failure starts a new backoff.
                        failures = 0
                        failing.succeeded(kind)
                    }
                ) { events in
                    for event in events { try apply(event, of: resource, to: store, resourceVersion: &resourceVersion) }
                    if let ready = store.takeUpdate() { await update(ready) }
                }
            } catch let error as APIError where error.isExpired {
                logger.info(
                    "resource version expired; listing again",
                    metadata: ["kind": "\(resource.kind)", "error": "\(error)"])
                resourceVersion = nil
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                failures += 1
                if !listed, resource.mayGoOnWithout(error) {
                    // Refused for good (no RBAC for Nodes): proxying goes on without it, and picks it up once a list
                    // succeeds. Not a stale view: there is nothing to wait for.
                    if !goneOnWithout {
                        goneOnWithout = true
                        store.replace(resource.kind, with: Listing<Object>(), problems: [])
                        if let ready = store.takeUpdate() { await update(ready) }
                    }
                } else {
                    failing.failed(kind, reason: "\(error)")
                }
                let delay = backoff(after: failures)
                logger.warning(
                    "API server unreachable or refused; the kernel keeps its last good state",
                    metadata: ["kind": "\(resource.kind)", "error": "\(error)", "retryIn": "\(delay)"])
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
    private func list<Object: KubernetesObject>(
        _ resource: Resource<Object>, against store: ObjectStore, relist: Bool
    ) async throws -> (Listing<Object>, String, [ManifestProblem]) {
        var listing = Listing<Object>()
        var problems: [ManifestProblem] = []
        var token: String?
        var version = ""
        repeat {
            let page = try await client.listPage(
                resource.path, selector: resource.selector, limit: pageSize, continueToken: token,
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

    private func apply<Object: KubernetesObject>(
        _ event: WatchEvent<Object>, of resource: Resource<Object>, to store: ObjectStore,
        resourceVersion: inout String?
    ) throws {
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
        return min(initialBackoff * factor, maximumBackoff)
    }
}

/// An object the API serves, with its metadata.
package protocol KubernetesObject: Decodable, Sendable, Hashable {
    var metadata: ObjectMeta { get }
}

extension Service: KubernetesObject {}
extension EndpointSlice: KubernetesObject {}
extension Node: KubernetesObject {}

/// A resource the source informs on.
struct Resource<Object: KubernetesObject>: Sendable {
    var kind: ObjectStore.Kind
    var path: String
    /// A `labelSelector=` or `fieldSelector=` query, escaped.
    var selector: String
    /// Whether updates go on without this kind when its list is refused for good (401, 403, 404: no RBAC for it),
    /// rather than wait for a list that will not come.
    var isOptional = false

    static var services: Resource<Service> {
        Resource<Service>(kind: .service, path: "/api/v1/services", selector: labelSelector)
    }
    static var endpointSlices: Resource<EndpointSlice> {
        Resource<EndpointSlice>(
            kind: .endpointSlice, path: "/apis/discovery.k8s.io/v1/endpointslices", selector: labelSelector)
    }
    static func node(named name: String) -> Resource<Node> {
        Resource<Node>(
            kind: .node, path: "/api/v1/nodes",
            selector: "fieldSelector=" + KubernetesAPIClient.escape("metadata.name=\(name)"), isOptional: true)
    }

    /// kube-proxy's: objects labelled for another proxy or as headless are not the proxy's.
    private static var labelSelector: String { "labelSelector=" + KubernetesAPIClient.escape(ProxyLabels.selector) }

    /// Whether updates go on without this kind after its first list failed so.
    func mayGoOnWithout(_ error: any Error) -> Bool {
        guard isOptional, let error = error as? APIError else { return false }
        return [401, 403, 404].contains(error.status)
    }

    /// The name of an object as its problems give it (`namespace/name`, or a cluster-scoped object's name).
    func objectName(parsing text: String) -> ObjectName {
        guard let slash = text.firstIndex(of: "/") else { return ObjectMeta(name: text).objectName }
        return ObjectName(namespace: String(text[..<slash]), name: String(text[text.index(after: slash)...]))
    }

    func location(_ name: String?) -> ObjectLocation {
        ObjectLocation(file: path, document: 1, kind: kind.rawValue, name: name)
    }

    /// The object of a watch event when it decoded and passes the same checks as a manifest, else the problem.
    func validated(_ item: Item<Object>) -> Result<Object, ManifestProblem> {
        switch item {
        case .invalid(let name, let field, let message):
            return .failure(ManifestProblem(at: location(name), field: field, message))
        case .object(let object, let name):
            return validated(object, name: name)
        }
    }

    /// The object of a list item when it decoded, is of this resource's kind, and passes the same checks as a
    /// manifest; else the problem.
    func validated(_ item: DecodedItem) -> Result<Object, ManifestProblem> {
        switch item {
        case .failure(_, let name, let field, let message):
            return .failure(ManifestProblem(at: location(name), field: field, message))
        case .service(let object as Object), .endpointSlice(let object as Object):
            return validated(object, name: object.metadata.objectName.description)
        case .node(let node as Object):
            return validated(node, name: node.metadata.name)
        default:
            return .failure(ManifestProblem(at: location(nil), "expected a \(kind.rawValue) in the list"))
        }
    }

    private func validated(_ object: Object, name: String?) -> Result<Object, ManifestProblem> {
        var set = ManifestSet()
        if let service = object as? Service { set.services = [Located(service, at: location(name))] }
        if let slice = object as? EndpointSlice { set.endpointSlices = [Located(slice, at: location(name))] }
        if let node = object as? Node { set.nodes = [Located(node, at: location(name))] }
        if let problem = ManifestValidator.validate(set).problems.first { return .failure(problem) }
        return .success(object)
    }
}

/// The kinds whose requests fail now; says at every failure that the view is stale, and that it is current again
/// once the last failing kind succeeds.
final class FailingKinds: Sendable {
    private let kinds = Mutex<Set<String>>([])
    private let report: @Sendable (SourceCondition) -> Void

    init(report: @escaping @Sendable (SourceCondition) -> Void) { self.report = report }

    func failed(_ kind: String, reason: String) {
        kinds.withLock { _ = $0.insert(kind) }
        report(.stale("\(kind): \(reason)"))
    }

    func succeeded(_ kind: String) {
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

/// A fresh list of one kind, as far as it differs from what the store knows: the objects that differ, and the name
/// of every object listed.
struct Listing<Object: KubernetesObject>: Sendable {
    var changed: [ObjectName: Object] = [:]
    var seen: Set<ObjectName> = []

    init() {}

    /// A list of these objects, all of them news.
    init(_ objects: [ObjectName: Object]) {
        changed = objects
        seen = Set(objects.keys)
    }
}

/// What the source knows of the objects, and what changed since the last update it handed out: everything in the
/// first update (once every kind was listed), then each object that changed, so that a watch event costs its own
/// object, not a copy of the cluster.
///
/// After the first update it keeps only each object's resource version, as an informer compares them: the
/// objects themselves are the translation's. An object without one (never from an API server) always counts as
/// changed.
final class ObjectStore: Sendable {
    enum Kind: String, Sendable, CaseIterable {
        case service = "Service"
        case endpointSlice = "EndpointSlice"
        case node = "Node"

        /// Where the problems of its objects say they came from.
        var path: String {
            switch self {
            case .service: "/api/v1/services"
            case .endpointSlice: "/apis/discovery.k8s.io/v1/endpointslices"
            case .node: "/api/v1/nodes"
            }
        }
    }

    private struct State {
        /// Each known object's resource version, by kind.
        var versions: [Kind: [ObjectName: String]] = [:]
        /// Until the first update: the objects, to hand out all at once.
        var firstServices: [ObjectName: Service] = [:]
        var firstSlices: [ObjectName: EndpointSlice] = [:]
        var firstNodes: [ObjectName: Node] = [:]
        var listed: Set<String> = []
        /// Whether the first update (everything) was handed out: from then on, changes are.
        var handedOutEverything = false
        var changes: [ClusterChange] = []
        var serviceChanges = 0
        var endpointChanges = 0
        var problems: [ManifestProblem] = []
        var triggerTimes: [Date] = []
        var resourceVersion: String?
        var listedSinceUpdate = false
        var changed = false
    }

    private let state = Mutex(State())
    /// Trigger times before this are of changes made before the source started: kube-proxy skips them too.
    private let started = Date()

    /// Keeps a changed slice's trigger time. A deleted slice's is not kept: it dates its last update, not its
    /// deletion (kube-proxy's rule).
    private func recordTrigger(of slice: EndpointSlice, in state: inout State) {
        if let time = LastChangeTrigger.time(of: slice), time > started { state.triggerTimes.append(time) }
    }

    /// An object as the translation sees it, with the place its problems name.
    private static func located<Object>(_ object: Object, _ kind: Kind, name: String) -> Located<Object> {
        Located(object, at: ObjectLocation(file: kind.path, document: 1, kind: kind.rawValue, name: name))
    }

    /// Whether the store knows this version of the object.
    func holds<Object: KubernetesObject>(_ kind: Kind, _ object: Object) -> Bool {
        state.withLock { known(object, kind, in: $0) }
    }

    /// Replaces every object of a kind with a fresh list's: what differs is handed out as changes.
    func replace<Object: KubernetesObject>(_ kind: Kind, with listing: Listing<Object>, problems: [ManifestProblem]) {
        state.withLock { state in
            for (name, object) in listing.changed where !known(object, kind, in: state) {
                set(object, kind, named: name, in: &state)
            }
            for name in state.versions[kind, default: [:]].keys where !listing.seen.contains(name) {
                set(Object?.none, kind, named: name, in: &state)
            }
            state.listed.insert(kind.rawValue)
            state.listedSinceUpdate = true
            state.problems += problems
            state.changed = true
        }
    }

    /// An object added or changed, as a watch event has it.
    func upsert<Object: KubernetesObject>(_ kind: Kind, _ object: Object, resourceVersion: String?) {
        state.withLock { state in
            if !known(object, kind, in: state) { set(object, kind, named: object.metadata.objectName, in: &state) }
            if let resourceVersion { state.resourceVersion = resourceVersion }
        }
    }

    /// An object deleted, as a watch event has it.
    func remove(_ kind: Kind, _ name: ObjectName, resourceVersion: String?) {
        state.withLock { state in
            if state.versions[kind]?[name] != nil {
                switch kind {
                case .service: set(Service?.none, kind, named: name, in: &state)
                case .endpointSlice: set(EndpointSlice?.none, kind, named: name, in: &state)
                case .node: set(Node?.none, kind, named: name, in: &state)
                }
            }
            if let resourceVersion { state.resourceVersion = resourceVersion }
        }
    }

    private func known<Object: KubernetesObject>(_ object: Object, _ kind: Kind, in state: State) -> Bool {
        guard let version = object.metadata.resourceVersion, !version.isEmpty else { return false }
        return state.versions[kind]?[object.metadata.objectName] == version
    }

    /// Records an object as it is now (`nil`: deleted) and, after the first update, hands the change out.
    private func set<Object: KubernetesObject>(
        _ object: Object?, _ kind: Kind, named name: ObjectName, in state: inout State
    ) {
        state.versions[kind, default: [:]][name] = object.map { $0.metadata.resourceVersion ?? "" }
        state.changed = true
        switch kind {
        case .service:
            let service = object as? Service
            state.serviceChanges += 1
            if state.handedOutEverything {
                state.changes.append(.service(name, service.map { Self.located($0, kind, name: name.description) }))
            } else {
                state.firstServices[name] = service
            }
        case .endpointSlice:
            let slice = object as? EndpointSlice
            state.endpointChanges += 1
            if let slice { recordTrigger(of: slice, in: &state) }
            if state.handedOutEverything {
                state.changes.append(
                    .endpointSlice(name, slice.map { Self.located($0, kind, name: name.description) }))
            } else {
                state.firstSlices[name] = slice
            }
        case .node:
            let node = object as? Node
            if state.handedOutEverything {
                state.changes.append(.node(name, node.map { Self.located($0, kind, name: name.name) }))
            } else {
                state.firstNodes[name] = node
            }
        }
    }

    func record(_ problem: ManifestProblem) {
        state.withLock {
            $0.problems.append(problem)
            $0.changed = true
        }
    }

    /// The update to hand out, once every kind was listed and something changed since the last one.
    func takeUpdate() -> ClusterUpdate? {
        state.withLock { state in
            guard state.changed, state.listed.count == Kind.allCases.count else { return nil }
            if !state.handedOutEverything {
                var everything = ManifestSet()
                everything.services = state.firstServices.map { Self.located($1, .service, name: $0.description) }
                everything.endpointSlices = state.firstSlices.map {
                    Self.located($1, .endpointSlice, name: $0.description)
                }
                everything.nodes = state.firstNodes.map { Self.located($1, .node, name: $0.name) }
                state.firstServices = [:]
                state.firstSlices = [:]
                state.firstNodes = [:]
                state.changes = [.everything(everything)]
                state.handedOutEverything = true
            }
            let update = ClusterUpdate(
                changes: state.changes, serviceChanges: state.serviceChanges, endpointChanges: state.endpointChanges,
                problems: state.problems, lastChangeTriggerTimes: state.triggerTimes,
                resourceVersion: state.resourceVersion, followsList: state.listedSinceUpdate)
            state.changes = []
            state.triggerTimes = []
            state.serviceChanges = 0
            state.endpointChanges = 0
            state.problems = []
            state.resourceVersion = nil
            state.listedSinceUpdate = false
            state.changed = false
            return update
        }
    }
}
