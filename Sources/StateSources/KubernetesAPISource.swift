import Foundation
import KubernetesModel
import Logging
import Synchronization

/// Services, EndpointSlices and the proxy's own Node from a Kubernetes API server: listed, then watched from the
/// list's resource version with bookmarks, Services and slices with kube-proxy's label selector (no
/// `service-proxy-name`, no `headless`), the Node by its name. An expired resource version (410) means a fresh
/// list; a dropped connection or an error means a retry with exponential backoff, resuming the watch where it
/// stopped. Nothing is delivered until every kind has been listed once (the Node: or failed to list, so that a
/// cluster without the RBAC for it still gets its Services), and nothing while the server is unreachable, so the
/// kernel keeps the last good state.
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
    /// Told `false` when a Service or EndpointSlice request fails, `true` once both succeed again.
    package var reachability: (@Sendable (Bool) -> Void)?

    package init(client: KubernetesAPIClient, nodeName: String, logger: Logger) {
        self.client = client
        self.nodeName = nodeName
        self.logger = logger
    }

    package func run(update: @escaping @Sendable (ClusterUpdate) async -> Void) async throws {
        let store = ObjectStore()
        let failing = FailingKinds(report: reachability)
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
        func reached(_ reached: Bool) {
            if resource.isRequired { failing.set(resource.kind.rawValue, failing: !reached) }
        }
        var resourceVersion: String?
        var failures = 0
        while !Task.isCancelled {
            do {
                if resourceVersion == nil {
                    let (objects, version, problems) = try await list(resource)
                    store.replace(resource.kind, with: objects, problems: problems)
                    resourceVersion = version
                    logger.info(
                        "listed",
                        metadata: [
                            "kind": "\(resource.kind)", "objects": "\(objects.count)", "resourceVersion": "\(version)",
                        ])
                    if let ready = store.takeUpdate() { await update(ready) }
                    reached(true)
                }
                try await client.watch(
                    resource.path, selector: resource.selector, resourceVersion: resourceVersion!,
                    timeoutSeconds: watchTimeoutSeconds, of: Object.self
                ) { events in
                    for event in events { try apply(event, of: resource, to: store, resourceVersion: &resourceVersion) }
                    if let ready = store.takeUpdate() { await update(ready) }
                    failures = 0
                    reached(true)
                }
                reached(true)
            } catch let error as APIError where error.isExpired {
                logger.info(
                    "resource version expired; listing again",
                    metadata: ["kind": "\(resource.kind)", "error": "\(error)"])
                resourceVersion = nil
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                failures += 1
                reached(false)
                if !resource.isRequired && resourceVersion == nil && failures == 1 {
                    // Proxying goes on without it (and picks it up once a list succeeds).
                    store.replace(resource.kind, with: [ObjectName: Object](), problems: [])
                    if let ready = store.takeUpdate() { await update(ready) }
                }
                let delay = backoff(after: failures)
                logger.warning(
                    "API server unreachable or refused; the kernel keeps its last good state",
                    metadata: ["kind": "\(resource.kind)", "error": "\(error)", "retryIn": "\(delay)"])
                try await Task.sleep(for: delay)
            }
        }
    }

    /// Lists every object of a resource, page by page.
    private func list<Object: KubernetesObject>(
        _ resource: Resource<Object>
    ) async throws -> ([ObjectName: Object], String, [ManifestProblem]) {
        var objects: [ObjectName: Object] = [:]
        var problems: [ManifestProblem] = []
        var token: String?
        var version = ""
        repeat {
            let page = try await client.listPage(
                resource.path, selector: resource.selector, limit: pageSize, continueToken: token)
            for item in page.items {
                switch resource.validated(item) {
                case .success(let object): objects[object.metadata.objectName] = object
                case .failure(let problem): problems.append(problem)
                }
            }
            token = page.continueToken
            version = page.resourceVersion
        } while token != nil
        return (objects, version, problems)
    }

    private func apply<Object: KubernetesObject>(
        _ event: WatchEvent<Object>, of resource: Resource<Object>, to store: ObjectStore,
        resourceVersion: inout String?
    ) throws {
        switch event {
        case .added(let item), .modified(let item):
            switch resource.validated(item) {
            case .success(let object):
                store.upsert(resource.kind, object)
                if let version = object.metadata.resourceVersion { resourceVersion = version }
            case .failure(let problem):
                // The last good version (if any) stays in use.
                store.record(problem)
            }
        case .deleted(let item):
            if case .object(let object, _) = item {
                store.remove(resource.kind, object.metadata.objectName)
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
    /// Whether updates wait for a successful list of it.
    var isRequired = true

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
            selector: "fieldSelector=" + KubernetesAPIClient.escape("metadata.name=\(name)"), isRequired: false)
    }

    /// kube-proxy's: objects labelled for another proxy or as headless are not the proxy's.
    private static var labelSelector: String { "labelSelector=" + KubernetesAPIClient.escape(ProxyLabels.selector) }

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

/// The kinds whose requests fail now; says when the API server goes out of reach and when it is back.
final class FailingKinds: Sendable {
    private let kinds = Mutex<Set<String>>([])
    private let report: (@Sendable (Bool) -> Void)?

    init(report: (@Sendable (Bool) -> Void)?) { self.report = report }

    /// Says `false` at every failure (the health timeout runs from the first), `true` when the last failing kind
    /// succeeds again.
    func set(_ kind: String, failing: Bool) {
        let reachable: Bool? = kinds.withLock { kinds in
            if failing {
                kinds.insert(kind)
                return false
            }
            return kinds.remove(kind) != nil && kinds.isEmpty ? true : nil
        }
        if let reachable { report?(reachable) }
    }
}

/// The objects the source knows, and what changed since the last update it handed out.
final class ObjectStore: Sendable {
    enum Kind: String, Sendable, CaseIterable {
        case service = "Service"
        case endpointSlice = "EndpointSlice"
        case node = "Node"
    }

    private struct State {
        var services: [ObjectName: Service] = [:]
        var slices: [ObjectName: EndpointSlice] = [:]
        var nodes: [ObjectName: Node] = [:]
        var listed: Set<String> = []
        var serviceChanges = 0
        var endpointChanges = 0
        var problems: [ManifestProblem] = []
        var triggerTimes: [Date] = []
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

    func replace<Object: KubernetesObject>(
        _ kind: Kind, with objects: [ObjectName: Object], problems: [ManifestProblem]
    ) {
        state.withLock { state in
            switch kind {
            case .service:
                let new = objects.compactMapValues { $0 as? Service }
                state.serviceChanges += Self.differences(state.services, new)
                state.services = new
            case .endpointSlice:
                let new = objects.compactMapValues { $0 as? EndpointSlice }
                state.endpointChanges += Self.differences(state.slices, new)
                for (name, slice) in new where state.slices[name] != slice { recordTrigger(of: slice, in: &state) }
                state.slices = new
            case .node:
                state.nodes = objects.compactMapValues { $0 as? Node }
            }
            state.listed.insert(kind.rawValue)
            state.problems += problems
            state.changed = true
        }
    }

    func upsert<Object: KubernetesObject>(_ kind: Kind, _ object: Object) {
        state.withLock { state in
            let name = object.metadata.objectName
            if let service = object as? Service, state.services[name] != service {
                state.services[name] = service
                state.serviceChanges += 1
                state.changed = true
            }
            if let slice = object as? EndpointSlice, state.slices[name] != slice {
                state.slices[name] = slice
                state.endpointChanges += 1
                recordTrigger(of: slice, in: &state)
                state.changed = true
            }
            if let node = object as? Node, state.nodes[name] != node {
                state.nodes[name] = node
                state.changed = true
            }
        }
    }

    func remove(_ kind: Kind, _ name: ObjectName) {
        state.withLock { state in
            switch kind {
            case .service:
                if state.services.removeValue(forKey: name) != nil { state.serviceChanges += 1 }
            case .endpointSlice:
                if state.slices.removeValue(forKey: name) != nil { state.endpointChanges += 1 }
            case .node:
                state.nodes[name] = nil
            }
            state.changed = true
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
            var snapshot = ManifestSet()
            snapshot.services = state.services.values.map {
                Located(
                    $0,
                    at: ObjectLocation(
                        file: "/api/v1/services", document: 1, kind: "Service", name: $0.metadata.objectName.description
                    ))
            }
            snapshot.endpointSlices = state.slices.values.map {
                Located(
                    $0,
                    at: ObjectLocation(
                        file: "/apis/discovery.k8s.io/v1/endpointslices", document: 1, kind: "EndpointSlice",
                        name: $0.metadata.objectName.description))
            }
            snapshot.nodes = state.nodes.values.map {
                Located(
                    $0, at: ObjectLocation(file: "/api/v1/nodes", document: 1, kind: "Node", name: $0.metadata.name))
            }
            let update = ClusterUpdate(
                snapshot: snapshot, serviceChanges: state.serviceChanges, endpointChanges: state.endpointChanges,
                problems: state.problems, lastChangeTriggerTimes: state.triggerTimes)
            state.triggerTimes = []
            state.serviceChanges = 0
            state.endpointChanges = 0
            state.problems = []
            state.changed = false
            return update
        }
    }

    private static func differences<Object: Hashable>(_ old: [ObjectName: Object], _ new: [ObjectName: Object]) -> Int {
        new.filter { old[$0.key] != $0.value }.count + old.keys.filter { new[$0] == nil }.count
    }
}
