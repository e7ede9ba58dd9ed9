import IPVSModel
import KubernetesModel

/// One backend of a Service port, merged from all the Service's EndpointSlices (or its legacy Endpoints).
struct BackendEndpoint: Hashable {
    var address: IPAddress
    var port: UInt16
    var isReady: Bool
    var isServing: Bool
    var isTerminating: Bool
    var nodeName: String?
}

/// The endpoints of every Service, indexed for translation: EndpointSlices first, and a Service's legacy
/// Endpoints only when it has no slice (as the mirroring controller would have made one).
struct EndpointIndex {
    private var slicesByService: [ObjectName: [EndpointSlice]] = [:]
    private var endpointsByService: [ObjectName: Endpoints] = [:]

    init(_ set: ManifestSet) {
        for located in set.endpointSlices {
            let slice = located.object
            // A slice without the label has no Service, and FQDN slices cannot be proxied.
            guard let serviceName = slice.serviceName, slice.addressType != "FQDN" else { continue }
            let service = ObjectName(namespace: slice.metadata.namespace ?? "default", name: serviceName)
            slicesByService[service, default: []].append(slice)
        }
        for located in set.endpoints {
            endpointsByService[located.object.metadata.objectName] = located.object
        }
    }

    /// The distinct backends of one Service port (matched by port name and protocol).
    func backends(of service: ObjectName, port: ServicePort) -> [BackendEndpoint] {
        let portName = port.name ?? ""
        let transportProtocol = port.protocol ?? "TCP"
        var seen: [EndpointKey: Int] = [:]
        var result: [BackendEndpoint] = []
        func add(_ backend: BackendEndpoint) {
            let key = EndpointKey(address: backend.address, port: backend.port)
            if let index = seen[key] {
                // The same endpoint in two slices (as during a slice split): the readier copy wins.
                if backend.isReady && !result[index].isReady { result[index] = backend }
            } else {
                seen[key] = result.count
                result.append(backend)
            }
        }
        if let slices = slicesByService[service] {
            for slice in slices {
                guard
                    let slicePort = slice.ports?.first(where: {
                        ($0.name ?? "") == portName && ($0.protocol ?? "TCP") == transportProtocol
                    }), let number = slicePort.port
                else { continue }
                for endpoint in slice.endpoints ?? [] {
                    let conditions = endpoint.conditions ?? EndpointConditions()
                    for text in endpoint.addresses {
                        guard let address = IPAddress(text) else { continue }
                        add(
                            BackendEndpoint(
                                address: address, port: UInt16(number), isReady: conditions.isReady,
                                isServing: conditions.isServing, isTerminating: conditions.isTerminating,
                                nodeName: endpoint.nodeName))
                    }
                }
            }
        } else if let endpoints = endpointsByService[service] {
            for subset in endpoints.subsets ?? [] {
                guard
                    let subsetPort = subset.ports?.first(where: {
                        ($0.name ?? "") == portName && ($0.protocol ?? "TCP") == transportProtocol
                    }), let number = subsetPort.port
                else { continue }
                for (addresses, ready) in [(subset.addresses ?? [], true), (subset.notReadyAddresses ?? [], false)] {
                    for entry in addresses {
                        guard let address = IPAddress(entry.ip) else { continue }
                        add(
                            BackendEndpoint(
                                address: address, port: UInt16(number), isReady: ready, isServing: ready,
                                isTerminating: false, nodeName: entry.nodeName))
                    }
                }
            }
        }
        return result
    }

    private struct EndpointKey: Hashable {
        var address: IPAddress
        var port: UInt16
    }
}

/// Chooses the endpoints that serve, as kube-proxy does.
enum EndpointSelection {
    /// Ready endpoints; when none is ready, the ones still serving while terminating; none otherwise.
    static func serving(_ endpoints: [BackendEndpoint]) -> [BackendEndpoint] {
        let ready = endpoints.filter(\.isReady)
        return ready.isEmpty ? endpoints.filter { $0.isServing && $0.isTerminating } : ready
    }

    /// With traffic policy `Local`, the serving endpoints on this node; when there is none, all serving
    /// endpoints (kube-proxy's IPVS mode does this so that local clients still reach the Service).
    static func select(_ endpoints: [BackendEndpoint], local: Bool, nodeName: String) -> [BackendEndpoint] {
        if local {
            let onNode = serving(endpoints.filter { $0.nodeName == nodeName })
            if !onNode.isEmpty { return onNode }
        }
        return serving(endpoints)
    }
}
