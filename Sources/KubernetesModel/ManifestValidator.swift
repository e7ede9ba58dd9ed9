import InternetAddress

/// Checks objects against the rules the API server enforces on the fields the proxy uses, so that bad
/// input is refused whole with a message that names file, document and field.
public enum ManifestValidator {
    /// Returns the problems that make the input unusable, and warnings about parts that will be ignored.
    public static func validate(_ set: ManifestSet) -> (problems: [ManifestProblem], warnings: [ManifestProblem]) {
        var problems: [ManifestProblem] = []
        var warnings: [ManifestProblem] = []
        for service in set.services { validate(service, into: &problems) }
        for slice in set.endpointSlices { validate(slice, into: &problems, warnings: &warnings) }
        for endpoints in set.endpoints { validate(endpoints, into: &problems) }
        for node in set.nodes { validate(node, into: &problems) }
        for serviceCIDR in set.serviceCIDRs { validate(serviceCIDR, into: &problems) }
        problems += duplicates(set.services.map { ($0.object.metadata.objectName, $0.location) })
        problems += duplicates(set.endpointSlices.map { ($0.object.metadata.objectName, $0.location) })
        problems += duplicates(set.endpoints.map { ($0.object.metadata.objectName, $0.location) })
        problems += duplicates(set.nodes.map { ($0.object.metadata.objectName, $0.location) })
        problems += duplicates(set.serviceCIDRs.map { ($0.object.metadata.objectName, $0.location) })
        return (problems, warnings)
    }

    static let serviceTypes = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]
    static let protocols = ["TCP", "UDP", "SCTP"]
    static let trafficPolicies = ["Cluster", "Local"]

    private static func validate(_ located: Located<Service>, into problems: inout [ManifestProblem]) {
        var check = Checker(location: located.location)
        let service = located.object
        let spec = service.spec
        check.name(service.metadata)
        check.oneOf(spec.type, Self.serviceTypes, field: "spec.type")
        if spec.type == "ExternalName" {
            problems += check.problems
            return
        }
        if let clusterIP = spec.clusterIP, !clusterIP.isEmpty, clusterIP != "None" {
            check.address(clusterIP, field: "spec.clusterIP")
        }
        for (index, address) in (spec.clusterIPs ?? []).enumerated() where address != "None" {
            check.address(address, field: "spec.clusterIPs[\(index)]")
        }
        for (index, address) in (spec.externalIPs ?? []).enumerated() {
            check.address(address, field: "spec.externalIPs[\(index)]")
        }
        struct PortIdentity: Hashable {
            var port: Int
            var transportProtocol: String
        }
        var seenPorts: [PortIdentity: Int] = [:]
        for (index, port) in (spec.ports ?? []).enumerated() {
            let field = { "spec.ports[\(index)]" }
            check.port(port.port, field: "\(field()).port")
            check.oneOf(port.protocol, Self.protocols, field: "\(field()).protocol")
            if let nodePort = port.nodePort, nodePort != 0 {
                // Clusters choose their own node port range; only the port number itself is checked.
                check.port(nodePort, field: "\(field()).nodePort")
            }
            switch port.targetPort {
            case .int(let target)?: check.port(target, field: "\(field()).targetPort")
            case .string(let name)? where name.isEmpty:
                check.fail("\(field()).targetPort", "must be a port number or a port name, not empty")
            default: break
            }
            let identity = PortIdentity(port: port.port, transportProtocol: port.protocol ?? "TCP")
            if let first = seenPorts[identity] {
                check.fail(
                    field(),
                    "duplicate port \(port.port)/\(identity.transportProtocol): spec.ports[\(first)] has it already")
            } else {
                seenPorts[identity] = index
            }
        }
        check.oneOf(spec.sessionAffinity, ["None", "ClientIP"], field: "spec.sessionAffinity")
        if let timeout = spec.sessionAffinityConfig?.clientIP?.timeoutSeconds, !(1...86400).contains(timeout) {
            check.fail("spec.sessionAffinityConfig.clientIP.timeoutSeconds", "must be 1-86400 seconds, not \(timeout)")
        }
        if let port = spec.healthCheckNodePort, port != 0 { check.port(port, field: "spec.healthCheckNodePort") }
        check.oneOf(spec.externalTrafficPolicy, Self.trafficPolicies, field: "spec.externalTrafficPolicy")
        check.oneOf(spec.internalTrafficPolicy, Self.trafficPolicies, field: "spec.internalTrafficPolicy")
        for (index, range) in (spec.loadBalancerSourceRanges ?? []).enumerated() {
            // The API server trims spaces around each range before it checks it, and so does kube-proxy.
            let trimmed = String(range.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
            if IPNetwork(trimmed) == nil {
                check.fail(
                    "spec.loadBalancerSourceRanges[\(index)]",
                    "'\(range)' is not a network in CIDR notation (10.0.0.0/8)")
            }
        }
        for (index, ingress) in (service.status?.loadBalancer?.ingress ?? []).enumerated() {
            if let ip = ingress.ip { check.address(ip, field: "status.loadBalancer.ingress[\(index)].ip") }
            check.oneOf(ingress.ipMode, ["VIP", "Proxy"], field: "status.loadBalancer.ingress[\(index)].ipMode")
        }
        problems += check.problems
    }

    private static func validate(
        _ located: Located<EndpointSlice>, into problems: inout [ManifestProblem], warnings: inout [ManifestProblem]
    ) {
        var check = Checker(location: located.location)
        let slice = located.object
        check.name(slice.metadata)
        check.oneOf(slice.addressType, ["IPv4", "IPv6", "FQDN"], field: "addressType", allowEmpty: false)
        let family: AddressFamily? = slice.addressType == "IPv4" ? .ipv4 : slice.addressType == "IPv6" ? .ipv6 : nil
        for (index, endpoint) in (slice.endpoints ?? []).enumerated() {
            let field = { "endpoints[\(index)].addresses" }
            if endpoint.addresses.isEmpty { check.fail(field(), "must hold at least one address") }
            guard let family else { continue }
            for (addressIndex, text) in endpoint.addresses.enumerated() {
                guard let address = check.address(text, field: "\(field())[\(addressIndex)]") else { continue }
                if address.family != family {
                    check.fail(
                        "\(field())[\(addressIndex)]",
                        "\(text) is an \(address.family) address, but addressType is \(slice.addressType)")
                }
            }
        }
        for (index, port) in (slice.ports ?? []).enumerated() {
            if let number = port.port { check.port(number, field: "ports[\(index)].port") }
            check.oneOf(port.protocol, Self.protocols, field: "ports[\(index)].protocol")
        }
        if slice.serviceName == nil {
            warnings.append(
                ManifestProblem(
                    at: located.location, field: "metadata.labels",
                    "has no \(EndpointSlice.serviceNameLabel) label; ignored (kube-proxy ignores it too)"))
        }
        problems += check.problems
    }

    private static func validate(_ located: Located<Endpoints>, into problems: inout [ManifestProblem]) {
        var check = Checker(location: located.location)
        check.name(located.object.metadata)
        for (index, subset) in (located.object.subsets ?? []).enumerated() {
            let field = { "subsets[\(index)]" }
            for (addressIndex, address) in (subset.addresses ?? []).enumerated() {
                check.address(address.ip, field: "\(field()).addresses[\(addressIndex)].ip")
            }
            for (addressIndex, address) in (subset.notReadyAddresses ?? []).enumerated() {
                check.address(address.ip, field: "\(field()).notReadyAddresses[\(addressIndex)].ip")
            }
            for (portIndex, port) in (subset.ports ?? []).enumerated() {
                if let number = port.port {
                    check.port(number, field: "\(field()).ports[\(portIndex)].port")
                } else {
                    check.fail("\(field()).ports[\(portIndex)].port", "missing: this field is required")
                }
                check.oneOf(port.protocol, Self.protocols, field: "\(field()).ports[\(portIndex)].protocol")
            }
        }
        problems += check.problems
    }

    private static func validate(_ located: Located<Node>, into problems: inout [ManifestProblem]) {
        var check = Checker(location: located.location)
        check.name(located.object.metadata)
        let spec = located.object.spec
        let ranges =
            [(spec?.podCIDR, "spec.podCIDR")]
            + (spec?.podCIDRs ?? []).enumerated().map {
                ($1, "spec.podCIDRs[\($0)]")
            }
        for case (let range?, let field) in ranges where !range.isEmpty && IPNetwork(range) == nil {
            check.fail(field, "'\(range)' is not a network in CIDR notation (10.244.1.0/24)")
        }
        problems += check.problems
    }

    /// The API server's rules for `spec.cidrs` (``ServiceCIDRRanges``), with each problem's field.
    private static func validate(_ located: Located<ServiceCIDR>, into problems: inout [ManifestProblem]) {
        var check = Checker(location: located.location)
        check.name(located.object.metadata)
        do {
            _ = try located.object.ranges()
        } catch {
            for problem in error.problems {
                check.fail("spec.cidrs" + (problem.index.map { "[\($0)]" } ?? ""), problem.message)
            }
        }
        problems += check.problems
    }

    private static func duplicates(_ objects: [(ObjectName, ObjectLocation)]) -> [ManifestProblem] {
        var first: [ObjectName: ObjectLocation] = [:]
        var problems: [ManifestProblem] = []
        for (name, location) in objects {
            if let earlier = first[name] {
                problems.append(ManifestProblem(at: location, "defined twice; also at \(earlier)"))
            } else {
                first[name] = location
            }
        }
        return problems
    }
}

/// Collects the problems of one object.
private struct Checker {
    let location: ObjectLocation
    var problems: [ManifestProblem] = []

    // Field paths are built only for problems: valid objects (nearly all of them) pay nothing for them.
    mutating func fail(_ field: @autoclosure () -> String, _ message: @autoclosure () -> String) {
        problems.append(ManifestProblem(at: location, field: field(), message()))
    }

    mutating func name(_ metadata: ObjectMeta) {
        if (metadata.name ?? "").isEmpty { fail("metadata.name", "missing: every object needs a name") }
    }

    @discardableResult
    mutating func address(_ text: String, field: @autoclosure () -> String) -> IPAddress? {
        guard let address = IPAddress(text) else {
            fail(field(), "'\(text)' is not a valid IPv4 or IPv6 address")
            return nil
        }
        return address
    }

    mutating func port(_ number: Int, field: @autoclosure () -> String) {
        if !(1...65535).contains(number) { fail(field(), "must be a port number 1-65535, not \(number)") }
    }

    mutating func oneOf(
        _ value: String?, _ allowed: [String], field: @autoclosure () -> String, allowEmpty: Bool = true
    ) {
        guard let value, !(allowEmpty && value.isEmpty) else { return }
        if !allowed.contains(value) {
            fail(field(), "'\(value)' is not one of \(allowed.joined(separator: ", "))")
        }
    }
}
