/// The labels that take an object away from this proxy, as kube-proxy reads them.
public enum ProxyLabels {
    /// Names another proxy that serves the Service (set by the user on a Service, copied to its slices).
    public static let serviceProxyName = "service.kubernetes.io/service-proxy-name"
    /// Set by the EndpointSlice controller on the slices of a headless Service.
    public static let headless = "service.kubernetes.io/headless"

    /// kube-proxy's label selector on its Service and EndpointSlice lists and watches
    /// (cmd/kube-proxy/app/server.go, Kubernetes 1.34).
    public static let selector = "!\(serviceProxyName),!\(headless)"

    /// Whether an object passes ``selector``: it carries neither label, whatever their values.
    public static func isForThisProxy(_ metadata: ObjectMeta) -> Bool {
        guard let labels = metadata.labels else { return true }
        return labels[serviceProxyName] == nil && labels[headless] == nil
    }
}
