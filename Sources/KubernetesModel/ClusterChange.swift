/// A change to the objects the proxy reads: everything at once (a file read again, the first lists of the API),
/// or one object added, changed or deleted (a watch event).
///
/// Changes are applied in order; ``everything(_:)`` replaces whatever came before it.
public enum ClusterChange: Sendable {
    /// Every object there is now.
    case everything(ManifestSet)
    /// A Service as it is now, or `nil` when it was deleted.
    case service(ObjectName, Located<Service>?)
    /// An EndpointSlice as it is now, or `nil` when it was deleted.
    case endpointSlice(ObjectName, Located<EndpointSlice>?)
    /// A Node as it is now, or `nil` when it was deleted.
    case node(ObjectName, Located<Node>?)
    /// A ServiceCIDR as it is now, or `nil` when it was deleted.
    case serviceCIDR(ObjectName, Located<ServiceCIDR>?)
}
