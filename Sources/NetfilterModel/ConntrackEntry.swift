import InternetAddress

/// One direction of a tracked connection.
public struct ConntrackTuple: Sendable, Hashable, CustomStringConvertible {
    public var source: IPAddress
    public var destination: IPAddress
    public var sourcePort: UInt16
    public var destinationPort: UInt16

    public init(source: IPAddress, destination: IPAddress, sourcePort: UInt16, destinationPort: UInt16) {
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
    }

    public var description: String {
        "\(source.bracketedDescription):\(sourcePort) -> \(destination.bracketedDescription):\(destinationPort)"
    }
}

/// A connection the kernel tracks: what the client sent (original) and what an answer looks like (reply). For a
/// flow IPVS took to a real server, the reply's source is that real server.
public struct ConntrackEntry: Sendable, Hashable, CustomStringConvertible {
    /// The IP protocol number (17 for UDP, 132 for SCTP).
    public var transportProtocol: UInt8
    public var original: ConntrackTuple
    public var reply: ConntrackTuple

    public init(transportProtocol: UInt8, original: ConntrackTuple, reply: ConntrackTuple) {
        self.transportProtocol = transportProtocol
        self.original = original
        self.reply = reply
    }

    public var family: AddressFamily { original.source.family }

    public var description: String {
        "\(SetElement.protocolNames[transportProtocol] ?? "\(transportProtocol)") \(original), reply \(reply)"
    }
}
