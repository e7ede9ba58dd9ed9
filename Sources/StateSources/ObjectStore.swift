import Foundation
import KubernetesModel
import Synchronization

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
    private struct State {
        /// Each known object's resource version, by kind.
        var versions: [ResourceKind: [ObjectName: String]] = [:]
        /// Until the first update: the objects, to hand out all at once.
        var firstServices: [ObjectName: Service] = [:]
        var firstSlices: [ObjectName: EndpointSlice] = [:]
        var firstNodes: [ObjectName: Node] = [:]
        var firstServiceCIDRs: [ObjectName: ServiceCIDR] = [:]
        var listed: Set<ResourceKind> = []
        /// Whether the first update (everything) was handed out: from then on, changes are.
        var handedOutEverything = false
        var changes: [ClusterChange] = []
        var serviceChanges = 0
        var endpointChanges = 0
        var serviceCIDRChanges = 0
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
    private static func located<Object>(_ object: Object, _ kind: ResourceKind, name: String) -> Located<Object> {
        Located(object, at: ObjectLocation(file: kind.path, document: 1, kind: kind.rawValue, name: name))
    }

    /// Whether the store knows this version of the object.
    func holds<Object: KubernetesObject>(_ kind: ResourceKind, _ object: Object) -> Bool {
        state.withLock { known(object, kind, in: $0) }
    }

    /// Replaces every object of a kind with a fresh list's: what differs is handed out as changes.
    func replace<Object: KubernetesObject>(
        _ kind: ResourceKind, with listing: Listing<Object>, problems: [ManifestProblem]
    ) {
        state.withLock { state in
            for (name, object) in listing.changed where !known(object, kind, in: state) {
                set(object, kind, named: name, in: &state)
            }
            for name in state.versions[kind, default: [:]].keys where !listing.seen.contains(name) {
                set(Object?.none, kind, named: name, in: &state)
            }
            state.listed.insert(kind)
            state.listedSinceUpdate = true
            state.problems += problems
            state.changed = true
        }
    }

    /// An object added or changed, as a watch event has it.
    func upsert<Object: KubernetesObject>(_ kind: ResourceKind, _ object: Object, resourceVersion: String?) {
        state.withLock { state in
            if !known(object, kind, in: state) { set(object, kind, named: object.metadata.objectName, in: &state) }
            if let resourceVersion { state.resourceVersion = resourceVersion }
        }
    }

    /// An object deleted, as a watch event has it.
    func remove(_ kind: ResourceKind, _ name: ObjectName, resourceVersion: String?) {
        state.withLock { state in
            if state.versions[kind]?[name] != nil {
                switch kind {
                case .service: set(Service?.none, kind, named: name, in: &state)
                case .endpointSlice: set(EndpointSlice?.none, kind, named: name, in: &state)
                case .node: set(Node?.none, kind, named: name, in: &state)
                case .serviceCIDR: set(ServiceCIDR?.none, kind, named: name, in: &state)
                }
            }
            if let resourceVersion { state.resourceVersion = resourceVersion }
        }
    }

    private func known<Object: KubernetesObject>(_ object: Object, _ kind: ResourceKind, in state: State) -> Bool {
        guard let version = object.metadata.resourceVersion, !version.isEmpty else { return false }
        return state.versions[kind]?[object.metadata.objectName] == version
    }

    /// Records an object as it is now (`nil`: deleted) and, after the first update, hands the change out.
    private func set<Object: KubernetesObject>(
        _ object: Object?, _ kind: ResourceKind, named name: ObjectName, in state: inout State
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
        case .serviceCIDR:
            let serviceCIDR = object as? ServiceCIDR
            state.serviceCIDRChanges += 1
            if state.handedOutEverything {
                state.changes.append(
                    .serviceCIDR(name, serviceCIDR.map { Self.located($0, kind, name: name.name) }))
            } else {
                state.firstServiceCIDRs[name] = serviceCIDR
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
            guard state.changed, state.listed.count == ResourceKind.allCases.count else { return nil }
            if !state.handedOutEverything {
                var everything = ManifestSet()
                everything.services = state.firstServices.map { Self.located($1, .service, name: $0.description) }
                everything.endpointSlices = state.firstSlices.map {
                    Self.located($1, .endpointSlice, name: $0.description)
                }
                everything.nodes = state.firstNodes.map { Self.located($1, .node, name: $0.name) }
                everything.serviceCIDRs = state.firstServiceCIDRs.map {
                    Self.located($1, .serviceCIDR, name: $0.name)
                }
                state.firstServices = [:]
                state.firstSlices = [:]
                state.firstNodes = [:]
                state.firstServiceCIDRs = [:]
                state.changes = [.everything(everything)]
                state.handedOutEverything = true
            }
            let update = ClusterUpdate(
                changes: state.changes, serviceChanges: state.serviceChanges, endpointChanges: state.endpointChanges,
                serviceCIDRChanges: state.serviceCIDRChanges, problems: state.problems,
                lastChangeTriggerTimes: state.triggerTimes, resourceVersion: state.resourceVersion,
                followsList: state.listedSinceUpdate)
            state.changes = []
            state.triggerTimes = []
            state.serviceChanges = 0
            state.endpointChanges = 0
            state.serviceCIDRChanges = 0
            state.problems = []
            state.resourceVersion = nil
            state.listedSinceUpdate = false
            state.changed = false
            return update
        }
    }
}
