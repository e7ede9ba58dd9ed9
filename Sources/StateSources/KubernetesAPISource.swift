import KubernetesModel
import Logging

/// Services, EndpointSlices, the proxy's own Node and the cluster's ServiceCIDRs from a Kubernetes API server:
/// listed, then watched from the list's resource version with bookmarks, Services and slices with kube-proxy's label
/// selector (no `service-proxy-name`, no `headless`), the Node by its name, every ServiceCIDR. An expired resource
/// version (410) means a fresh list; a dropped connection or an error means a retry with exponential backoff,
/// resuming the watch where it stopped.
///
/// A read either succeeds whole or changes nothing: a list is taken only when every page arrived and each is a
/// page of the list asked for (never a `Status`, `{}` or another kind), and an object that fails to decode or
/// validate keeps its last good version, on a relist as on a watch. Nothing is delivered until every kind has been
/// listed once (the Node and the ServiceCIDRs: or refused for good, 401, 403 or 404, so that a cluster without the
/// RBAC for them, or one older than Kubernetes 1.33 that serves no ServiceCIDRs, still gets its Services; the
/// source then knows none of that kind, and lists again with backoff), and nothing while the server is
/// unreachable, so the kernel keeps the last good state.
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
        @Sendable func inform<Object: KubernetesObject>(_ resource: Resource<Object>) async throws {
            try await Informer(source: self, resource: resource, store: store, failing: failing).run(update: update)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await inform(Resource<Service>.services) }
            group.addTask { try await inform(Resource<EndpointSlice>.endpointSlices) }
            group.addTask { try await inform(Resource<Node>.node(named: nodeName)) }
            group.addTask { try await inform(Resource<ServiceCIDR>.serviceCIDRs) }
            try await group.next()
            group.cancelAll()
        }
    }
}
