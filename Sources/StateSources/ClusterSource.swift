import Foundation
import KubernetesModel

/// What changed in the objects a source knows, delivered whenever something does. A source's first update holds
/// everything (``ClusterChange/everything(_:)``); later ones, what changed since.
package struct ClusterUpdate: Sendable {
    /// The changes, to be applied in order.
    package var changes: [ClusterChange]
    /// How many Services and endpoint objects (slices, Endpoints) changed since the previous update.
    package var serviceChanges: Int
    package var endpointChanges: Int
    /// How many ServiceCIDRs changed since the previous update (the cluster's service ranges).
    package var serviceCIDRChanges: Int
    /// Objects the source skipped as invalid in this update (the last good version stays in use).
    package var problems: [ManifestProblem]
    /// When the changed EndpointSlices were changed, from their `endpoints.kubernetes.io/last-change-trigger-time`
    /// annotations (kube-proxy's start of network programming), for changes made after the source started.
    package var lastChangeTriggerTimes: [Date]
    /// The resource version of the last object event the update carries (from the API), for the log.
    package var resourceVersion: String?
    /// Whether every object of a kind was listed since the previous update (the first lists, or a relist after
    /// `410 Gone`): much was decoded and let go, even when little changed.
    package var followsList: Bool

    package init(
        changes: [ClusterChange], serviceChanges: Int, endpointChanges: Int, serviceCIDRChanges: Int = 0,
        problems: [ManifestProblem] = [], lastChangeTriggerTimes: [Date] = [], resourceVersion: String? = nil,
        followsList: Bool = false
    ) {
        self.followsList = followsList
        self.changes = changes
        self.resourceVersion = resourceVersion
        self.serviceChanges = serviceChanges
        self.endpointChanges = endpointChanges
        self.serviceCIDRChanges = serviceCIDRChanges
        self.problems = problems
        self.lastChangeTriggerTimes = lastChangeTriggerTimes
    }
}

/// Whether a source's view is whole and current, or the last good one kept while a read fails.
package enum SourceCondition: Sendable, Hashable {
    /// Every read succeeded.
    case current
    /// A read failed (the reason says which and why): the source keeps its last good view, delivers nothing that
    /// read could have changed, and reads again.
    case stale(String)
}

/// Where desired state comes from while the daemon runs.
package protocol ClusterSource: Sendable {
    /// Delivers updates until cancelled. A read that fails (an unreachable server, an answer that is not what was
    /// asked for, a folder that cannot be listed) is never taken for an empty one: the source delivers nothing
    /// meanwhile, so the kernel keeps the last good state, and says so through `condition` at every failed read,
    /// and once when its view is current again.
    func run(
        update: @escaping @Sendable (ClusterUpdate) async -> Void,
        condition: @escaping @Sendable (SourceCondition) -> Void
    ) async throws
}

/// Counts the objects that differ between two snapshots, by kind.
enum SnapshotDifference {
    static func count(
        from old: ManifestSet?, to new: ManifestSet
    ) -> (services: Int, endpoints: Int, nodes: Int, serviceCIDRs: Int) {
        let services = differences(
            old?.services.map { ($0.object.metadata.objectName, $0.object) } ?? [],
            new.services.map { ($0.object.metadata.objectName, $0.object) })
        let slices = differences(
            old?.endpointSlices.map { ($0.object.metadata.objectName, $0.object) } ?? [],
            new.endpointSlices.map { ($0.object.metadata.objectName, $0.object) })
        let endpoints = differences(
            old?.endpoints.map { ($0.object.metadata.objectName, $0.object) } ?? [],
            new.endpoints.map { ($0.object.metadata.objectName, $0.object) })
        let nodes = differences(
            old?.nodes.map { ($0.object.metadata.objectName, $0.object) } ?? [],
            new.nodes.map { ($0.object.metadata.objectName, $0.object) })
        let serviceCIDRs = differences(
            old?.serviceCIDRs.map { ($0.object.metadata.objectName, $0.object) } ?? [],
            new.serviceCIDRs.map { ($0.object.metadata.objectName, $0.object) })
        return (services, slices + endpoints, nodes, serviceCIDRs)
    }

    private static func differences<Object: Hashable>(
        _ old: [(ObjectName, Object)], _ new: [(ObjectName, Object)]
    ) -> Int {
        let before = Dictionary(old, uniquingKeysWith: { first, _ in first })
        let after = Dictionary(new, uniquingKeysWith: { first, _ in first })
        var count = 0
        for (name, object) in after where before[name] != object { count += 1 }
        for name in before.keys where after[name] == nil { count += 1 }
        return count
    }
}

/// The EndpointSlice annotation the EndpointSlice controller sets to when the change behind the slice's last
/// update happened (kube-proxy reads it for `kubeproxy_network_programming_duration_seconds`).
enum LastChangeTrigger {
    static let annotation = "endpoints.kubernetes.io/last-change-trigger-time"

    /// The slice's trigger time, if it has a valid one.
    static func time(of slice: EndpointSlice) -> Date? {
        guard let text = slice.metadata.annotations?[annotation] else { return nil }
        // RFC 3339, as Go's time.RFC3339Nano writes it: fractional seconds when there are any.
        return (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text))
            ?? (try? Date.ISO8601FormatStyle().parse(text))
    }
}
