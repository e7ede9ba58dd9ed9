/// Decodes JSON manifests (and API lists) straight from bytes, and YAML manifests straight from libyaml's
/// events, into the model: many times faster than `JSONDecoder` or Yams with `Codable`, which matters at tens
/// of thousands of objects.
///
/// It reads exactly the fields the `Codable` model reads and accepts exactly what it accepts; on anything
/// else it gives up, and the caller decodes with `JSONDecoder`, which then says what is wrong and where.
enum FastManifestDecoder {
    typealias Mismatch = ScanMismatch

    /// The document's item, or `nil` when the full decoder must decide.
    static func decode(_ text: String) -> DecodedItem? {
        var text = text
        return text.withUTF8 { bytes in
            var scanner = JSONScanner(bytes)
            guard let item = try? item(&scanner, defaultKind: nil, listDepth: 0), scanner.isAtEnd() else { return nil }
            return item
        }
    }

    /// The items of a YAML stream's documents, each with its document's number (from 1, empty documents
    /// counted and skipped as the full decoder does), or `nil` when the full decoder must decide for the file.
    static func decodeYAML(_ text: String) -> [(document: Int, item: DecodedItem)]? {
        guard let parsed = YAMLEvents(text) else { return nil }
        return withExtendedLifetime(parsed) { () -> [(document: Int, item: DecodedItem)]? in
            var scanner = YAMLScanner(events: parsed.events, values: parsed.values)
            var items: [(document: Int, item: DecodedItem)] = []
            var document = 0
            do {
                while try scanner.nextDocument() {
                    document += 1
                    if try !scanner.takeEmptyRoot() {
                        items.append((document, try item(&scanner, defaultKind: nil, listDepth: 0)))
                    }
                    try scanner.endDocument()
                }
            } catch {
                return nil
            }
            return items
        }
    }

    /// A page of a list the API server sent, or `nil` when the full decoder must decide.
    static func decodeListPage(_ text: String) -> ListPage? {
        var text = text
        return text.withUTF8 { bytes in
            var scanner = JSONScanner(bytes)
            guard let page = try? listPage(&scanner), scanner.isAtEnd() else { return nil }
            return page
        }
    }

    /// The type and object of a watch event line (`{"type":"MODIFIED","object":{...}}`), or `nil` when the full
    /// decoder must decide. Only the events that carry an object are read here, and only when `type` comes first,
    /// as the API server writes it; bookmarks and errors are rare and go to the full decoder.
    static func decodeWatchEvent(_ line: UnsafeBufferPointer<UInt8>) -> WatchEventLine? {
        var scanner = JSONScanner(line)
        var type: WatchEventLine.EventType?
        var item: DecodedItem?
        do {
            try scanner.object { scanner, key throws(Mismatch) in
                if key == "type" {
                    guard type == nil, let name = try scanner.optionalString(),
                        let known = WatchEventLine.EventType(rawValue: name)
                    else { throw Mismatch() }
                    type = known
                } else if key == "object" {
                    guard type != nil, item == nil else { throw Mismatch() }
                    item = try self.item(&scanner, defaultKind: nil, listDepth: DecodedItem.maximumListDepth)
                } else {
                    try scanner.skip()
                }
            }
        } catch {
            return nil
        }
        guard scanner.isAtEnd(), let type, let item else { return nil }
        return WatchEventLine(type: type, item: item)
    }

    /// A list's kind, metadata and items. The API server writes `kind` before `items`, which is what gives items
    /// their kind; a list written otherwise goes to the full decoder.
    private static func listPage<Scanner: ManifestScanner & ~Copyable>(
        _ scanner: inout Scanner
    ) throws(Mismatch) -> ListPage {
        var kind: String?
        var resourceVersion: String?
        var continueToken: String?
        var items: [DecodedItem] = []
        var hasItems = false
        try scanner.object { scanner, key throws(Mismatch) in
            if key == "kind" {
                kind = try scanner.optionalString()
            } else if key == "metadata" {
                guard try !scanner.takeNull() else { return }
                try scanner.object { scanner, key throws(Mismatch) in
                    if key == "resourceVersion" {
                        resourceVersion = try scanner.optionalString()
                    } else if key == "continue" {
                        continueToken = try scanner.optionalString()
                    } else {
                        try scanner.skip()
                    }
                }
            } else if key == "items" {
                guard let listKind = kind, listKind.hasSuffix("List"), listKind != "List" else { throw Mismatch() }
                let itemKind = String(listKind.dropLast(4))
                hasItems = true
                guard try !scanner.takeNull() else { return }
                try scanner.array { scanner throws(Mismatch) in
                    items.append(try item(&scanner, defaultKind: itemKind, listDepth: 1))
                }
            } else {
                try scanner.skip()
            }
        }
        guard kind?.hasSuffix("List") == true else { throw Mismatch() }
        return ListPage(
            kind: kind, hasItems: hasItems, items: items, resourceVersion: resourceVersion ?? "",
            continueToken: continueToken)
    }

    /// One object: everything read in one pass, whatever the order of its members, then built by its kind.
    private static func item<Scanner: ManifestScanner & ~Copyable>(
        _ scanner: inout Scanner, defaultKind: String?, listDepth: Int
    ) throws(Mismatch) -> DecodedItem {
        var kind: String?
        var apiVersion: String?
        var metadata: ObjectMeta?
        var spec: ServiceSpec?
        var nodeSpec: NodeSpec?
        var serviceCIDRSpec: ServiceCIDRSpec?
        // A spec or status met before the object's kind is read as a Service's; a Node's or a ServiceCIDR's then
        // needs the full decoder.
        var readBeforeKind = false
        var status: ServiceStatus?
        var nodeStatus: NodeStatus?
        var serviceCIDRStatus: ServiceCIDRStatus?
        var addressType: String?
        var endpoints: [Endpoint]?
        var ports: [EndpointPort]?
        var subsets: [EndpointSubset]?
        var items: [DecodedItem]?
        try scanner.object { scanner, key throws(Mismatch) in
            if key == "kind" {
                kind = try scanner.optionalString()
            } else if key == "apiVersion" {
                apiVersion = try scanner.optionalString()
            } else if key == "metadata" {
                metadata = try scanner.takeNull() ? nil : try objectMeta(&scanner)
            } else if key == "spec" {
                // Only a Service's, a Node's and a ServiceCIDR's spec are read; another kind's is skipped once the
                // kind is known.
                switch kind ?? defaultKind {
                case "Node"?:
                    nodeSpec = try scanner.takeNull() ? nil : try self.nodeSpec(&scanner)
                case "ServiceCIDR"?:
                    serviceCIDRSpec = try scanner.takeNull() ? nil : try self.serviceCIDRSpec(&scanner)
                case let known? where known != "Service":
                    try scanner.skip()
                case let known:
                    readBeforeKind = readBeforeKind || known == nil
                    spec = try scanner.takeNull() ? nil : try serviceSpec(&scanner)
                }
            } else if key == "status" {
                switch kind ?? defaultKind {
                case "Node"?:
                    nodeStatus = try scanner.takeNull() ? nil : try self.nodeStatus(&scanner)
                case "ServiceCIDR"?:
                    serviceCIDRStatus = try scanner.takeNull() ? nil : try self.serviceCIDRStatus(&scanner)
                case let known? where known != "Service":
                    try scanner.skip()
                case let known:
                    readBeforeKind = readBeforeKind || known == nil
                    status = try scanner.takeNull() ? nil : try serviceStatus(&scanner)
                }
            } else if key == "addressType" {
                addressType = try scanner.optionalString()
            } else if key == "endpoints" {
                endpoints = try scanner.takeNull() ? nil : try list(&scanner, endpoint)
            } else if key == "ports" {
                ports = try scanner.takeNull() ? nil : try list(&scanner, endpointPort)
            } else if key == "subsets" {
                subsets = try scanner.takeNull() ? nil : try list(&scanner, subset)
            } else if key == "items" {
                // A typed list's items (ServiceList) carry no kind of their own: they take it from the list
                // when its kind came first. kubectl sorts keys, so its items come first, each with a kind.
                let listKind = kind ?? defaultKind
                let itemKind = listKind.flatMap { $0.hasSuffix("List") && $0 != "List" ? String($0.dropLast(4)) : nil }
                if try scanner.takeNull() {
                    items = nil
                } else {
                    // Too deep for the full decoder's rule too: it words the problem.
                    guard listDepth < DecodedItem.maximumListDepth else { throw Mismatch() }
                    var decoded: [DecodedItem] = []
                    try scanner.array { scanner throws(Mismatch) in
                        decoded.append(try item(&scanner, defaultKind: itemKind, listDepth: listDepth + 1))
                    }
                    items = decoded
                }
            } else {
                try scanner.skip()
            }
        }
        let resolvedKind = kind ?? defaultKind
        switch resolvedKind {
        case "Service":
            guard apiVersion == nil || apiVersion == "v1" else { throw Mismatch() }
            return .service(Service(metadata: metadata ?? ObjectMeta(), spec: spec ?? ServiceSpec(), status: status))
        case "EndpointSlice":
            guard apiVersion == nil || apiVersion == "discovery.k8s.io/v1", let metadata, let addressType else {
                throw Mismatch()
            }
            return .endpointSlice(
                EndpointSlice(metadata: metadata, addressType: addressType, endpoints: endpoints, ports: ports))
        case "Endpoints":
            guard apiVersion == nil || apiVersion == "v1", let metadata else { throw Mismatch() }
            return .endpoints(Endpoints(metadata: metadata, subsets: subsets))
        case "Node":
            guard apiVersion == nil || apiVersion == "v1", !readBeforeKind else { throw Mismatch() }
            return .node(Node(metadata: metadata ?? ObjectMeta(), spec: nodeSpec, status: nodeStatus))
        case "ServiceCIDR":
            guard apiVersion == nil || apiVersion == "networking.k8s.io/v1", !readBeforeKind else { throw Mismatch() }
            return .serviceCIDR(
                ServiceCIDR(metadata: metadata ?? ObjectMeta(), spec: serviceCIDRSpec, status: serviceCIDRStatus))
        case let listKind? where listKind.hasSuffix("List"):
            return .list(items ?? [])
        case nil:
            // The full decoder words this problem.
            throw Mismatch()
        default:
            return .ignored
        }
    }

    private static func list<Scanner: ManifestScanner & ~Copyable, Element>(
        _ scanner: inout Scanner, _ element: (inout Scanner) throws(Mismatch) -> Element
    ) throws(Mismatch) -> [Element] {
        var result: [Element] = []
        try scanner.array { scanner throws(Mismatch) in result.append(try element(&scanner)) }
        return result
    }

    private static func objectMeta<Scanner: ManifestScanner & ~Copyable>(
        _ scanner: inout Scanner
    ) throws(Mismatch) -> ObjectMeta {
        var meta = ObjectMeta()
        try scanner.object { scanner, key throws(Mismatch) in
            if key == "name" {
                meta.name = try scanner.optionalString()
            } else if key == "namespace" {
                meta.namespace = try scanner.optionalString()
            } else if key == "labels" {
                meta.labels = try scanner.stringMap()
            } else if key == "annotations" {
                meta.annotations = try scanner.stringMap()
            } else if key == "resourceVersion" {
                meta.resourceVersion = try scanner.optionalString()
            } else if key == "deletionTimestamp" {
                meta.deletionTimestamp = try scanner.optionalString()
            } else {
                try scanner.skip()
            }
        }
        return meta
    }

    private static func serviceSpec<Scanner: ManifestScanner & ~Copyable>(
        _ scanner: inout Scanner
    ) throws(Mismatch) -> ServiceSpec {
        var spec = ServiceSpec()
        try scanner.object { scanner, key throws(Mismatch) in
            if key == "type" {
                spec.type = try scanner.optionalString()
            } else if key == "clusterIP" {
                spec.clusterIP = try scanner.optionalString()
            } else if key == "clusterIPs" {
                spec.clusterIPs = try scanner.strings()
            } else if key == "externalIPs" {
                spec.externalIPs = try scanner.strings()
            } else if key == "ports" {
                spec.ports = try scanner.takeNull() ? nil : try list(&scanner, servicePort)
            } else if key == "sessionAffinity" {
                spec.sessionAffinity = try scanner.optionalString()
            } else if key == "sessionAffinityConfig" {
                spec.sessionAffinityConfig = try scanner.takeNull() ? nil : try affinityConfig(&scanner)
            } else if key == "externalTrafficPolicy" {
                spec.externalTrafficPolicy = try scanner.optionalString()
            } else if key == "internalTrafficPolicy" {
                spec.internalTrafficPolicy = try scanner.optionalString()
            } else if key == "ipFamilies" {
                spec.ipFamilies = try scanner.strings()
            } else if key == "externalName" {
                spec.externalName = try scanner.optionalString()
            } else if key == "loadBalancerSourceRanges" {
                spec.loadBalancerSourceRanges = try scanner.strings()
            } else if key == "healthCheckNodePort" {
                spec.healthCheckNodePort = try scanner.optionalInt()
            } else {
                try scanner.skip()
            }
        }
        return spec
    }

    private static func servicePort<Scanner: ManifestScanner & ~Copyable>(
        _ scanner: inout Scanner
    ) throws(Mismatch) -> ServicePort {
        var name: String?
        var transportProtocol: String?
        var port: Int?
        var targetPort: IntOrString?
        var nodePort: Int?
        try scanner.object { scanner, key throws(Mismatch) in
            if key == "name" {
                name = try scanner.optionalString()
            } else if key == "protocol" {
                transportProtocol = try scanner.optionalString()
            } else if key == "port" {
                port = try scanner.int()
            } else if key == "targetPort" {
                targetPort = try scanner.intOrString()
            } else if key == "nodePort" {
                nodePort = try scanner.optionalInt()
            } else {
                try scanner.skip()
            }
        }
        guard let port else { throw Mismatch() }
        return ServicePort(
            name: name, protocol: transportProtocol, port: port, targetPort: targetPort, nodePort: nodePort)
    }

    private static func affinityConfig<Scanner: ManifestScanner & ~Copyable>(
        _ scanner: inout Scanner
    ) throws(Mismatch) -> SessionAffinityConfig {
        var config = SessionAffinityConfig(clientIP: nil)
        try scanner.object { scanner, key throws(Mismatch) in
            guard key == "clientIP" else { return try scanner.skip() }
            if try scanner.takeNull() { return }
            var clientIP = ClientIPConfig(timeoutSeconds: nil)
            try scanner.object { scanner, key throws(Mismatch) in
                if key == "timeoutSeconds" {
                    clientIP.timeoutSeconds = try scanner.optionalInt()
                } else {
                    try scanner.skip()
                }
            }
            config.clientIP = clientIP
        }
        return config
    }

    private static func serviceStatus<Scanner: ManifestScanner & ~Copyable>(
        _ scanner: inout Scanner
    ) throws(Mismatch) -> ServiceStatus {
        var status = ServiceStatus(loadBalancer: nil)
        try scanner.object { scanner, key throws(Mismatch) in
            guard key == "loadBalancer" else { return try scanner.skip() }
            if try scanner.takeNull() { return }
            var loadBalancer = LoadBalancerStatus(ingress: nil)
            try scanner.object { scanner, key throws(Mismatch) in
                guard key == "ingress" else { return try scanner.skip() }
                loadBalancer.ingress = try scanner.takeNull() ? nil : try list(&scanner, ingress)
            }
            status.loadBalancer = loadBalancer
        }
        return status
    }

    private static func ingress<Scanner: ManifestScanner & ~Copyable>(
        _ scanner: inout Scanner
    ) throws(Mismatch) -> LoadBalancerIngress {
        var ingress = LoadBalancerIngress()
        try scanner.object { scanner, key throws(Mismatch) in
            if key == "ip" {
                ingress.ip = try scanner.optionalString()
            } else if key == "hostname" {
                ingress.hostname = try scanner.optionalString()
            } else if key == "ipMode" {
                ingress.ipMode = try scanner.optionalString()
            } else {
                try scanner.skip()
            }
        }
        return ingress
    }

    private static func endpoint<Scanner: ManifestScanner & ~Copyable>(
        _ scanner: inout Scanner
    ) throws(Mismatch) -> Endpoint {
        var addresses: [String]?
        var conditions: EndpointConditions?
        var nodeName: String?
        var zone: String?
        var hints: EndpointHints?
        try scanner.object { scanner, key throws(Mismatch) in
            if key == "addresses" {
                guard let list = try scanner.strings() else { throw Mismatch() }
                addresses = list
            } else if key == "conditions" {
                if try scanner.takeNull() { return }
                var parsed = EndpointConditions()
                try scanner.object { scanner, key throws(Mismatch) in
                    if key == "ready" {
                        parsed.ready = try scanner.optionalBool()
                    } else if key == "serving" {
                        parsed.serving = try scanner.optionalBool()
                    } else if key == "terminating" {
                        parsed.terminating = try scanner.optionalBool()
                    } else {
                        try scanner.skip()
                    }
                }
                conditions = parsed
            } else if key == "nodeName" {
                nodeName = try scanner.optionalString()
            } else if key == "zone" {
                zone = try scanner.optionalString()
            } else if key == "hints" {
                hints = try scanner.takeNull() ? nil : try endpointHints(&scanner)
            } else {
                try scanner.skip()
            }
        }
        guard let addresses else { throw Mismatch() }
        var endpoint = Endpoint(addresses: addresses, conditions: conditions, nodeName: nodeName, hints: hints)
        endpoint.zone = zone
        return endpoint
    }

    private static func endpointHints<Scanner: ManifestScanner & ~Copyable>(
        _ scanner: inout Scanner
    ) throws(Mismatch) -> EndpointHints {
        var hints = EndpointHints()
        try scanner.object { scanner, key throws(Mismatch) in
            if key == "forZones" {
                hints.forZones = try scanner.takeNull() ? nil : try list(&scanner, hintName)
            } else if key == "forNodes" {
                hints.forNodes = try scanner.takeNull() ? nil : try list(&scanner, hintName)
            } else {
                try scanner.skip()
            }
        }
        return hints
    }

    private static func hintName<Scanner: ManifestScanner & ~Copyable>(
        _ scanner: inout Scanner
    ) throws(Mismatch) -> HintName {
        var name: String?
        try scanner.object { scanner, key throws(Mismatch) in
            if key == "name" { name = try scanner.string() } else { try scanner.skip() }
        }
        guard let name else { throw Mismatch() }
        return HintName(name: name)
    }

    private static func nodeSpec<Scanner: ManifestScanner & ~Copyable>(
        _ scanner: inout Scanner
    ) throws(Mismatch) -> NodeSpec {
        var spec = NodeSpec()
        try scanner.object { scanner, key throws(Mismatch) in
            if key == "podCIDR" {
                spec.podCIDR = try scanner.optionalString()
            } else if key == "podCIDRs" {
                spec.podCIDRs = try scanner.strings()
            } else if key == "taints" {
                spec.taints = try scanner.takeNull() ? nil : try list(&scanner, taint)
            } else {
                try scanner.skip()
            }
        }
        return spec
    }

    private static func nodeStatus<Scanner: ManifestScanner & ~Copyable>(
        _ scanner: inout Scanner
    ) throws(Mismatch) -> NodeStatus {
        var status = NodeStatus()
        try scanner.object { scanner, key throws(Mismatch) in
            guard key == "addresses" else { return try scanner.skip() }
            status.addresses = try scanner.takeNull() ? nil : try list(&scanner, nodeAddress)
        }
        return status
    }

    private static func serviceCIDRSpec<Scanner: ManifestScanner & ~Copyable>(
        _ scanner: inout Scanner
    ) throws(Mismatch) -> ServiceCIDRSpec {
        var spec = ServiceCIDRSpec()
        try scanner.object { scanner, key throws(Mismatch) in
            guard key == "cidrs" else { return try scanner.skip() }
            spec.cidrs = try scanner.strings()
        }
        return spec
    }

    private static func serviceCIDRStatus<Scanner: ManifestScanner & ~Copyable>(
        _ scanner: inout Scanner
    ) throws(Mismatch) -> ServiceCIDRStatus {
        var status = ServiceCIDRStatus()
        try scanner.object { scanner, key throws(Mismatch) in
            guard key == "conditions" else { return try scanner.skip() }
            status.conditions = try scanner.takeNull() ? nil : try list(&scanner, condition)
        }
        return status
    }

    private static func condition<Scanner: ManifestScanner & ~Copyable>(
        _ scanner: inout Scanner
    ) throws(Mismatch) -> Condition {
        var type: String?
        var status: String?
        var condition = Condition(type: "", status: "")
        try scanner.object { scanner, key throws(Mismatch) in
            if key == "type" {
                type = try scanner.string()
            } else if key == "status" {
                status = try scanner.string()
            } else if key == "reason" {
                condition.reason = try scanner.optionalString()
            } else if key == "message" {
                condition.message = try scanner.optionalString()
            } else if key == "lastTransitionTime" {
                condition.lastTransitionTime = try scanner.optionalString()
            } else {
                try scanner.skip()
            }
        }
        guard let type, let status else { throw Mismatch() }
        condition.type = type
        condition.status = status
        return condition
    }

    private static func nodeAddress<Scanner: ManifestScanner & ~Copyable>(
        _ scanner: inout Scanner
    ) throws(Mismatch) -> NodeAddress {
        var type: String?
        var address: String?
        try scanner.object { scanner, key throws(Mismatch) in
            if key == "type" {
                type = try scanner.string()
            } else if key == "address" {
                address = try scanner.string()
            } else {
                try scanner.skip()
            }
        }
        guard let type, let address else { throw Mismatch() }
        return NodeAddress(type: type, address: address)
    }

    private static func taint<Scanner: ManifestScanner & ~Copyable>(
        _ scanner: inout Scanner
    ) throws(Mismatch) -> Taint {
        var key: String?
        var taint = Taint(key: "")
        try scanner.object { scanner, name throws(Mismatch) in
            if name == "key" {
                key = try scanner.string()
            } else if name == "value" {
                taint.value = try scanner.optionalString()
            } else if name == "effect" {
                taint.effect = try scanner.optionalString()
            } else {
                try scanner.skip()
            }
        }
        guard let key else { throw Mismatch() }
        taint.key = key
        return taint
    }

    private static func endpointPort<Scanner: ManifestScanner & ~Copyable>(
        _ scanner: inout Scanner
    ) throws(Mismatch) -> EndpointPort {
        var port = EndpointPort(port: nil)
        try scanner.object { scanner, key throws(Mismatch) in
            if key == "name" {
                port.name = try scanner.optionalString()
            } else if key == "protocol" {
                port.protocol = try scanner.optionalString()
            } else if key == "port" {
                port.port = try scanner.optionalInt()
            } else {
                try scanner.skip()
            }
        }
        return port
    }

    private static func subset<Scanner: ManifestScanner & ~Copyable>(
        _ scanner: inout Scanner
    ) throws(Mismatch) -> EndpointSubset {
        var subset = EndpointSubset(addresses: nil, ports: nil)
        try scanner.object { scanner, key throws(Mismatch) in
            if key == "addresses" {
                subset.addresses = try scanner.takeNull() ? nil : try list(&scanner, endpointAddress)
            } else if key == "notReadyAddresses" {
                subset.notReadyAddresses = try scanner.takeNull() ? nil : try list(&scanner, endpointAddress)
            } else if key == "ports" {
                subset.ports = try scanner.takeNull() ? nil : try list(&scanner, endpointPort)
            } else {
                try scanner.skip()
            }
        }
        return subset
    }

    private static func endpointAddress<Scanner: ManifestScanner & ~Copyable>(
        _ scanner: inout Scanner
    ) throws(Mismatch) -> EndpointAddress {
        var ip: String?
        var nodeName: String?
        try scanner.object { scanner, key throws(Mismatch) in
            if key == "ip" {
                ip = try scanner.string()
            } else if key == "nodeName" {
                nodeName = try scanner.optionalString()
            } else {
                try scanner.skip()
            }
        }
        guard let ip else { throw Mismatch() }
        return EndpointAddress(ip: ip, nodeName: nodeName)
    }
}
