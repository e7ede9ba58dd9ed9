import IPVSModel
import KubernetesModel
import ProxyRules

/// Turns Services and their endpoints into the IPVS state kube-proxy's IPVS mode would program.
///
/// Per Service port: a virtual server at each cluster IP, each external IP, each load-balancer ingress IP
/// (not `ipMode: Proxy`) and, with a node port, each node address of the Service's families. Each gets
/// the serving endpoints of its family as real servers (weight 1, masquerade). Headless and ExternalName
/// Services get nothing. `sessionAffinity: ClientIP` makes every virtual server of the Service persistent.
package enum Translator {
    /// The annotation that overrides the scheduler for one Service (beyond kube-proxy).
    package static let schedulerAnnotation = "ipvs-proxy.io/scheduler"
    /// The persistence timeout when `sessionAffinity: ClientIP` gives none: 3 hours, as Kubernetes.
    package static let defaultAffinityTimeout: UInt32 = 10800

    /// - Throws: ``ManifestErrors`` when a Service's scheduler annotation names no kernel scheduler.
    package static func translate(_ set: ManifestSet, node: NodeContext) throws(ManifestErrors) -> DesiredState {
        let (state, problems) = translateSkippingInvalid(set, node: node)
        guard problems.isEmpty else { throw ManifestErrors(problems) }
        return state
    }

    /// Translates every valid Service and returns the problems of those it skipped (for the daemon, which
    /// keeps everything else programmed when one object is bad).
    package static func translateSkippingInvalid(
        _ set: ManifestSet, node: NodeContext
    ) -> (state: DesiredState, skipped: [ManifestProblem]) {
        var translation = LiveTranslation(node: node)
        translation.apply([.everything(set)])
        let state = translation.takeDesired()
        return (state, translation.problems)
    }

    /// One Service's share of the desired state, translated on its own; or its problem.
    static func share(
        of located: Located<Service>, endpoints: ServiceEndpoints, node: NodeContext
    ) -> Result<ServiceShare, ManifestProblem> {
        let scheduler: Scheduler
        do {
            scheduler = try schedulerOf(located.object, default: node.scheduler)
        } catch {
            return .failure(
                ManifestProblem(
                    at: located.location, field: "metadata.annotations[\"\(schedulerAnnotation)\"]",
                    error.description))
        }
        var share = ServiceShare()
        translate(located.object, scheduler: scheduler, endpoints: endpoints, node: node, into: &share)
        return .success(share)
    }

    /// A LoadBalancer Service's `loadBalancerSourceRanges` (validated as CIDRs when the Service was read); none
    /// for other types, as kube-proxy.
    static func sourceRanges(of service: Service) -> [IPNetwork] {
        guard service.spec.type == "LoadBalancer" else { return [] }
        return (service.spec.loadBalancerSourceRanges ?? []).compactMap { IPNetwork($0.trimmingSpaces) }
    }

    /// The sources let in to a load-balancer IP: its Service's ranges of that family and, when one of them holds
    /// an address of this node, the load-balancer IP itself (this node's own connections to it come from there),
    /// as kube-proxy allows.
    static func allowed(_ ranges: [IPNetwork], to address: IPAddress, nodeAddresses: Set<IPAddress>) -> [IPNetwork] {
        let sameFamily = ranges.filter { $0.family == address.family }
        let holdsNode = sameFamily.contains { range in nodeAddresses.contains { range.contains($0) } }
        return holdsNode ? sameFamily + [IPNetwork(host: address)] : sameFamily
    }

    static func schedulerOf(_ service: Service, default scheduler: Scheduler) throws(UnknownSchedulerError) -> Scheduler
    {
        guard let name = service.metadata.annotations?[schedulerAnnotation] else { return scheduler }
        return try Scheduler(validating: name)
    }

    private static func translate(
        _ service: Service, scheduler: Scheduler, endpoints: ServiceEndpoints, node: NodeContext,
        into share: inout ServiceShare
    ) {
        let spec = service.spec
        guard spec.type != "ExternalName", ProxyLabels.isForThisProxy(service.metadata) else { return }
        let clusterIPs = (spec.clusterIPs?.isEmpty == false ? spec.clusterIPs! : [spec.clusterIP].compactMap { $0 })
            .filter { $0 != "None" && !$0.isEmpty }.compactMap(IPAddress.init)
        // Headless (clusterIP None) and IP-less Services are resolved by DNS, not proxied.
        guard !clusterIPs.isEmpty else { return }
        let families = Set(clusterIPs.map(\.family))
        let name = service.metadata.objectName
        // kube-proxy runs one proxier per family: addresses of a family the Service does not have are ignored.
        let externalIPs = (spec.externalIPs ?? []).compactMap(IPAddress.init).filter { families.contains($0.family) }
        let loadBalancerIPs =
            spec.type == "LoadBalancer"
            ? (service.status?.loadBalancer?.ingress ?? []).filter { $0.ipMode != "Proxy" }.compactMap {
                $0.ip.flatMap(IPAddress.init)
            }.filter { families.contains($0.family) } : []
        let hasNodePorts = spec.type == "NodePort" || spec.type == "LoadBalancer"
        let nodeAddresses = node.nodeAddresses.filter { families.contains($0.family) }
        let affinityTimeout: UInt32 =
            spec.sessionAffinity == "ClientIP"
            ? spec.sessionAffinityConfig?.clientIP?.timeoutSeconds.map { UInt32($0) } ?? defaultAffinityTimeout : 0
        // kube-proxy sets this flag (IP_VS_SVC_F_SCHED2, "mh-port") with Maglev hashing; so does ipvs-proxy.
        let flags: ServiceFlags = scheduler == .maglevHashing ? .schedulerFlag2 : []
        let internalLocal = spec.internalTrafficPolicy == "Local"
        let externalLocal = hasNodePorts && spec.externalTrafficPolicy == "Local"
        let sourceRanges = Self.sourceRanges(of: service)
        let selectingNode = SelectingNode(name: node.nodeName, zone: node.zone)
        var localReadyAddresses: Set<IPAddress> = []

        for port in spec.ports ?? [] {
            let transportProtocol = TransportProtocol(name: port.protocol ?? "TCP") ?? .tcp
            let portName = ServicePortName(
                service: name.serviceName, port: port.name.flatMap { $0.isEmpty ? nil : $0 } ?? "\(port.port)")
            let backends = endpoints.backends(of: port)
            let nodePort = hasNodePorts ? port.nodePort.flatMap { $0 > 0 ? $0 : nil } : nil
            for endpoint in backends where endpoint.isReady && endpoint.nodeName == node.nodeName {
                localReadyAddresses.insert(endpoint.address)
            }
            var categoriesByFamily: [AddressFamily: EndpointCategories] = [:]
            func categories(_ family: AddressFamily) -> EndpointCategories {
                if let known = categoriesByFamily[family] { return known }
                let policy = TrafficPolicy(
                    internalLocal: internalLocal, externalLocal: externalLocal,
                    externallyAccessible: nodePort != nil
                        || (externalIPs + loadBalancerIPs).contains { $0.family == family })
                let made = EndpointCategories(
                    backends.filter { $0.address.family == family }, policy: policy, node: selectingNode)
                if made.hasAnyEndpoints && made.local.isEmpty {
                    if internalLocal { share.withoutLocalEndpoints.insert(.internal) }
                    if externalLocal && policy.externallyAccessible { share.withoutLocalEndpoints.insert(.external) }
                }
                categoriesByFamily[family] = made
                return made
            }

            func add(_ address: IPAddress, port number: Int, kind: ServiceAddressKind) {
                let key = VirtualServerKey.address(transportProtocol, address, port: UInt16(number))
                if let existing = share.virtualServers[key] {
                    if existing.servicePort != portName {
                        share.warnings.append(Self.conflict(portName, wants: key, heldBy: existing.servicePort))
                    }
                    return
                }
                let external = kind != .clusterIP
                let selected = categories(address.family).realServers(local: external ? externalLocal : internalLocal)
                share.virtualServers[key] = DesiredVirtualServer(
                    server: VirtualServer(
                        key, scheduler: scheduler, flags: flags, persistenceTimeout: affinityTimeout),
                    realServers: selected.map { RealServer($0.address, port: $0.port) }, servicePort: portName,
                    kind: kind, keepsClientAddress: external && externalLocal,
                    sourceRanges: kind == .loadBalancerIP
                        ? Self.allowed(sourceRanges, to: address, nodeAddresses: node.localAddresses) : [],
                    localRealServers: selected.filter { $0.nodeName == node.nodeName }.map {
                        RealServerKey($0.address, port: $0.port)
                    })
            }

            for address in clusterIPs {
                add(address, port: port.port, kind: .clusterIP)
                share.serviceAddresses.insert(address)
            }
            for (addresses, kind) in [(externalIPs, ServiceAddressKind.externalIP), (loadBalancerIPs, .loadBalancerIP)]
            {
                for address in addresses {
                    add(address, port: port.port, kind: kind)
                    // An address the node already has on another interface needs no binding (kube-proxy's rule).
                    if !node.localAddresses.contains(address) { share.serviceAddresses.insert(address) }
                }
            }
            if let nodePort {
                for address in nodeAddresses { add(address, port: nodePort, kind: .nodePort) }
            }
        }
        // kube-proxy's NeedsHealthCheck: a LoadBalancer Service with externalTrafficPolicy Local.
        if spec.type == "LoadBalancer", externalLocal, let port = spec.healthCheckNodePort, port > 0 {
            var counts: [AddressFamily: Int] = [:]
            for family in families { counts[family] = localReadyAddresses.filter { $0.family == family }.count }
            share.healthCheck = HealthCheck(port: UInt16(port), localEndpoints: counts)
        }
    }

    /// The warning for a Service port that wants a virtual server another port has.
    static func conflict(_ port: ServicePortName, wants key: VirtualServerKey, heldBy holder: ServicePortName) -> String
    {
        "\(port) wants \(key), which \(holder) has; skipped"
    }
}

extension String {
    /// Kubernetes trims spaces around each source range (`" 10.0.0.0/8 "` is valid there).
    var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
