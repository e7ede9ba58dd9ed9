// The Kubernetes objects the proxy reads, with the API's own field names. Only the fields the proxy uses
// are modelled; every other field is ignored when decoding.

/// Standard object metadata.
public struct ObjectMeta: Codable, Sendable, Hashable {
    public var name: String?
    public var namespace: String?
    public var labels: [String: String]?
    public var annotations: [String: String]?
    public var resourceVersion: String?
    /// Set once the object is being deleted (read for the proxy's own Node).
    public var deletionTimestamp: String?

    public init(
        name: String? = nil, namespace: String? = nil, labels: [String: String]? = nil,
        annotations: [String: String]? = nil, resourceVersion: String? = nil, deletionTimestamp: String? = nil
    ) {
        self.name = name
        self.namespace = namespace
        self.labels = labels
        self.annotations = annotations
        self.resourceVersion = resourceVersion
        self.deletionTimestamp = deletionTimestamp
    }
}

/// A value that is either a number or a name (`targetPort`).
public enum IntOrString: Codable, Sendable, Hashable, CustomStringConvertible {
    case int(Int)
    case string(String)

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Int.self) {
            self = .int(number)
        } else if let text = try? container.decode(String.self) {
            self = .string(text)
        } else {
            throw DecodingError.typeMismatch(
                IntOrString.self,
                DecodingError.Context(codingPath: decoder.codingPath, debugDescription: "expected a number or a name"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .int(let number): try container.encode(number)
        case .string(let text): try container.encode(text)
        }
    }

    public var description: String {
        switch self {
        case .int(let number): "\(number)"
        case .string(let text): text
        }
    }
}

/// A Service (`v1`).
public struct Service: Codable, Sendable, Hashable {
    public var metadata: ObjectMeta
    public var spec: ServiceSpec
    public var status: ServiceStatus?

    public init(metadata: ObjectMeta, spec: ServiceSpec, status: ServiceStatus? = nil) {
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        metadata = try container.decodeIfPresent(ObjectMeta.self, forKey: .metadata) ?? ObjectMeta()
        spec = try container.decodeIfPresent(ServiceSpec.self, forKey: .spec) ?? ServiceSpec()
        status = try container.decodeIfPresent(ServiceStatus.self, forKey: .status)
    }
}

public struct ServiceSpec: Codable, Sendable, Hashable {
    /// `ClusterIP` (the default), `NodePort`, `LoadBalancer` or `ExternalName`.
    public var type: String?
    public var clusterIP: String?
    public var clusterIPs: [String]?
    public var externalIPs: [String]?
    public var ports: [ServicePort]?
    /// `None` (the default) or `ClientIP`.
    public var sessionAffinity: String?
    public var sessionAffinityConfig: SessionAffinityConfig?
    public var externalTrafficPolicy: String?
    public var internalTrafficPolicy: String?
    public var ipFamilies: [String]?
    public var externalName: String?
    public var loadBalancerSourceRanges: [String]?
    /// The node port a load balancer probes for a LoadBalancer Service with externalTrafficPolicy `Local`.
    public var healthCheckNodePort: Int?

    public init(
        type: String? = nil, clusterIP: String? = nil, clusterIPs: [String]? = nil, externalIPs: [String]? = nil,
        ports: [ServicePort]? = nil, sessionAffinity: String? = nil,
        sessionAffinityConfig: SessionAffinityConfig? = nil,
        externalTrafficPolicy: String? = nil, internalTrafficPolicy: String? = nil
    ) {
        self.type = type
        self.clusterIP = clusterIP
        self.clusterIPs = clusterIPs
        self.externalIPs = externalIPs
        self.ports = ports
        self.sessionAffinity = sessionAffinity
        self.sessionAffinityConfig = sessionAffinityConfig
        self.externalTrafficPolicy = externalTrafficPolicy
        self.internalTrafficPolicy = internalTrafficPolicy
    }
}

public struct ServicePort: Codable, Sendable, Hashable {
    public var name: String?
    /// `TCP` (the default), `UDP` or `SCTP`.
    public var `protocol`: String?
    public var port: Int
    public var targetPort: IntOrString?
    public var nodePort: Int?

    public init(
        name: String? = nil, protocol: String? = nil, port: Int, targetPort: IntOrString? = nil, nodePort: Int? = nil
    ) {
        self.name = name
        self.protocol = `protocol`
        self.port = port
        self.targetPort = targetPort
        self.nodePort = nodePort
    }
}

public struct SessionAffinityConfig: Codable, Sendable, Hashable {
    public var clientIP: ClientIPConfig?

    public init(clientIP: ClientIPConfig?) { self.clientIP = clientIP }
}

public struct ClientIPConfig: Codable, Sendable, Hashable {
    public var timeoutSeconds: Int?

    public init(timeoutSeconds: Int?) { self.timeoutSeconds = timeoutSeconds }
}

public struct ServiceStatus: Codable, Sendable, Hashable {
    public var loadBalancer: LoadBalancerStatus?

    public init(loadBalancer: LoadBalancerStatus?) { self.loadBalancer = loadBalancer }
}

public struct LoadBalancerStatus: Codable, Sendable, Hashable {
    public var ingress: [LoadBalancerIngress]?

    public init(ingress: [LoadBalancerIngress]?) { self.ingress = ingress }
}

public struct LoadBalancerIngress: Codable, Sendable, Hashable {
    public var ip: String?
    public var hostname: String?
    /// `VIP` (the default) or `Proxy` (Kubernetes 1.30+): a `Proxy` address is not programmed on nodes.
    public var ipMode: String?

    public init(ip: String? = nil, hostname: String? = nil, ipMode: String? = nil) {
        self.ip = ip
        self.hostname = hostname
        self.ipMode = ipMode
    }
}

/// An EndpointSlice (`discovery.k8s.io/v1`).
public struct EndpointSlice: Codable, Sendable, Hashable {
    public var metadata: ObjectMeta
    /// `IPv4`, `IPv6` or `FQDN`.
    public var addressType: String
    public var endpoints: [Endpoint]?
    public var ports: [EndpointPort]?

    public init(metadata: ObjectMeta, addressType: String, endpoints: [Endpoint]?, ports: [EndpointPort]?) {
        self.metadata = metadata
        self.addressType = addressType
        self.endpoints = endpoints
        self.ports = ports
    }

    /// The label that names the Service a slice belongs to.
    public static let serviceNameLabel = "kubernetes.io/service-name"

    /// The name of the Service this slice belongs to, from its label.
    public var serviceName: String? { metadata.labels?[Self.serviceNameLabel] }
}

public struct Endpoint: Codable, Sendable, Hashable {
    public var addresses: [String]
    public var conditions: EndpointConditions?
    public var nodeName: String?
    public var zone: String?
    public var hints: EndpointHints?

    public init(
        addresses: [String], conditions: EndpointConditions? = nil, nodeName: String? = nil,
        hints: EndpointHints? = nil
    ) {
        self.addresses = addresses
        self.conditions = conditions
        self.nodeName = nodeName
        self.hints = hints
    }
}

/// Where the EndpointSlice controller asks proxies to use an endpoint (topology-aware routing and
/// `trafficDistribution`).
public struct EndpointHints: Codable, Sendable, Hashable {
    public var forZones: [HintName]?
    public var forNodes: [HintName]?

    public init(forZones: [HintName]? = nil, forNodes: [HintName]? = nil) {
        self.forZones = forZones
        self.forNodes = forNodes
    }
}

/// One zone or node an endpoint is hinted for.
public struct HintName: Codable, Sendable, Hashable {
    public var name: String

    public init(name: String) { self.name = name }
}

public struct EndpointConditions: Codable, Sendable, Hashable {
    /// A missing value means ready.
    public var ready: Bool?
    /// A missing value means serving.
    public var serving: Bool?
    public var terminating: Bool?

    public init(ready: Bool? = nil, serving: Bool? = nil, terminating: Bool? = nil) {
        self.ready = ready
        self.serving = serving
        self.terminating = terminating
    }

    // Missing conditions are read as kube-proxy reads them (pkg/proxy/endpointslicecache.go, Kubernetes 1.34).
    public var isReady: Bool { ready ?? true }
    public var isServing: Bool { serving ?? true }
    public var isTerminating: Bool { terminating ?? false }
}

public struct EndpointPort: Codable, Sendable, Hashable {
    public var name: String?
    public var `protocol`: String?
    /// A missing port means "all ports" in the API; the proxy cannot program that and skips it.
    public var port: Int?

    public init(name: String? = nil, protocol: String? = nil, port: Int?) {
        self.name = name
        self.protocol = `protocol`
        self.port = port
    }
}

/// A legacy Endpoints object (`v1`).
public struct Endpoints: Codable, Sendable, Hashable {
    public var metadata: ObjectMeta
    public var subsets: [EndpointSubset]?

    public init(metadata: ObjectMeta, subsets: [EndpointSubset]?) {
        self.metadata = metadata
        self.subsets = subsets
    }
}

public struct EndpointSubset: Codable, Sendable, Hashable {
    public var addresses: [EndpointAddress]?
    public var notReadyAddresses: [EndpointAddress]?
    public var ports: [EndpointPort]?

    public init(addresses: [EndpointAddress]?, notReadyAddresses: [EndpointAddress]? = nil, ports: [EndpointPort]?) {
        self.addresses = addresses
        self.notReadyAddresses = notReadyAddresses
        self.ports = ports
    }
}

public struct EndpointAddress: Codable, Sendable, Hashable {
    public var ip: String
    public var nodeName: String?

    public init(ip: String, nodeName: String? = nil) {
        self.ip = ip
        self.nodeName = nodeName
    }
}

/// A Node (`v1`): the proxy reads its own, for its zone, pod CIDRs and whether it is going away.
public struct Node: Codable, Sendable, Hashable {
    public var metadata: ObjectMeta
    public var spec: NodeSpec?
    public var status: NodeStatus?

    public init(metadata: ObjectMeta, spec: NodeSpec? = nil, status: NodeStatus? = nil) {
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        metadata = try container.decodeIfPresent(ObjectMeta.self, forKey: .metadata) ?? ObjectMeta()
        spec = try container.decodeIfPresent(NodeSpec.self, forKey: .spec)
        status = try container.decodeIfPresent(NodeStatus.self, forKey: .status)
    }

    /// The well-known label that names the node's zone.
    public static let zoneLabel = "topology.kubernetes.io/zone"
    /// The taint the cluster autoscaler puts on a node it is about to remove.
    public static let autoscalerDeletionTaint = "ToBeDeletedByClusterAutoscaler"

    /// The node's zone, from its label.
    public var zone: String? { metadata.labels?[Self.zoneLabel] }
}

public struct NodeSpec: Codable, Sendable, Hashable {
    public var podCIDR: String?
    public var podCIDRs: [String]?
    public var taints: [Taint]?

    public init(podCIDR: String? = nil, podCIDRs: [String]? = nil, taints: [Taint]? = nil) {
        self.podCIDR = podCIDR
        self.podCIDRs = podCIDRs
        self.taints = taints
    }
}

public struct NodeStatus: Codable, Sendable, Hashable {
    public var addresses: [NodeAddress]?

    public init(addresses: [NodeAddress]? = nil) { self.addresses = addresses }
}

/// One of a Node's addresses: `type` is `InternalIP`, `ExternalIP`, `Hostname`, ...
public struct NodeAddress: Codable, Sendable, Hashable {
    public var type: String
    public var address: String

    public init(type: String, address: String) {
        self.type = type
        self.address = address
    }
}

public struct Taint: Codable, Sendable, Hashable {
    public var key: String
    public var value: String?
    public var effect: String?

    public init(key: String, value: String? = nil, effect: String? = nil) {
        self.key = key
        self.value = value
        self.effect = effect
    }
}

/// A ServiceCIDR (`networking.k8s.io/v1`, GA in Kubernetes 1.33): a range the API server allocates ClusterIPs
/// from. A cluster has the `kubernetes` one its API server makes from `--service-cluster-ip-range`, and may have
/// more. The proxy reads them for the cluster's service ranges as a whole.
public struct ServiceCIDR: Codable, Sendable, Hashable {
    public var metadata: ObjectMeta
    public var spec: ServiceCIDRSpec?
    public var status: ServiceCIDRStatus?

    public init(metadata: ObjectMeta, spec: ServiceCIDRSpec? = nil, status: ServiceCIDRStatus? = nil) {
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        metadata = try container.decodeIfPresent(ObjectMeta.self, forKey: .metadata) ?? ObjectMeta()
        spec = try container.decodeIfPresent(ServiceCIDRSpec.self, forKey: .spec)
        status = try container.decodeIfPresent(ServiceCIDRStatus.self, forKey: .status)
    }

    /// The condition the API server's ServiceCIDR controller sets: `True` once the ranges may be allocated from.
    public static let readyCondition = "Ready"
    /// The `Ready` condition's reason while a ServiceCIDR being deleted still has Services' addresses in its ranges.
    public static let terminatingReason = "Terminating"

    /// Whether the API server marked the ServiceCIDR ready (its `Ready` condition is `True`).
    public var isReady: Bool {
        status?.conditions?.contains { $0.type == Self.readyCondition && $0.status == "True" } ?? false
    }

    /// Whether the ServiceCIDR is being deleted. Its finalizer keeps it, and its ranges keep their ClusterIPs,
    /// until no Service holds an address that only it covers: such a ServiceCIDR still has Services to proxy.
    public var isBeingDeleted: Bool { metadata.deletionTimestamp != nil }

    /// The ranges, parsed and checked as the API server checks them.
    /// - Throws: ``ServiceCIDRRanges/Invalid`` with each problem, when the object was not validated
    ///   (``ManifestValidator`` refuses such an object).
    public func ranges() throws(ServiceCIDRRanges.Invalid) -> ServiceCIDRRanges {
        try ServiceCIDRRanges(spec?.cidrs ?? [])
    }
}

public struct ServiceCIDRSpec: Codable, Sendable, Hashable {
    /// One range, or one of each family (`10.96.0.0/12`, `fd00:10:96::/108`); the API makes them immutable.
    public var cidrs: [String]?

    public init(cidrs: [String]? = nil) { self.cidrs = cidrs }
}

public struct ServiceCIDRStatus: Codable, Sendable, Hashable {
    public var conditions: [Condition]?

    public init(conditions: [Condition]? = nil) { self.conditions = conditions }
}

/// One of an object's status conditions (`metav1.Condition`). The API requires every field but
/// `observedGeneration`; only `type` and `status` are required here, the rest is for log lines.
public struct Condition: Codable, Sendable, Hashable {
    /// Such as `Ready`.
    public var type: String
    /// `True`, `False` or `Unknown`.
    public var status: String
    /// A CamelCase word for the last transition, such as `OverlappingServiceCIDR`.
    public var reason: String?
    public var message: String?
    /// RFC 3339, as the API writes it.
    public var lastTransitionTime: String?

    public init(
        type: String, status: String, reason: String? = nil, message: String? = nil, lastTransitionTime: String? = nil
    ) {
        self.type = type
        self.status = status
        self.reason = reason
        self.message = message
        self.lastTransitionTime = lastTransitionTime
    }
}
