/// An object with the place it came from, so problems found later can still name file, document and field.
public struct Located<Object: Sendable>: Sendable {
    public var object: Object
    public var location: ObjectLocation

    public init(_ object: Object, at location: ObjectLocation) {
        self.object = object
        self.location = location
    }
}

/// Identifies a namespaced object.
public struct ObjectName: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var namespace: String
    public var name: String

    public init(namespace: String, name: String) {
        self.namespace = namespace
        self.name = name
    }

    public var description: String { "\(namespace)/\(name)" }

    public static func < (lhs: ObjectName, rhs: ObjectName) -> Bool {
        (lhs.namespace, lhs.name) < (rhs.namespace, rhs.name)
    }
}

extension ObjectMeta {
    /// The object's name in its namespace (`default` when none is given, as `kubectl apply` does).
    public var objectName: ObjectName { ObjectName(namespace: namespace ?? "default", name: name ?? "") }
}

/// The Services, EndpointSlices, Endpoints, Nodes and ServiceCIDRs of an input, valid and ready to translate.
public struct ManifestSet: Sendable {
    public var services: [Located<Service>] = []
    public var endpointSlices: [Located<EndpointSlice>] = []
    public var endpoints: [Located<Endpoints>] = []
    /// Nodes; the proxy uses only its own (the one named by `--node-name`).
    public var nodes: [Located<Node>] = []
    /// The cluster's service ranges (each ServiceCIDR's ``ServiceCIDR/ranges()`` passed validation).
    public var serviceCIDRs: [Located<ServiceCIDR>] = []
    /// Things worth saying that do not stop the input from being used (e.g. a slice without a Service label).
    public var warnings: [ManifestProblem] = []

    public init() {}

    /// Whether the input holds nothing to proxy (a Node or a ServiceCIDR alone is not something to proxy).
    public var isEmpty: Bool { services.isEmpty && endpointSlices.isEmpty && endpoints.isEmpty }

    /// The Node named `name`, if the input has it.
    public func node(named name: String) -> Node? {
        nodes.first { $0.object.metadata.name == name }?.object
    }
}
