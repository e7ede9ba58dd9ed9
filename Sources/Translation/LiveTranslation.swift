import IPVSModel
import KubernetesModel
import ProxyRules

/// One Service's part of the desired state: what translating it alone gives.
struct ServiceShare: Sendable, Equatable {
    /// Within one Service the first port to want a virtual server has it (the others are warned about).
    var virtualServers = SmallMap<VirtualServerKey, DesiredVirtualServer>()
    var serviceAddresses = SmallSet<IPAddress>()
    var healthCheck: HealthCheck?
    var withoutLocalEndpoints: Set<TrafficPolicyKind> = []
    var warnings: [String] = []
}

/// The desired state of a changing cluster, kept up to date change by change: a change re-translates only the
/// Services it concerns (a slice's change, its Service), and says which virtual servers and addresses it touched,
/// so that a sync can plan only those (``DesiredState/derivation``).
///
/// The result is the same as translating every object at once (``Translator/translateSkippingInvalid(_:node:)``
/// is this, fed everything): each Service is translated on its own into a share, and the shares are merged.
/// Where two Services want one virtual server, the one first by name has it, as in a translation in name order.
package struct LiveTranslation: Sendable {
    package private(set) var node: NodeContext
    private var services: [ObjectName: Located<Service>] = [:]
    private var slices: [ObjectName: SliceEndpoints] = [:]
    /// The slices each Service has, by name (only those translation uses).
    private var slicesOfService: [ObjectName: Set<ObjectName>] = [:]
    private var endpoints: [ObjectName: Endpoints] = [:]
    private var nodes: [ObjectName: Node] = [:]
    /// Kept for the service ranges' routes (issue 23); nothing is translated from them yet.
    private var serviceCIDRObjects: [ObjectName: Located<ServiceCIDR>] = [:]

    private var shares: [ObjectName: ServiceShare] = [:]
    private var problemsByService: [ObjectName: ManifestProblem] = [:]
    /// Virtual servers that more than one Service wants, with every Service that wants it.
    private var claimants: [VirtualServerKey: Set<ObjectName>] = [:]
    /// How many Services want each service address.
    private var addressClaims: [IPAddress: Int] = [:]
    /// Services to translate again before the state is taken.
    private var dirty: Set<ObjectName> = []
    private var warningsChanged = false

    private var state = DesiredState()
    /// What changed since the state was last taken; `nil`: anything may have.
    private var touched: DesiredChanges?
    private var taken: DesiredState.Revision?
    /// Problems found since they were last taken.
    private var newProblems: [ManifestProblem] = []

    package init(node: NodeContext) {
        self.node = node
        state.nodePodNetworks = node.podNetworks
    }

    /// The problems of the Services skipped now, in name order.
    package var problems: [ManifestProblem] {
        problemsByService.sorted { $0.key < $1.key }.map(\.value)
    }

    /// The problems found by the translations since this was last asked (each Service's once per change of it).
    package mutating func takeNewProblems() -> [ManifestProblem] {
        defer { newProblems = [] }
        return newProblems
    }

    /// The Node named `name`, if the cluster has it.
    package func node(named name: String) -> Node? {
        nodes.values.first { $0.metadata.name == name }
    }

    /// The cluster's ServiceCIDRs as the changes left them, in name order.
    package var serviceCIDRs: [Located<ServiceCIDR>] {
        serviceCIDRObjects.sorted { $0.key < $1.key }.map(\.value)
    }

    /// Takes the node's facts; when they differ from those before, every Service is translated again.
    package mutating func update(node context: NodeContext) {
        guard context != node else { return }
        node = context
        state.nodePodNetworks = context.podNetworks
        dirty.formUnion(services.keys)
        touched = nil
    }

    /// Applies changes in order.
    package mutating func apply(_ changes: [ClusterChange]) {
        for change in changes {
            switch change {
            case .everything(let set): replace(with: set)
            case .service(let name, let located): put(service: located, named: name)
            case .endpointSlice(let name, let located):
                put(slice: located.map { SliceEndpoints($0.object) }, named: name)
            case .node(let name, let located): nodes[name] = located?.object
            case .serviceCIDR(let name, let located): serviceCIDRObjects[name] = located
            }
        }
    }

    /// The desired state now, with what changed since it was last taken; Services changed since are translated
    /// first.
    package mutating func takeDesired() -> DesiredState {
        for name in dirty.sorted() { translateAgain(name) }
        dirty = []
        if warningsChanged { state.warnings = collectWarnings() }
        warningsChanged = false
        state.serviceCount = services.count
        state.revision = DesiredState.Revision.next()
        state.derivation = taken.map { DesiredState.Derivation(base: $0, touched: touched) }
        taken = state.revision
        touched = DesiredChanges(healthChecks: state.healthChecks, nodePodNetworks: state.nodePodNetworks)
        return state
    }

    // MARK: - Inputs

    private mutating func replace(with set: ManifestSet) {
        let newServices = Dictionary(
            set.services.map { ($0.object.metadata.objectName, $0) }, uniquingKeysWith: { first, _ in first })
        for name in services.keys where newServices[name] == nil { put(service: nil, named: name) }
        for (name, located) in newServices {
            if let old = services[name], old.object == located.object {
                // Only the place changed: a problem found later names the new one.
                services[name] = located
                if problemsByService[name] != nil { dirty.insert(name) }
            } else {
                put(service: located, named: name)
            }
        }
        let newSlices = Dictionary(
            set.endpointSlices.map { ($0.object.metadata.objectName, $0.object) },
            uniquingKeysWith: { first, _ in first })
        for name in slices.keys where newSlices[name] == nil { put(slice: nil, named: name) }
        for (name, slice) in newSlices {
            let read = SliceEndpoints(slice)
            if slices[name] != read { put(slice: read, named: name) }
        }
        let newEndpoints = Dictionary(
            set.endpoints.map { ($0.object.metadata.objectName, $0.object) }, uniquingKeysWith: { first, _ in first })
        for name in Set(endpoints.keys).union(newEndpoints.keys) where endpoints[name] != newEndpoints[name] {
            dirty.insert(name)
        }
        endpoints = newEndpoints
        nodes = Dictionary(
            set.nodes.map { ($0.object.metadata.objectName, $0.object) }, uniquingKeysWith: { first, _ in first })
        serviceCIDRObjects = Dictionary(
            set.serviceCIDRs.map { ($0.object.metadata.objectName, $0) }, uniquingKeysWith: { first, _ in first })
    }

    private mutating func put(service located: Located<Service>?, named name: ObjectName) {
        services[name] = located
        dirty.insert(name)
    }

    private mutating func put(slice: SliceEndpoints?, named name: ObjectName) {
        if let service = slices[name]?.service {
            slicesOfService[service]?.remove(name)
            if slicesOfService[service]?.isEmpty == true { slicesOfService[service] = nil }
            dirty.insert(service)
        }
        // A slice translation ignores (no Service, another proxy's) is not kept.
        slices[name] = slice?.service == nil ? nil : slice
        if let service = slice?.service {
            slicesOfService[service, default: []].insert(name)
            dirty.insert(service)
        }
    }

    private func endpoints(of service: ObjectName) -> ServiceEndpoints {
        let names = slicesOfService[service]?.sorted() ?? []
        return ServiceEndpoints(slices: names.compactMap { slices[$0] }, endpoints: endpoints[service])
    }

    // MARK: - Merging shares

    private mutating func translateAgain(_ name: ObjectName) {
        let old = shares.removeValue(forKey: name)
        let hadProblem = problemsByService.removeValue(forKey: name) != nil
        var new: ServiceShare?
        if let located = services[name] {
            switch Translator.share(of: located, endpoints: endpoints(of: name), node: node) {
            case .success(let share): new = share
            case .failure(let problem):
                problemsByService[name] = problem
                newProblems.append(problem)
            }
        }
        guard old != new || hadProblem else {
            if let old { shares[name] = old }
            return
        }
        if let new { shares[name] = new }
        merge(name, from: old ?? ServiceShare(), to: new ?? ServiceShare())
    }

    /// Replaces a Service's share in the state: only what differs between its old and new share is touched.
    private mutating func merge(_ name: ObjectName, from old: ServiceShare, to new: ServiceShare) {
        for key in old.virtualServers.keys where new.virtualServers[key] == nil { withdraw(key, of: name) }
        for (key, server) in new.virtualServers where old.virtualServers[key] != server {
            if claimants[key] != nil { warningsChanged = true }
            if old.virtualServers[key] != nil, state.virtualServers[key]?.servicePort.service == name.serviceName {
                place(server, at: key)
            } else if old.virtualServers[key] == nil {
                contribute(key, server, of: name)
            }
        }
        for address in old.serviceAddresses.subtracting(new.serviceAddresses) {
            addressClaims[address, default: 0] -= 1
            if addressClaims[address] == 0 {
                addressClaims[address] = nil
                touched?.note(address, had: true)
                state.serviceAddresses.remove(address)
            }
        }
        for address in new.serviceAddresses.subtracting(old.serviceAddresses) {
            addressClaims[address, default: 0] += 1
            if addressClaims[address] == 1 {
                touched?.note(address, had: false)
                state.serviceAddresses.insert(address)
            }
        }
        state.healthChecks[name.serviceName] = new.healthCheck
        for policy in old.withoutLocalEndpoints.subtracting(new.withoutLocalEndpoints) {
            state.servicesWithoutLocalEndpoints[policy]?.remove(name.serviceName)
            if state.servicesWithoutLocalEndpoints[policy]?.isEmpty == true {
                state.servicesWithoutLocalEndpoints[policy] = nil
            }
        }
        for policy in new.withoutLocalEndpoints {
            state.servicesWithoutLocalEndpoints[policy, default: []].insert(name.serviceName)
        }
        if !old.warnings.isEmpty || !new.warnings.isEmpty { warningsChanged = true }
    }

    /// A Service wants a virtual server it did not: it has it unless a Service first by name does.
    private mutating func contribute(_ key: VirtualServerKey, _ server: DesiredVirtualServer, of name: ObjectName) {
        if let holder = state.virtualServers[key].map({ ObjectName($0.servicePort.service) }) {
            claimants[key, default: [holder]].insert(name)
            warningsChanged = true
            guard name < holder else { return }
        }
        place(server, at: key)
    }

    /// A Service no longer wants a virtual server: the next Service by name that wants it has it, if any does.
    private mutating func withdraw(_ key: VirtualServerKey, of name: ObjectName) {
        let holds = state.virtualServers[key]?.servicePort.service == name.serviceName
        if var wanting = claimants[key] {
            wanting.remove(name)
            warningsChanged = true
            if holds, let next = wanting.min() {
                place(shares[next]?.virtualServers[key], at: key)
            }
            claimants[key] = wanting.count > 1 ? wanting : nil
        } else if holds {
            place(nil, at: key)
        }
    }

    /// Puts a virtual server (or none) at a key, noting what was there and keeping the real servers counted.
    private mutating func place(_ server: DesiredVirtualServer?, at key: VirtualServerKey) {
        let old = state.virtualServers[key]
        touched?.note(key, had: old)
        state.countedRealServers =
            (state.countedRealServers ?? 0) + (server?.realServers.count ?? 0) - (old?.realServers.count ?? 0)
        state.virtualServers[key] = server
    }

    /// Each Service's own warnings, then one for each virtual server a Service wanted and another had, by Service.
    private func collectWarnings() -> [String] {
        var byService: [ObjectName: [String]] = [:]
        for (name, share) in shares where !share.warnings.isEmpty { byService[name] = share.warnings }
        for (key, wanting) in claimants.sorted(by: { $0.key < $1.key }) {
            guard let holder = state.virtualServers[key]?.servicePort else { continue }
            for name in wanting.sorted() where name.serviceName != holder.service {
                guard let port = shares[name]?.virtualServers[key]?.servicePort else { continue }
                byService[name, default: []].append(Translator.conflict(port, wants: key, heldBy: holder))
            }
        }
        return byService.sorted { $0.key < $1.key }.flatMap(\.value)
    }
}

extension ObjectName {
    /// The name as the engine's rules say it.
    var serviceName: ServiceName { ServiceName(namespace: namespace, name: name) }

    init(_ name: ServiceName) { self.init(namespace: name.namespace, name: name.name) }
}
