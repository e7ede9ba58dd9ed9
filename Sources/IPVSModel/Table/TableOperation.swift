/// One change to the kernel's IPVS table.
public enum TableOperation: Sendable, Hashable, CustomStringConvertible {
    case addVirtualServer(VirtualServer)
    case editVirtualServer(VirtualServer)
    /// Deleting a virtual server deletes its real servers with it.
    case deleteVirtualServer(VirtualServerKey)
    case addRealServer(RealServer, to: VirtualServerKey)
    case editRealServer(RealServer, in: VirtualServerKey)
    case deleteRealServer(RealServerKey, from: VirtualServerKey)

    /// The kind of change, for counting and logging.
    public var kind: Kind {
        switch self {
        case .addVirtualServer: .addVirtualServer
        case .editVirtualServer: .editVirtualServer
        case .deleteVirtualServer: .deleteVirtualServer
        case .addRealServer: .addRealServer
        case .editRealServer: .editRealServer
        case .deleteRealServer: .deleteRealServer
        }
    }

    /// The virtual server the operation concerns.
    public var virtualServerKey: VirtualServerKey {
        switch self {
        case .addVirtualServer(let server), .editVirtualServer(let server): server.key
        case .deleteVirtualServer(let key): key
        case .addRealServer(_, let key), .editRealServer(_, let key), .deleteRealServer(_, let key): key
        }
    }

    /// Whether the operation adds, edits or deletes a real server.
    public var isRealServerOperation: Bool {
        switch self {
        case .addRealServer, .editRealServer, .deleteRealServer: true
        case .addVirtualServer, .editVirtualServer, .deleteVirtualServer: false
        }
    }

    /// The kind of a ``TableOperation``.
    public enum Kind: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        case addVirtualServer = "add-virtual-server"
        case editVirtualServer = "edit-virtual-server"
        case deleteVirtualServer = "delete-virtual-server"
        case addRealServer = "add-real-server"
        case editRealServer = "edit-real-server"
        case deleteRealServer = "delete-real-server"

        public var description: String { rawValue }
    }

    /// One line, as `ipvsadm` options would say it: `add-virtual-server TCP 10.0.0.1:80 scheduler rr`.
    public var description: String {
        switch self {
        case .addVirtualServer(let server), .editVirtualServer(let server):
            var text = "\(kind) \(server.key) scheduler \(server.scheduler)"
            if server.flags.contains(.persistent) { text += " persistent \(server.persistenceTimeout)" }
            let otherFlags = server.flags.userSettable.subtracting(.persistent)
            if !otherFlags.isEmpty { text += " flags \(otherFlags.names.joined(separator: ","))" }
            return text
        case .deleteVirtualServer(let key):
            return "\(kind) \(key)"
        case .addRealServer(let server, let key), .editRealServer(let server, let key):
            return "\(kind) \(key) -> \(server.key) weight \(server.weight) \(server.forwardingMethod)"
        case .deleteRealServer(let server, let key):
            return "\(kind) \(key) -> \(server)"
        }
    }
}

/// An operation of a batch that the kernel refused.
public struct BatchFailure: Sendable, Hashable, CustomStringConvertible {
    /// The operation's position in the batch.
    public let index: Int
    public let operation: TableOperation
    public let error: IPVSError

    public init(index: Int, operation: TableOperation, error: IPVSError) {
        self.index = index
        self.operation = operation
        self.error = error
    }

    public var description: String { "operation \(index): \(error)" }
}
