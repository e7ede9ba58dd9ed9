import CNetlink
import IPVSModel
import KernelShim

// Conversions between the typed values and the shim's plain C structs.

extension VirtualServerKey {
    init(_ key: cnetlink_service_key) {
        let family = AddressFamily(rawValue: key.family) ?? .ipv4
        if key.fwmark != 0 {
            self = .firewallMark(key.fwmark, family: family)
        } else {
            self = .address(
                TransportProtocol(rawValue: key.protocol), IPAddress(family: key.family, cBytes: key.address),
                port: key.port)
        }
    }

    var cKey: cnetlink_service_key {
        var key = cnetlink_service_key()
        key.family = family.rawValue
        switch self {
        case .address(let transportProtocol, let address, let port):
            key.protocol = transportProtocol.rawValue
            address.copy(into: &key.address)
            key.port = port
        case .firewallMark(let mark, _):
            key.fwmark = mark
        }
        return key
    }
}

extension VirtualServer {
    init(_ service: cnetlink_service) {
        var scheduler = service.scheduler
        let name = withUnsafeBytes(of: &scheduler) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        self.init(
            VirtualServerKey(service.key), scheduler: Scheduler(rawValue: name),
            flags: ServiceFlags(rawValue: service.flags), persistenceTimeout: service.timeout,
            persistenceNetmask: service.netmask)
        // The kernel's report is the truth: keep its flags even where the initializer would infer one.
        flags = ServiceFlags(rawValue: service.flags)
    }

    var cService: cnetlink_service {
        var service = cnetlink_service()
        service.key = key.cKey
        withUnsafeMutableBytes(of: &service.scheduler) { target in
            let name = scheduler.rawValue.utf8.prefix(Int(CNETLINK_SCHEDULER_NAME_SIZE) - 1)
            target.initializeMemory(as: UInt8.self, repeating: 0)
            target.copyBytes(from: name)
        }
        service.flags = flags.rawValue
        service.timeout = persistenceTimeout
        service.netmask = persistenceNetmask
        return service
    }
}

extension RealServer {
    init(_ destination: cnetlink_destination) {
        self.init(
            IPAddress(family: destination.family, cBytes: destination.address), port: destination.port,
            weight: destination.weight, forwardingMethod: ForwardingMethod(rawValue: destination.forwarding_method),
            upperThreshold: destination.upper_threshold, lowerThreshold: destination.lower_threshold)
    }

    var cDestination: cnetlink_destination {
        var destination = cnetlink_destination()
        destination.family = address.family.rawValue
        address.copy(into: &destination.address)
        destination.port = port
        destination.forwarding_method = forwardingMethod.rawValue
        destination.weight = weight
        destination.upper_threshold = upperThreshold
        destination.lower_threshold = lowerThreshold
        return destination
    }
}

extension RealServerKey {
    var cDestination: cnetlink_destination {
        var destination = cnetlink_destination()
        destination.family = address.family.rawValue
        address.copy(into: &destination.address)
        destination.port = port
        return destination
    }
}

extension Statistics {
    init(_ stats: cnetlink_stats) {
        self.init()
        connections = stats.connections
        incomingPackets = stats.incoming_packets
        outgoingPackets = stats.outgoing_packets
        incomingBytes = stats.incoming_bytes
        outgoingBytes = stats.outgoing_bytes
        connectionRate = stats.connection_rate
        incomingPacketRate = stats.incoming_packet_rate
        outgoingPacketRate = stats.outgoing_packet_rate
        incomingByteRate = stats.incoming_byte_rate
        outgoingByteRate = stats.outgoing_byte_rate
    }
}

extension VirtualServerState {
    init(_ entry: cnetlink_service_entry) {
        self.init(server: VirtualServer(entry.service), statistics: Statistics(entry.stats))
    }
}

extension RealServerState {
    init(_ entry: cnetlink_destination_entry) {
        self.init(
            server: RealServer(entry.destination), activeConnections: entry.active_connections,
            inactiveConnections: entry.inactive_connections, persistentConnections: entry.persistent_connections,
            statistics: Statistics(entry.stats))
    }
}

extension TableOperation {
    var cOperation: cnetlink_operation {
        var operation = cnetlink_operation()
        switch self {
        case .addVirtualServer(let server):
            operation.kind = CNETLINK_ADD_SERVICE.rawValue
            operation.service = server.cService
        case .editVirtualServer(let server):
            operation.kind = CNETLINK_EDIT_SERVICE.rawValue
            operation.service = server.cService
        case .deleteVirtualServer(let key):
            operation.kind = CNETLINK_DELETE_SERVICE.rawValue
            operation.service.key = key.cKey
        case .addRealServer(let server, let key):
            operation.kind = CNETLINK_ADD_DESTINATION.rawValue
            operation.service.key = key.cKey
            operation.destination = server.cDestination
        case .editRealServer(let server, let key):
            operation.kind = CNETLINK_EDIT_DESTINATION.rawValue
            operation.service.key = key.cKey
            operation.destination = server.cDestination
        case .deleteRealServer(let server, let key):
            operation.kind = CNETLINK_DELETE_DESTINATION.rawValue
            operation.service.key = key.cKey
            operation.destination = server.cDestination
        }
        return operation
    }

    /// The scheduler an operation asks the kernel to load, for error messages.
    var requestedScheduler: Scheduler? {
        switch self {
        case .addVirtualServer(let server), .editVirtualServer(let server): server.scheduler
        default: nil
        }
    }
}
