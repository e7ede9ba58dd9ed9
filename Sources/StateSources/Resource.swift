import KubernetesModel

/// An object the API serves, with its metadata.
package protocol KubernetesObject: Decodable, Sendable, Hashable {
    var metadata: ObjectMeta { get }
}

extension Service: KubernetesObject {}
extension EndpointSlice: KubernetesObject {}
extension Node: KubernetesObject {}
extension ServiceCIDR: KubernetesObject {}

/// A kind of object the source informs on: the kind its objects carry, and where the API server serves them.
enum ResourceKind: String, Sendable, CaseIterable {
    case service = "Service"
    case endpointSlice = "EndpointSlice"
    case node = "Node"
    case serviceCIDR = "ServiceCIDR"

    /// The collection's path on the API server, which is also where the problems of its objects say they came from.
    var path: String {
        switch self {
        case .service: "/api/v1/services"
        case .endpointSlice: "/apis/discovery.k8s.io/v1/endpointslices"
        case .node: "/api/v1/nodes"
        case .serviceCIDR: "/apis/networking.k8s.io/v1/servicecidrs"
        }
    }

    /// Whether its objects are cluster-scoped (named without a namespace in logs and problems).
    var isClusterScoped: Bool { self == .node || self == .serviceCIDR }
}

/// A resource the source informs on.
struct Resource<Object: KubernetesObject>: Sendable {
    var kind: ResourceKind
    /// A `labelSelector=` or `fieldSelector=` query, escaped; empty for every object of the kind.
    var selector: String
    /// Whether updates go on without this kind when its list is refused for good (401, 403, 404: no RBAC for it,
    /// or an API server that does not serve it), rather than wait for a list that will not come.
    var isOptional = false
    /// What going on without this kind means, for the one log line that says so.
    var withoutIt = ""

    var path: String { kind.path }

    static var services: Resource<Service> {
        Resource<Service>(kind: .service, selector: labelSelector)
    }
    static var endpointSlices: Resource<EndpointSlice> {
        Resource<EndpointSlice>(kind: .endpointSlice, selector: labelSelector)
    }
    static func node(named name: String) -> Resource<Node> {
        Resource<Node>(
            kind: .node, selector: "fieldSelector=" + KubernetesAPIClient.escape("metadata.name=\(name)"),
            isOptional: true,
            withoutIt: "Services are proxied without the Node: no topology zone, no node eligibility, and no node "
                + "ports on its primary addresses")
    }
    /// Every ServiceCIDR (cluster-scoped, `networking.k8s.io/v1` since Kubernetes 1.33). Optional as the Node is: an
    /// older API server answers 404, a ClusterRole without `servicecidrs` 403, and neither may keep the node's Services
    /// from being proxied; the source then knows no ServiceCIDR from the API.
    static var serviceCIDRs: Resource<ServiceCIDR> {
        Resource<ServiceCIDR>(
            kind: .serviceCIDR, selector: "", isOptional: true,
            withoutIt: "the source knows no ServiceCIDR from the API (404: the API server serves no "
                + "networking.k8s.io/v1 ServiceCIDRs, as before Kubernetes 1.33; 401 or 403: the ClusterRole needs "
                + "get, list and watch on servicecidrs in networking.k8s.io)")
    }

    /// kube-proxy's: objects labelled for another proxy or as headless are not the proxy's.
    private static var labelSelector: String { "labelSelector=" + KubernetesAPIClient.escape(ProxyLabels.selector) }

    /// Whether updates go on without this kind after its first list failed so.
    func mayGoOnWithout(_ error: any Error) -> Bool {
        guard isOptional, let error = error as? APIError else { return false }
        return Self.refusedForGood.contains(error.status)
    }

    /// The answers that say a list will not come by waiting: not authenticated, not authorized, not served.
    static var refusedForGood: Set<Int> { [401, 403, 404] }

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
        case .serviceCIDR(let serviceCIDR as Object):
            return validated(serviceCIDR, name: serviceCIDR.metadata.name)
        default:
            return .failure(ManifestProblem(at: location(nil), "expected a \(kind.rawValue) in the list"))
        }
    }

    private func validated(_ object: Object, name: String?) -> Result<Object, ManifestProblem> {
        var set = ManifestSet()
        if let service = object as? Service { set.services = [Located(service, at: location(name))] }
        if let slice = object as? EndpointSlice { set.endpointSlices = [Located(slice, at: location(name))] }
        if let node = object as? Node { set.nodes = [Located(node, at: location(name))] }
        if let serviceCIDR = object as? ServiceCIDR {
            set.serviceCIDRs = [Located(serviceCIDR, at: location(name))]
        }
        if let problem = ManifestValidator.validate(set).problems.first { return .failure(problem) }
        return .success(object)
    }
}
