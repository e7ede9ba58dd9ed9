import IPVS
import IPVSModel

/// A ClusterIP Service in namespace `lab` with one TCP port (`web`, to 8080) and one EndpointSlice of ready
/// endpoints, as manifest YAML.
func service(_ name: String, clusterIP: String, endpoints: [String], port: Int = 80) -> String {
    """
    apiVersion: v1
    kind: Service
    metadata: {name: \(name), namespace: lab}
    spec:
      clusterIP: \(clusterIP)
      ports: [{name: web, port: \(port), protocol: TCP, targetPort: 8080}]
    ---
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata:
      name: \(name)-1
      namespace: lab
      labels: {kubernetes.io/service-name: \(name)}
    addressType: IPv4
    ports: [{name: web, port: 8080, protocol: TCP}]
    endpoints:
    \(endpoints.map { "- {addresses: [\"\($0)\"], conditions: {ready: true}}" }.joined(separator: "\n"))

    """
}

/// The virtual server of a `service(...)` manifest's Service (its port 80 on its cluster IP).
func serviceKey(_ clusterIP: String) -> VirtualServerKey {
    .address(.tcp, IPAddress(clusterIP)!, port: 80)
}

extension IPVSHandle {
    /// The keys of every virtual server in the table.
    func virtualServerKeys() throws -> Set<VirtualServerKey> {
        Set(try virtualServers().map(\.server.key))
    }
}
