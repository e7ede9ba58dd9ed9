import IPVSModel
import KubernetesModel
import ProxyRules
import Translation

/// Small builders so each translation case states only what it is about.
func makeService(
    _ name: String, namespace: String = "shop", type: String? = nil, clusterIPs: [String] = ["10.96.0.10"],
    ports: [ServicePort] = [ServicePort(name: "http", port: 80, targetPort: .string("http"))],
    externalIPs: [String]? = nil, loadBalancer: [LoadBalancerIngress]? = nil, affinityTimeout: Int?? = .none,
    externalTrafficPolicy: String? = nil, internalTrafficPolicy: String? = nil, annotations: [String: String]? = nil
) -> Service {
    var spec = ServiceSpec(
        type: type, clusterIP: clusterIPs.first, clusterIPs: clusterIPs, externalIPs: externalIPs, ports: ports,
        externalTrafficPolicy: externalTrafficPolicy, internalTrafficPolicy: internalTrafficPolicy)
    if case .some(let timeout) = affinityTimeout {
        spec.sessionAffinity = "ClientIP"
        spec.sessionAffinityConfig = SessionAffinityConfig(clientIP: ClientIPConfig(timeoutSeconds: timeout))
    }
    return Service(
        metadata: ObjectMeta(name: name, namespace: namespace, annotations: annotations), spec: spec,
        status: loadBalancer.map { ServiceStatus(loadBalancer: LoadBalancerStatus(ingress: $0)) })
}

func makeSlice(
    _ name: String, service: String, namespace: String = "shop", addressType: String = "IPv4",
    endpoints: [Endpoint], ports: [EndpointPort] = [EndpointPort(name: "http", port: 8080)]
) -> EndpointSlice {
    EndpointSlice(
        metadata: ObjectMeta(name: name, namespace: namespace, labels: [EndpointSlice.serviceNameLabel: service]),
        addressType: addressType, endpoints: endpoints, ports: ports)
}

func ready(_ address: String, node: String? = nil) -> Endpoint {
    Endpoint(
        addresses: [address], conditions: EndpointConditions(ready: true, serving: true, terminating: false),
        nodeName: node)
}

func notReady(_ address: String) -> Endpoint {
    Endpoint(addresses: [address], conditions: EndpointConditions(ready: false, serving: false, terminating: false))
}

func terminating(_ address: String) -> Endpoint {
    Endpoint(addresses: [address], conditions: EndpointConditions(ready: false, serving: true, terminating: true))
}

func manifest(services: [Service], slices: [EndpointSlice] = [], endpoints: [Endpoints] = []) -> ManifestSet {
    var set = ManifestSet()
    let location = ObjectLocation(file: "test.yaml", document: 1)
    set.services = services.map { Located($0, at: location) }
    set.endpointSlices = slices.map { Located($0, at: location) }
    set.endpoints = endpoints.map { Located($0, at: location) }
    return set
}

let node = NodeContext(nodeName: "node-a", nodeAddresses: [IPAddress("192.168.1.10")!, IPAddress("fd00:1::10")!])

func translate(_ set: ManifestSet, node context: NodeContext = node) throws -> DesiredState {
    try Translator.translate(set, node: context)
}

func tcp(_ address: String, _ port: UInt16) -> VirtualServerKey { .address(.tcp, IPAddress(address)!, port: port) }

extension DesiredState {
    /// The real servers of a virtual server as `address:port` strings, sorted.
    func reals(_ key: VirtualServerKey) -> [String]? {
        virtualServers[key]?.realServers.map(\.key.description).sorted()
    }
}

/// A ready endpoint with topology hints.
func hinted(_ address: String, node: String? = nil, zones: [String] = [], nodes: [String] = []) -> Endpoint {
    var endpoint = ready(address, node: node)
    endpoint.hints = EndpointHints(
        forZones: zones.isEmpty ? nil : zones.map(HintName.init),
        forNodes: nodes.isEmpty ? nil : nodes.map(HintName.init))
    return endpoint
}
