import IPVSModel
import KubernetesModel
import ProxyRules

/// One backend of a Service port, merged from all the Service's EndpointSlices (or its legacy Endpoints).
struct BackendEndpoint: Hashable {
    var address: IPAddress
    var port: UInt16
    var isReady: Bool
    var isServing: Bool
    var isTerminating: Bool
    var nodeName: String?
    /// The zones and nodes the EndpointSlice controller hinted it for; empty when it gave no hints.
    var zoneHints: Set<String> = []
    var nodeHints: Set<String> = []
}

/// What translation reads of an EndpointSlice, kept in its place: the Service it serves, its ports, and each
/// endpoint's first address with its conditions, node and hints (much less memory than the decoded slice, which
/// matters at 100,000 endpoints).
struct SliceEndpoints: Sendable, Hashable {
    /// The Service the slice serves, or `nil` for one translation ignores: a slice without the label has no
    /// Service, FQDN slices cannot be proxied, and labelled ones are another proxy's or a headless Service's.
    var service: ObjectName?
    var ports: [EndpointPort]
    /// Their `port` is 0: each Service port takes the slice's port of its name.
    var endpoints: [BackendEndpoint]

    init(_ slice: EndpointSlice) {
        if let serviceName = slice.serviceName, slice.addressType != "FQDN", ProxyLabels.isForThisProxy(slice.metadata)
        {
            service = ObjectName(namespace: slice.metadata.namespace ?? "default", name: serviceName)
        }
        ports = slice.ports ?? []
        endpoints = (slice.endpoints ?? []).compactMap { endpoint in
            // kube-proxy proxies to an endpoint's first address only.
            guard let text = endpoint.addresses.first, let address = IPAddress(text) else { return nil }
            let conditions = endpoint.conditions ?? EndpointConditions()
            return BackendEndpoint(
                address: address, port: 0, isReady: conditions.isReady, isServing: conditions.isServing,
                isTerminating: conditions.isTerminating, nodeName: endpoint.nodeName,
                zoneHints: Set((endpoint.hints?.forZones ?? []).map(\.name)),
                nodeHints: Set((endpoint.hints?.forNodes ?? []).map(\.name)))
        }
    }
}

/// The endpoints of one Service: its EndpointSlices (in name order), or its legacy Endpoints when it has no slice
/// (as the mirroring controller would have made one).
struct ServiceEndpoints: Hashable {
    var slices: [SliceEndpoints] = []
    var endpoints: Endpoints?

    /// The distinct backends of one Service port (matched by port name and protocol).
    func backends(of port: ServicePort) -> [BackendEndpoint] {
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
        if !slices.isEmpty {
            for slice in slices {
                guard
                    let slicePort = slice.ports.first(where: {
                        ($0.name ?? "") == portName && ($0.protocol ?? "TCP") == transportProtocol
                    }), let number = slicePort.port
                else { continue }
                for var endpoint in slice.endpoints {
                    endpoint.port = UInt16(number)
                    add(endpoint)
                }
            }
        } else if let endpoints {
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
